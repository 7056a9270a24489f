"""TLS for ``https://`` hosts: the system's trust store, or no verification with ``--insecure``.

geventhttpclient verifies against one CA file it picks when it is imported (the system's, else
certifi's bundle) and its own ``insecure`` only skips the host name check. Here the context is
the system's default one (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` apply, as for every OpenSSL
program), with certifi's bundle only where the system has no CA at all; ``--insecure`` turns off
both the chain and the host name checks. One context per process serves every connection
(loading a trust store costs milliseconds of CPU: once, not per user).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from typing import Any

import gevent.ssl

from llm_locust.wire.rxclock import MAX_HEADER_BYTES, count_header_bytes


class _HeaderBoundSocket(gevent.ssl.SSLSocket):  # type: ignore[misc]
    """A TLS socket that, from each request it sends until :func:`llm_locust.wire.rxclock.end_headers`,
    refuses more than :data:`llm_locust.wire.rxclock.MAX_HEADER_BYTES` of response headers."""

    __slots__ = ("header_left", "header_mode")

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.header_mode = True
        self.header_left = MAX_HEADER_BYTES
        super().sendall(data, flags)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        data: bytes = super().recv(buflen, flags)
        if getattr(self, "header_mode", False):
            self.header_left = count_header_bytes(self.header_left, data)
        return data


@functools.cache
def context(insecure: bool) -> ssl.SSLContext:
    ctx: ssl.SSLContext = gevent.ssl.create_default_context()
    ctx.sslsocket_class = _HeaderBoundSocket
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif not ctx.cert_store_stats()["x509_ca"] and not ssl.get_default_verify_paths().capath:
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())
    return ctx


def context_factory(insecure: bool) -> Callable[..., ssl.SSLContext]:
    """For geventhttpclient's ``ssl_context_factory`` (it passes its own ``cafile``: not used)."""

    def factory(**_ignored: Any) -> ssl.SSLContext:
        return context(insecure)

    return factory


def describe(exc: ssl.SSLError, host: str) -> str:
    """One line for a failed TLS handshake, e.g. ``certificate verify failed: self-signed
    certificate (https://h:443; --insecure skips verification)``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or "unknown reason"
        return f"certificate verify failed: {why} ({host}; --insecure skips verification)"
    return f"TLS handshake failed: {exc.reason or exc} ({host})"
