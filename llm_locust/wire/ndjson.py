"""Newline-delimited JSON streams (Ollama's native API), one timestamp per line as it arrives.

The same contract as :class:`llm_locust.wire.sse.SSEDecoder`, so that every reader takes either:
``feed(raw, at, out)`` takes one line as read (with its LF) and appends ``("", line, at)`` to ``out``
for a line that is not blank; :meth:`end` returns nothing (an NDJSON line is complete at its LF;
a last line without one is handed over by the reader at the end of the body, see ``tail``). The
bound of :data:`llm_locust.wire.sse.MAX_EVENT_BYTES` applies to each line.
"""

from __future__ import annotations

from llm_locust.wire.sse import MAX_EVENT_BYTES, line_too_large


class NDJSONDecoder:
    __slots__ = ()

    #: never an event open across lines (the reactor's SSE fast path looks at this)
    data: str | None = None

    def feed(self, raw: bytes, at: float, out: list[tuple[str, str, float]]) -> None:
        if len(raw) > MAX_EVENT_BYTES:
            raise line_too_large()
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            out.append(("", line.decode("utf-8", "replace"), at))

    def end(self) -> tuple[str, str, float] | None:
        return None
