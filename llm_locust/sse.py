"""Server-sent events from a socket, one timestamp per event taken when its line arrived.

Framing (CRLF, comments, multi-line ``data:``, ``event:`` and ``id:`` fields) is parsed by
sseclient-py. We feed it one line at a time straight from the socket (``readline``), never a
fixed-size block, so an event is handed over as soon as its bytes arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sseclient import SSEClient

ReadLine = Callable[[bytes], bytes]


class _Lines(Iterator[bytes]):
    """Iterates the lines of a response and remembers when the last field line arrived."""

    __slots__ = ("_clock", "_readline", "last_field_at_s")

    def __init__(self, readline: ReadLine, clock: Callable[[], float]) -> None:
        self._readline = readline
        self._clock = clock
        self.last_field_at_s = 0.0

    def __next__(self) -> bytes:
        line = self._readline(b"\n")
        if not line:
            raise StopIteration
        # A field line (not a blank separator, not a ":" comment) carries the event's content;
        # its arrival is the event's arrival.
        if line[:1] not in (b"\n", b"\r", b":"):
            self.last_field_at_s = self._clock()
        return line

    def close(self) -> None:  # SSEClient API
        pass


def iter_events(readline: ReadLine, clock: Callable[[], float]) -> Iterator[tuple[str, str, float]]:
    """Yield ``(event_name, data, arrived_at_s)`` for each event with data.

    ``readline(sep)`` must return the next line including ``sep``, or ``b""`` at the end of the body.
    """
    lines = _Lines(readline, clock)
    for event in SSEClient(lines).events():
        yield event.event, event.data, lines.last_field_at_s
