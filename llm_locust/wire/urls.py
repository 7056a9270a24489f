"""Request paths under a host URL."""

from __future__ import annotations


def join_path(host: str, path: str) -> str:
    """``path`` under the path prefix of ``host`` (a trailing ``/v1`` on the host is not doubled)."""
    rest = host.split("://", 1)[-1]
    prefix = rest[rest.find("/") :].rstrip("/") if "/" in rest else ""
    if prefix.endswith("/v1") and path.startswith("/v1/"):
        prefix = prefix[:-3]
    return prefix + path
