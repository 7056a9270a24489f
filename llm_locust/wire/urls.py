"""Request paths under a host URL, and URLs fit to show."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def join_path(host: str, path: str) -> str:
    """``path`` under the path prefix of ``host`` (a trailing ``/v1`` or ``/api`` on the host is not
    doubled)."""
    rest = host.split("://", 1)[-1]
    prefix = rest[rest.find("/") :].rstrip("/") if "/" in rest else ""
    for api_root in ("/v1", "/api"):  # OpenAI's and Ollama's roots: a host that ends with one
        if prefix.endswith(api_root) and path.startswith(api_root + "/"):
            prefix = prefix[: -len(api_root)]
    return prefix + path


def public_url(url: str, path: str | None = None) -> str:
    """``url`` without user info, query or fragment (where credentials hide), for logs, reports and
    Locust's exporters; with ``path``, that path in place of the URL's own."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, netloc, parts.path if path is None else path, "", ""))
    except ValueError:
        return "<unparsable URL>"
