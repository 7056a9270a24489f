"""Server-sent events from a socket, one timestamp per event taken when its line arrived.

Lines are read one at a time straight from the socket (``readline``), never in fixed-size
blocks, so an event is handed over as soon as its bytes arrive.

The framing is decoded here rather than by sseclient-py: `make bench` measured sseclient-py's
generator chain at about 20 % of the client's capacity (19k vs 24k token events per CPU-second),
over the 15 % we allow. ``tests/test_sse.py`` checks this decoder against sseclient-py on the
same byte streams split at every offset (CRLF, lone CR, comments, multi-line ``data:``,
``event:``/``id:``/``retry:`` fields, a last event without its blank line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

ReadLine = Callable[[bytes], bytes]

#: The most bytes one line of an event stream, or the data of one event, may have. A token event is
#: a few hundred bytes; a server that sends more without a line end is broken, and the bound keeps
#: memory flat whatever it sends. Every reader (this decoder, the reactor, the compiled body reader)
#: applies it the same way.
MAX_EVENT_BYTES = 1 << 20


class EventTooLarge(ValueError):
    """A line, or one event's data, of more than :data:`MAX_EVENT_BYTES` bytes."""


def line_too_large() -> EventTooLarge:
    return EventTooLarge(f"a line of the event stream is over {MAX_EVENT_BYTES >> 20} MiB")


def event_too_large() -> EventTooLarge:
    return EventTooLarge(f"an event's data is over {MAX_EVENT_BYTES >> 20} MiB")


def _split(raw: bytes) -> list[bytes]:
    """One raw line from ``readline`` as SSE lines, without their terminators (CRLF, LF or CR)."""
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if b"\r" in raw:  # lone CRs also end lines (rare)
        return raw.split(b"\r")
    return [raw]


class SSEDecoder:
    """Incremental decoder: push raw lines with :meth:`feed`, get the events they complete.

    ``feed(raw, at, out)`` takes one line as read (with its terminator), the instant it arrived, and
    appends ``(event_name, data, arrived_at_s)`` to ``out`` for each event the line completes. An
    event's instant is the arrival of its (last) ``data:`` line. :meth:`end` returns an event still
    open when the body ends (it is dispatched, as sseclient-py does).

    Raises :class:`EventTooLarge` for a line (terminator included) or an event's data (its ``data:``
    values joined with LF) of more than :data:`MAX_EVENT_BYTES` bytes.
    """

    __slots__ = ("at", "data", "name", "size")

    def __init__(self) -> None:
        self.name = "message"
        self.data: str | None = None
        self.size = 0  # bytes of the open event's data, joined with LF
        self.at = 0.0

    def _add(self, value: bytes, at: float) -> None:
        size = len(value) if self.data is None else self.size + 1 + len(value)
        if size > MAX_EVENT_BYTES:
            raise event_too_large()
        self.size = size
        self.at = at
        text = value.decode("utf-8", "replace")
        self.data = text if self.data is None else f"{self.data}\n{text}"

    def feed(self, raw: bytes, at: float, out: list[tuple[str, str, float]]) -> None:
        if raw == b"\n" or raw == b"\r\n":  # the common blank line that ends an event
            if self.data is not None:
                out.append((self.name, self.data, self.at))
            self.name, self.data = "message", None
            return
        if len(raw) > MAX_EVENT_BYTES:
            raise line_too_large()
        if raw.startswith(b"data: ") and raw.endswith(b"\n") and raw.find(b"\r", 0, -2) < 0:
            # the common case, one "data: ..." line: no splitting, no field parsing
            self._add(raw[6:-2] if raw.endswith(b"\r\n") else raw[6:-1], at)
            return
        for line in _split(raw):
            if not line:
                if self.data is not None:
                    out.append((self.name, self.data, self.at))
                self.name, self.data = "message", None
                continue
            if line[:1] == b":":
                continue  # comment
            field, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                self._add(value, at)
            elif field == b"event":
                self.name = value.decode("utf-8", "replace") or "message"
            # "id" and "retry" do not matter to a load generator; unknown fields are ignored

    def end(self) -> tuple[str, str, float] | None:
        """The event still open at the end of the body, if any."""
        if self.data is None:
            return None
        event = (self.name, self.data, self.at)
        self.name, self.data = "message", None
        return event


class LineDecoder(Protocol):
    """What :func:`iter_events` feeds: :class:`SSEDecoder`, or the NDJSON decoder of
    :mod:`llm_locust.wire.ndjson`."""

    def feed(self, raw: bytes, at: float, out: list[tuple[str, str, float]]) -> None: ...

    def end(self) -> tuple[str, str, float] | None: ...


def iter_events(
    readline: ReadLine, clock: Callable[[], float], decoder: LineDecoder | None = None
) -> Iterator[tuple[str, str, float]]:
    """Yield ``(event_name, data, arrived_at_s)`` for each event that has data.

    ``readline(sep)`` returns the next line including ``sep``, or ``b""`` at the end of the body;
    it should raise :class:`EventTooLarge` rather than buffer a line of more than
    :data:`MAX_EVENT_BYTES` (see :class:`llm_locust.wire.content.BodyLines`). ``arrived_at_s`` is
    ``clock()`` read when the event's (last) ``data:`` line arrived. ``decoder``: an SSE decoder
    unless another is given.
    """
    decoder = decoder if decoder is not None else SSEDecoder()
    out: list[tuple[str, str, float]] = []
    while True:
        raw = readline(b"\n")
        if not raw:
            break
        decoder.feed(raw, clock(), out)
        if out:
            yield from out
            out.clear()
    last = decoder.end()
    if last is not None:
        yield last
