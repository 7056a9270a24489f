"""Response bodies before they are events: content codings decoded as the bytes arrive, and lines
read with a bound.

Every request asks for ``Accept-Encoding: identity``: a compressed token stream costs CPU at both
ends and a compressor may hold events back until its buffer fills. A server (or a proxy in front
of it) that compresses anyway is still read: ``gzip``, ``deflate`` and ``br`` are decoded
incrementally, each read's output as soon as it is there, so every event keeps the arrival time of
the read that brought its last byte. Output is produced in pieces of at most
:data:`llm_locust.wire.sse.MAX_EVENT_BYTES`, so a small compressed body that inflates to gigabytes
never sits in memory at once (each piece goes through the line bound before the next is made).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, Protocol

import brotli
from geventhttpclient.response import HTTPParseError

from llm_locust.wire.sse import MAX_EVENT_BYTES, line_too_large

_PIECE_BYTES = MAX_EVENT_BYTES


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` this client cannot decode."""


class BadEncoding(ValueError):
    """Bytes that are not valid data of their content coding."""


class ContentDecoder(Protocol):
    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data`` (and what came before), in pieces of bounded size."""
        ...


class _Zlib:
    """gzip, or deflate (the zlib format; raw deflate, which some servers send, is accepted too)."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
        self._obj: Any = zlib.decompressobj(self._wbits)
        self._first = b""  # deflate: the first bytes, until the format is known
        self._known = coding == "gzip"

    def decode(self, data: bytes) -> Iterator[bytes]:
        if not self._known:
            data = self._first + data
            if len(data) < 2:
                self._first = data
                return
            self._known = True
            if (data[0] & 0x0F) != 8 or ((data[0] << 8) | data[1]) % 31:  # no zlib header: raw
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            while data:
                obj = self._obj
                if obj.eof:  # bytes after the end of the compressed data
                    if self.coding != "gzip":
                        raise BadEncoding(f"{self.coding}: data after the end of the compressed stream")
                    obj = self._obj = zlib.decompressobj(self._wbits)  # gzip: the next member
                out = obj.decompress(data, _PIECE_BYTES)
                data = obj.unconsumed_tail or obj.unused_data
                if out:
                    yield out
        except zlib.error as exc:
            raise BadEncoding(f"{self.coding}: {exc}") from None


class _Brotli:
    coding = "br"

    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        obj = self._obj
        try:
            out = obj.process(data, output_buffer_limit=_PIECE_BYTES)
            while True:
                if out:
                    yield out
                if obj.can_accept_more_data():
                    return
                out = obj.process(b"", output_buffer_limit=_PIECE_BYTES)
        except brotli.error as exc:
            raise BadEncoding(f"br: {exc or 'invalid data'}") from None


class _Chain:
    """Several codings, applied by the server in the order listed: decoded in reverse."""

    def __init__(self, decoders: list[ContentDecoder]) -> None:
        self._decoders = decoders

    def decode(self, data: bytes) -> Iterator[bytes]:
        pieces: Iterator[bytes] = iter((data,))
        for decoder in reversed(self._decoders):
            pieces = _through(decoder, pieces)
        yield from pieces


