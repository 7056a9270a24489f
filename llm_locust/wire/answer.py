"""What kind of answer a 2xx/3xx response is, told from its status and headers before its body is
read as a stream, and the one-line details of the answers that are not a stream.

- 3xx: a redirect. Never followed (the next request would go to a host nobody chose, with the
  key): ``http_3xx`` with its ``Location``.
- A media type that is not the flavor's stream type: ``not_a_stream`` with the type and the first
  bytes of the body (a login page, a wrong URL), except a JSON body, which may be the whole answer
  of a server that ignores ``"stream": true`` (read by :func:`read_whole`).
- A ``Content-Encoding`` that :mod:`llm_locust.wire.content` cannot decode: ``not_a_stream`` too.
"""

from __future__ import annotations

import contextlib
from typing import Any

import gevent
from geventhttpclient.response import HTTPParseError

from llm_locust.wire.content import ContentDecoder, read_more

#: Bytes of a body shown in a ``not_a_stream`` detail (before whitespace is collapsed).
PREFIX_BYTES = 160
#: The most bytes read of a whole (non-streamed) JSON answer.
MAX_WHOLE_BYTES = 16 << 20
_PREFIX_WAIT_S = 1.0


def media_type(response: Any) -> str:
    """The response's ``Content-Type`` without parameters, lower case; "" when there is none."""
    value = response.get("content-type") or ""
    return str(value).split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def redirect_detail(response: Any) -> str:
    location = response.get("location") or "(no Location header)"
    return f"HTTP {response.status_code}: redirect to {location} (not followed; give that URL as --host)"


def body_prefix(response: Any, content: ContentDecoder | None = None) -> bytes:
    """The first bytes of the body: what has arrived within a second, at most :data:`PREFIX_BYTES`
    (decoded when a decoder is given and the bytes decode)."""
    buf: bytearray = response._body_buffer
    try:
        with gevent.Timeout(_PREFIX_WAIT_S, False):
            while len(buf) < PREFIX_BYTES and read_more(response):
                pass
    except (OSError, HTTPParseError):  # a broken or closed body: show what there is
        pass
    raw = bytes(buf[: PREFIX_BYTES * 4])
    if content is not None:
        with contextlib.suppress(ValueError):
            raw = b"".join(content.decode(raw))
    return raw[:PREFIX_BYTES]


def shown(prefix: bytes) -> str:
    """Body bytes for a detail: text with whitespace collapsed, cut with an ellipsis."""
    text = " ".join(prefix.decode("utf-8", "replace").split())
    if not text:
        return "(empty body)"
    return text if len(prefix) < PREFIX_BYTES else text + "…"


def not_a_stream_detail(status: int, media: str, prefix: bytes, why: str = "") -> str:
    """``200 text/html: <html><body>Login required…`` (``why`` is added after the type)."""
    kind = media or "(no Content-Type)"
    return f"{status} {kind}{why}: {shown(prefix)}"


def read_whole(response: Any, content: ContentDecoder | None = None) -> bytes | None:
    """The whole body (decoded), or None when it is over :data:`MAX_WHOLE_BYTES`. Blocks."""
    buf: bytearray = response._body_buffer
    while read_more(response):
        if len(buf) > MAX_WHOLE_BYTES:
            return None
    raw = bytes(buf)
    buf.clear()
    if content is None:
        return raw
    out = bytearray()
    for piece in content.decode(raw):
        out += piece
        if len(out) > MAX_WHOLE_BYTES:
            return None
    return bytes(out)
