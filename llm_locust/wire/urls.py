"""Request paths under a host URL."""

from __future__ import annotations


def join_path(host: str, path: str) -> str:
    """``path`` under the path prefix of ``host`` (a trailing ``/v1`` or ``/api`` on the host is not
    doubled)."""
    rest = host.split("://", 1)[-1]
    prefix = rest[rest.find("/") :].rstrip("/") if "/" in rest else ""
    for api_root in ("/v1", "/api"):  # OpenAI's and Ollama's roots: a host that ends with one
        if prefix.endswith(api_root) and path.startswith(api_root + "/"):
            prefix = prefix[: -len(api_root)]
    return prefix + path
