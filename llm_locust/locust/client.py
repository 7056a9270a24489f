"""The connection side of a User, as Locust's ``HttpUser`` has its ``client``: one geventhttpclient
connection pool, and every patch of geventhttpclient's internals in one place.

- sockets come from :mod:`llm_locust.wire.rxclock` (kernel receive times, the send instant, the
  header mode that hands the body over untouched) on plain HTTP on Linux;
- the idle-connection check does not yield to the event loop (``rxclock.socket_alive``);
- the socket of the request in flight is remembered (its send instant is the request's s_i, and
  a failed stream's socket, checked out of the pool, must be closed with it);
- TLS uses :mod:`llm_locust.wire.tls`'s context (the system trust store, or ``--insecure``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from geventhttpclient import HTTPClient

from llm_locust.wire import rxclock, tls


class LLMClient:
    """One connection pool of size 1 (a closed-loop user has one request in flight)."""

    def __init__(self, host: str, request_timeout_s: float, insecure: bool) -> None:
        self.host = host
        self._connect_timeout_s = min(request_timeout_s, 30.0)
        self._insecure = insecure
        self._http: HTTPClient | None = None
        self.sock: Any = None  # the connection of the request in flight

    def http(self) -> HTTPClient:
        if self._http is None:
            self._http = http = HTTPClient.from_url(
                self.host,
                concurrency=1,
                connection_timeout=self._connect_timeout_s,
                # No per-read socket timeout: it would arm a timer for every read of every token.
                # --request-timeout is enforced once per request by a gevent.Timeout instead.
                network_timeout=None,
                ssl_context_factory=tls.context_factory(self._insecure),
                insecure=self._insecure,
            )
            pool = http._connection_pool
            pool._is_socket_alive = rxclock.socket_alive  # type: ignore[method-assign]
            get_socket = pool.get_socket

            def taken() -> Any:  # remember the connection: its send instant is the request's s_i
                self.sock = get_socket()
                return self.sock

            pool.get_socket = taken  # type: ignore[method-assign]
            if rxclock.supported() and not http.ssl:
                pool._create_tcp_socket = rxclock.create_tcp_socket  # type: ignore[method-assign]
        return self._http

    def drop(self) -> None:
        """Close the connection of the request (a failed stream's socket is checked out of the pool,
        so closing the pool alone would leave it open until the collector finds the response); the
        next request starts on a fresh pool."""
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def is_tls(self) -> bool:
        return self.host.startswith("https://")
