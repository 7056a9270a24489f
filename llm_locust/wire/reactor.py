"""Every stream of the process read by the event loop itself: no greenlet switch per token.

With one greenlet per stream, every token event costs a wake-up of that greenlet (gevent's waiter,
watcher start and stop, two switches, a failed ``recv`` before each wait): about half of the
client's CPU at 512 streams. Here the user's greenlet sends the request and reads the headers as
before, then hands the socket to the process's :class:`Reactor` and sleeps until the stream ends.
The reactor watches the socket with an event-loop (libev) watcher whose callback runs in the hub:
it reads what arrived (``recvmsg`` with the kernel's receive timestamp), decodes the body into SSE
events and hands each to the stream's consumer, timestamped when its bytes reached the socket.
(A first version kept its own ``epoll`` set and woke one reader greenlet per batch of ready
sockets: 12 % more CPU at 512 streams, from the extra ``epoll_wait`` and switch per wake-up.)

Bodies are read by the compiled :mod:`llm_locust._native._speedups` where it is built and the body is
chunked: the event loop calls the body's ``pump`` directly (one C call per read), and the plain text
chunks, nearly every event, are recognised and recorded there without reaching Python (see
``_plain_chunk.c``); Python sees the other events, the end of the body and errors. Otherwise bodies
are parsed here in Python (the response's own HTTP parser, then :class:`llm_locust.wire.sse.SSEDecoder`).
Under load the loop may collect readable streams for up to 1 ms (:mod:`llm_locust.wire.batching`).
Used for plain-HTTP connections on Linux (sockets from
:mod:`llm_locust.wire.rxclock`); TLS connections read through the greenlet as before
(:func:`llm_locust.wire.sse.iter_events`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.socket
from gevent.event import AsyncResult
from geventhttpclient.response import HTTPParseError

from llm_locust._native import speedups
from llm_locust.errors import ConfigError
from llm_locust.wire.batching import ReadBatching
from llm_locust.wire.content import ContentDecoder, discard_rest, feed_parser
from llm_locust.wire.ndjson import NDJSONDecoder
from llm_locust.wire.rxclock import CMSG_SPACE, RxTimestampSocket, corrected, receive_ns
from llm_locust.wire.sse import MAX_EVENT_BYTES, SSEDecoder, line_too_large

#: ``on_event(name, data, arrived_at_s)``; returns True when the stream is finished (``[DONE]``).
OnEvent = Callable[[str, str, float], bool]

_READ_BYTES = 16384


#: ``LLM_LOCUST_READER``: "auto" (default: "compiled" where it is built, else "reactor"), "compiled"
#: (the reactor with each body read by :mod:`llm_locust._native._speedups`), "reactor" (the reactor, bodies
#: parsed in Python) or "greenlet" (every stream read by its own greenlet, as TLS connections are).
#: Read once per test by the plugin; the others are for comparisons in bench/ and tests.
READERS = ("auto", "compiled", "reactor", "greenlet")
_reader = ["compiled"]
_requested = ["auto"]  # the LLM_LOCUST_READER that chose it
_unstamped = [False]  # a stream of this process was read without kernel timestamps
_UNSTAMPED = "a stream without kernel receive timestamps (TLS or the greenlet reader)"


def choose_reader(name: str) -> str:
    """Use reader ``name`` from now on in this process; returns the one in use ("auto" resolved)."""
    if name not in READERS:
        raise ConfigError(f"LLM_LOCUST_READER={name!r} is unknown; choose one of {', '.join(READERS)}")
    built = speedups.module() is not None
    if name == "compiled" and not built:
        raise ConfigError(
            "LLM_LOCUST_READER=compiled: llm_locust._native._speedups is not built (no C compiler when the "
            "package was installed); use reactor"
        )
    _requested[0] = name
    if name == "auto":
        name = "compiled" if built else "reactor"
    _reader[0] = name
    return name


def reader_in_use() -> str:
    return _reader[0]


def reader_info() -> dict[str, Any]:
    """The results' ``metadata.reader``: the reader this process chose (``in_use``), the
    ``LLM_LOCUST_READER`` that chose it (``requested``) and whether the compiled one is built here."""
    return {"in_use": _reader[0], "requested": _requested[0], "compiled_built": speedups.module() is not None}


def read_unstamped() -> None:
    """A stream is read without kernel receive timestamps (TLS, the greenlet reader): its events are
    stamped when read, so reads must not wait (:mod:`llm_locust.wire.batching`) in this process."""
    _unstamped[0] = True
    reactor = getattr(gevent.get_hub(), "llm_locust_reactor", None)
    if reactor is not None and reactor.batching is not None:
        reactor.batching.stop(_UNSTAMPED)


def usable(response: Any) -> bool:
    """Whether the reactor can read this response (a plain-TCP socket of ours, on Linux)."""
    return _reader[0] in ("compiled", "reactor") and isinstance(
        getattr(response, "_sock", None), RxTimestampSocket
    )


def compiled_for(response: Any, body_untouched: bool) -> bool:
    """Whether the compiled reader takes this response's body: it is in use, and the body is chunked
    and not a byte of it has been read yet (see :func:`llm_locust.wire.rxclock.end_headers`)."""
    return (
        _reader[0] == "compiled"
        and body_untouched
        and response.headers_complete
        and not response.message_complete
        and not response._body_buffer
        and "chunked" in str(response.get("transfer-encoding", "")).lower()
    )


def new_body(response: Any, scanner: str | None = "openai-chat", framing: str = "sse") -> Any:
    """A compiled reader for this response's body (:func:`compiled_for` said it can take it). With a
    ``scanner`` (a flavor's ``plain_scanner``: its ``--api`` name) it recognises that flavor's plain
    text events and records their timings and text itself (see ``_Reading.adopt_body`` in
    llm_locust/locust/exchange.py); with None it hands every event over. ``framing``: "sse" or
    "ndjson"."""
    return speedups.module().Body(
        response._sock._sock.fileno(), scanner is not None, framing == "ndjson", scanner or "openai-chat"
    )


def read_events(
    response: Any,
    on_event: OnEvent,
    body: Any = None,
    content: ContentDecoder | None = None,
    framing: str = "sse",
) -> float:
    """Feed the response body's SSE events to ``on_event`` until it returns True or the body ends;
    blocks the calling greenlet meanwhile. Returns when the last bytes were read (``perf_counter``
    seconds). Raises what ``on_event`` raised, ``OSError`` or ``HTTPParseError``.

    ``body``: the compiled reader (:func:`new_body`) takes the body; with ``record`` on, the plain
    text chunks never reach ``on_event``: the body records them itself. ``content``: the decoder
    of a compressed body (only without ``body``). ``framing``: "sse", or "ndjson" (one event per
    line, named "")."""
    hub: Any = gevent.get_hub()
    reactor = getattr(hub, "llm_locust_reactor", None)
    if reactor is None:
        reactor = hub.llm_locust_reactor = Reactor(hub)
    if body is not None:
        return reactor.read(_CompiledStream(response, on_event, body))
    return reactor.read(_Stream(response, on_event, content, framing))


def drain(response: Any) -> None:
    """Read the rest of a body after ``[DONE]`` so that the connection can be reused (blocks)."""
    body = getattr(response, "llm_locust_body", None)
    if body is None:
        discard_rest(response)
        return
    while not (body.complete and _end_body(response, body)):
        if body.closed:
            raise HTTPParseError("connection closed before the end of the body")
        if body.read() is None:
            gevent.socket.wait_read(body.fd)


def _end_body(response: Any, body: Any) -> bool:
    """Give the response's own parser the terminal chunk and what followed it (trailers, the final
    CRLF: it judges them); True when the message is complete (the connection goes back to the pool)."""
    feed_parser(response, body.take_extra())
    return bool(response.message_complete)


class _Waited:
    """What the user's greenlet waits on: the stream's end (last read time) or its error."""

    __slots__ = ("done", "fd", "last_at", "result", "watcher")

    def __init__(self, fd: int, last_at: float) -> None:
        self.fd = fd
        self.last_at = last_at
        self.result = AsyncResult()
        self.done = False
        self.watcher: Any = None

    def readable(self) -> None:
        raise NotImplementedError

    def start(self, loop: Any) -> None:
        """Watch the socket: ``readable`` runs in the event loop's callback."""
        self.watcher = loop.io(self.fd, 1)
        self.watcher.start(_on_readable, self, self.watcher)

    def close(self) -> None:
        """Stop watching (the stream ended, or the wait for it was interrupted)."""
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()

    def consume(self, at: float) -> None:
        raise NotImplementedError

    def finish(self, exc: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        if exc is None:
            self.result.set(self.last_at)
        else:
            self.result.set_exception(exc)


class _Stream(_Waited):
    """One response being read: its socket, parser, content decoder, SSE state and consumer."""

    __slots__ = ("content", "decoded", "decoder", "events", "ndjson", "on_event", "raw", "response")

    def __init__(
        self, response: Any, on_event: OnEvent, content: ContentDecoder | None = None, framing: str = "sse"
    ) -> None:
        self.response = response
        self.raw = response._sock._sock  # the non-blocking socket under gevent's wrapper
        super().__init__(self.raw.fileno(), time.perf_counter())
        self.on_event = on_event
        self.ndjson = framing == "ndjson"
        self.decoder: SSEDecoder | NDJSONDecoder = NDJSONDecoder() if self.ndjson else SSEDecoder()
        self.events: list[tuple[str, str, float]] = []
        self.content = content  # a compressed body's decoder (see llm_locust.wire.content)
        self.decoded = bytearray()  # its output not yet split into lines

    def readable(self) -> None:
        """Read what arrived; set :attr:`result` when the stream is over."""
        try:
            data, ancdata, _flags, _addr = self.raw.recvmsg(_READ_BYTES, CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.finish(exc)
            return
        at = corrected(time.perf_counter(), receive_ns(ancdata))
        self.last_at = at
        try:
            feed_parser(self.response, data)
            if not data and not self.response.message_complete:
                raise HTTPParseError("connection closed before the end of the body")
            self.consume(at)
        except Exception as exc:  # the consumer's verdict (or a protocol error) ends the stream
            self.finish(exc)

    def consume(self, at: float) -> None:
        """Hand the complete lines buffered in the response to the decoder and the consumer."""
        buf: bytearray = self.response._body_buffer
        if self.content is not None:  # a compressed body: its lines are in the decoded bytes
            raw = bytes(buf)
            buf.clear()
            for piece in self.content.decode(raw):
                self.decoded += piece
                if self._lines(self.decoded, at):
                    return
        elif self._lines(buf, at):
            return
        if self.response.message_complete:
            # the rest of a last line without its newline: an NDJSON line is complete without it;
            # an SSE line is dropped, as geventhttpclient's readline does
            buf = self.decoded if self.content is not None else self.response._body_buffer
            if self.ndjson and buf:
                self.decoder.feed(bytes(buf), at, self.events)
                buf.clear()
            last = self.decoder.end()
            if last is not None:
                self.events.append(last)
            for event in self.events:
                if self.on_event(*event):
                    break
            self.events.clear()
            self.finish(None)

    def _lines(self, buf: bytearray, at: float) -> bool:
        """Hand the complete lines of ``buf`` to the decoder and the consumer, and remove them; True
        when the consumer said the stream is finished (then :attr:`result` is set)."""
        decoder = self.decoder
        if (
            isinstance(decoder, SSEDecoder)
            and decoder.data is None
            and buf.startswith(b"data: ")
            and buf.find(b"\n") == len(buf) - 2
            and buf.endswith(b"\n\n")
            and b"\r" not in buf
            and len(buf) <= MAX_EVENT_BYTES + 1
        ):  # the common read: exactly one whole one-line event
            name, decoder.name = decoder.name, "message"
            data = buf[6:-2].decode("utf-8", "replace")
            buf.clear()
            if self.on_event(name, data, at):
                self.finish(None)
                return True
            return False  # the end of the body, if it is, is for consume() (pieces may follow)
        feed, events, on_event = decoder.feed, self.events, self.on_event
        start = 0
        while True:
            end = buf.find(b"\n", start) + 1
            if not end:
                break
            feed(bytes(buf[start:end]), at, events)
            start = end
            if events:
                for name, data, event_at in events:
                    if on_event(name, data, event_at):
                        del buf[:start]
                        events.clear()
                        self.finish(None)
                        return True
                events.clear()
        if start:
            del buf[:start]
        if len(buf) >= MAX_EVENT_BYTES:  # as many bytes without a line end: the line is too long
            raise line_too_large()
        return False


class _CompiledStream(_Waited):
    """One response whose body :mod:`llm_locust._native._speedups` reads: the event loop calls its ``pump``
    directly, and Python runs only for the events the body hands over (not the plain text chunks)."""

    __slots__ = ("body", "on_event", "response")

    def __init__(self, response: Any, on_event: OnEvent, body: Any) -> None:
        super().__init__(body.fd, body.last_at)
        self.response = response
        response.llm_locust_body = body  # for drain()
        self.body = body
        self.on_event = on_event

    def consume(self, at: float) -> None:
        """Nothing of the body was read before the hand-over."""

    def start(self, loop: Any) -> None:
        self.body.notify = self.notified
        self.watcher = loop.io(self.fd, 1)
        self.watcher.start(self.body.pump)

    def close(self) -> None:
        self.body.notify = None  # no cycle between the body and this stream
        self.body.record = False  # drain() reads the rest without recording
        super().close()

    def notified(self, events: list[tuple[str, str, float]] | BaseException) -> None:
        """What a read brought that Python must see: events, the end of the body, or an error."""
        try:
            body = self.body
            if isinstance(events, BaseException):
                if body.complete:  # the parser's verdict on the tail comes first, as in the Python reactor
                    _end_body(self.response, body)
                raise events
            self.last_at = body.last_at
            # as the Python reactor, where the response's parser takes a whole read before its
            # events are handed over: broken trailers fail the stream before the read's events count
            ended = body.complete and _end_body(self.response, body)
            if ended:  # the message is over: an event still open is the read's last
                events = list(events)
                body.end(events)
            on_event = self.on_event
            for name, data, at in events:
                if on_event(name, data, at):
                    self.finish(None)  # drain() reads the rest, if any
                    return
            if ended:
                self.finish(None)
            elif body.closed:
                raise HTTPParseError("connection closed before the end of the body")
        except Exception as exc:  # the consumer's verdict (or a protocol error) ends the stream
            self.finish(exc)
        if self.done and self.watcher is not None:
            self.watcher.stop()  # closed by Reactor.read, outside this callback


class Reactor:
    """The process's stream reader: each stream socket is watched by the event loop itself, and its
    bytes are read in the loop's callback, in the hub: no greenlet is woken per token."""

    def __init__(self, hub: Any) -> None:
        self._loop = hub.loop
        self.watched: set[int] = set()  # the file descriptors being read
        self.batching = ReadBatching(hub.loop) if _reader[0] == "compiled" else None
        if self.batching is not None and _unstamped[0]:
            self.batching.stop(_UNSTAMPED)

    def read(self, stream: _Waited) -> float:
        try:
            stream.consume(stream.last_at)  # body bytes that came with the headers
        except Exception as exc:
            stream.finish(exc)
        if not stream.done:
            stream.start(self._loop)
            self.watched.add(stream.fd)
        try:
            return stream.result.get()  # type: ignore[no-any-return]
        finally:  # also when the deadline or the end of the test interrupts the wait
            stream.close()
            self.watched.discard(stream.fd)


def _on_readable(stream: _Waited, watcher: Any) -> None:
    """The event loop's callback (in the hub; it must never block or switch)."""
    try:
        stream.readable()
    except Exception as exc:  # never let an error escape into the hub
        stream.finish(exc)
    if stream.done:
        watcher.stop()