def _through(decoder: ContentDecoder, pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from decoder.decode(piece)


def decoder_for(content_encoding: str | None) -> ContentDecoder | None:
    """The decoder for a ``Content-Encoding`` header value; None for none or ``identity``.
    Raises :class:`UnsupportedEncoding` naming a coding it cannot decode."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    decoders: list[ContentDecoder] = []
    for coding in codings:
        if coding in ("gzip", "x-gzip"):
            decoders.append(_Zlib("gzip"))
        elif coding == "deflate":
            decoders.append(_Zlib("deflate"))
        elif coding == "br":
            decoders.append(_Brotli())
        else:
            raise UnsupportedEncoding(coding)
    if not decoders:
        return None
    return decoders[0] if len(decoders) == 1 else _Chain(decoders)


class BodyLines:
    """``readline`` over a geventhttpclient response's body, decoded, with a bound on line length.

    geventhttpclient's own ``readline`` buffers until it finds the separator, however long that
    takes; this one raises :class:`llm_locust.wire.sse.EventTooLarge` once a line would pass
    :data:`llm_locust.wire.sse.MAX_EVENT_BYTES`. It reads what the socket has (never waits for a full
    block) and decodes one bounded piece at a time, so memory stays within a few MiB.
    """

    __slots__ = ("_decoder", "_lines", "_pieces", "_response", "_tail")

    def __init__(self, response: Any, decoder: ContentDecoder | None = None, tail: bool = False) -> None:
        """``tail``: hand over a last line without its separator at the end of the body (NDJSON)
        instead of dropping it (SSE, as geventhttpclient's readline does)."""
        self._response = response
        self._decoder = decoder
        self._tail = tail
        self._pieces: Iterator[bytes] = iter(())  # decoded pieces of the last read, made lazily
        self._lines = bytearray()  # decoded bytes not yet returned

    def readline(self, sep: bytes = b"\n") -> bytes:
        lines = self._lines
        start = 0
        while True:
            i = lines.find(sep, start)
            if i >= 0:
                end = i + len(sep)
                if end > MAX_EVENT_BYTES:
                    raise line_too_large()
                line = bytes(lines[:end])
                del lines[:end]
                return line
            if len(lines) >= MAX_EVENT_BYTES:
                raise line_too_large()
            start = max(len(lines) - len(sep) + 1, 0)
            if not self._fill():
                line = bytes(lines) if self._tail else b""
                lines.clear()  # like geventhttpclient: a last line without its separator is dropped
                return line

    def _fill(self) -> bool:
        """Add the next piece of the body to the lines (reading the socket once when nothing is
        left); False at the end of the body."""
        piece = next(self._pieces, None)
        if piece is not None:
            self._lines += piece
            return True
        response = self._response
        buf: bytearray = response._body_buffer
        while not buf:
            if not read_more(response):
                return False
        raw = bytes(buf)
        buf.clear()
        if self._decoder is None:
            self._lines += raw
            return True
        self._pieces = self._decoder.decode(raw)
        return True


#: Trailer fields a response may send after its body, and bytes per field: geventhttpclient keeps
#: them (one string grown per piece) and has no limit of its own.
MAX_TRAILER_FIELDS = 100
MAX_TRAILER_FIELD_BYTES = 8192


def mark_headers_end(response: Any) -> None:
    """Remember how many header fields the response had when its headers ended (for
    :func:`check_trailers`)."""
    response.llm_header_fields = response._header_position


def check_trailers(response: Any) -> None:
    """Raise ``HTTPParseError`` once the trailers the parser has taken pass the bounds above."""
    base = getattr(response, "llm_header_fields", None)
    if base is None:
        return
    pending = len(response._current_header_field or "") + len(response._current_header_value or "")
    if response._header_position - base > MAX_TRAILER_FIELDS or pending > MAX_TRAILER_FIELD_BYTES:
        limits = f"{MAX_TRAILER_FIELDS} fields or {MAX_TRAILER_FIELD_BYTES} bytes a field"
        raise HTTPParseError(f"the response's trailers are over {limits}")


def feed_parser(response: Any, data: bytes) -> None:
    """``response.feed(data)`` (a body's bytes: the headers are complete), bounded as
    :func:`check_trailers` says. Bytes after the end of the message are not the request's: the
    parser's error on them (llhttp takes only a next response there) only marks the connection as
    not to be reused (``llm_dirty``). Such an error is told by the headers no longer being complete:
    only a next message's start resets them."""
    try:
        response.feed(data)
    except HTTPParseError:
        if not (response.message_complete or not response.headers_complete):
            raise
        response.message_complete = True  # the message did end; the rest is ignored
        response.llm_dirty = True
    check_trailers(response)


def read_more(response: Any) -> bool:
    """One read of a geventhttpclient response's socket into its parser (the body's bytes go to
    ``response._body_buffer``); False when the body had already ended. Raises ``HTTPParseError``
    when the connection closes before the end of the body."""
    if response.message_complete:
        return False
    sock = response._sock
    if sock is None:  # released when the message completed: what follows began another message
        return False
    try:
        data = sock.recv(response.block_size)
        feed_parser(response, data)
    except BaseException:
        response.release()
        raise
    if not data and not response.message_complete:
        raise HTTPParseError("connection closed before the end of the body")
    return True


def discard_rest(response: Any) -> None:
    """Read the rest of a body and drop it (memory stays flat whatever its size); blocks."""
    buf: bytearray = response._body_buffer
    buf.clear()
    while read_more(response):
        buf.clear()
