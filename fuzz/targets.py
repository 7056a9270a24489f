"""Differential fuzz targets for the stream readers (issue 11, part 3).

Each target is a function of one ``bytes`` input. It derives a test case from the input (the first
:data:`HEADER` bytes steer it: framing, splits, blow-ups, modes; the rest is the payload), runs every
reader that can read that case and raises :class:`Divergence` (an ``AssertionError``) when they
disagree. Any other exception escaping a target is a crash of a reader or of this harness. The
targets are deterministic functions of their input, so that a failing input replays.

The readers and their references:

``sse``
    ``sse.iter_events`` over a body split into reads at fuzzed offsets, against a line-by-line
    model of the decoder's documented rules (:func:`model_events`, independent of the decoder's
    code), against itself on the unsplit body, and against sseclient-py on the same reads where
    sseclient-py is a faithful reference (:func:`sseclient_domain`).
``reader``
    One HTTP/1.1 response: the Python reactor (``reactor._Stream`` over geventhttpclient's
    parser), the greenlet reader of TLS connections (``content.BodyLines`` + ``sse.iter_events``)
    and the compiled reader (``_speedups.Body`` driven as ``reactor._CompiledStream`` and
    ``Body.pump`` do), fed the same reads with the same arrival stamps. With the ``reading``
    consumer (the real ``exchange._Reading``, the compiled body recording the plain text chunks
    itself) the timings, text, finish reason and usage are compared too.
``plain``
    ``_plain_chunk.c`` (through a recording ``Body``) against ``orjson`` +
    ``openai_chat.plain_content``: it may only take a chunk that Python finds plain, with the
    same text.
``content``
    Compressed bodies (gzip, deflate, raw deflate, br, a gzip+br chain) through the reactor and
    the greenlet reader, each with its ``content.decoder_for`` decoder: equal to each other, and
    to the uncompressed body's events when nothing was corrupted.

Known divergences (bugs reported, not fixed yet) are recognised by :func:`known_divergence` so
that a long fuzz run looks past them; set ``LLM_LOCUST_FUZZ_STRICT=1`` to fail on them too.
``LLM_LOCUST_FUZZ_SPEEDUPS=/path/_speedups*.so`` reads with another build of the extension (the
coverage and sanitizer builds of ``fuzz/run.py``).
"""

from __future__ import annotations

import bisect
import codecs
import gzip
import importlib.machinery
import importlib.util
import itertools
import os
import random
import sys
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import brotli

_ALT = os.environ.get("LLM_LOCUST_FUZZ_SPEEDUPS")
if _ALT:  # before llm_locust._native.speedups imports the installed build
    _loader = importlib.machinery.ExtensionFileLoader("llm_locust._native._speedups", _ALT)
    _spec = importlib.util.spec_from_file_location("llm_locust._native._speedups", _ALT, loader=_loader)
    assert _spec is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["llm_locust._native._speedups"] = _module
    _loader.exec_module(_module)

import orjson  # noqa: E402
from geventhttpclient.response import HTTPParseError, HTTPSocketResponse  # noqa: E402

from llm_locust._native import speedups  # noqa: E402
from llm_locust.flavors import openai_chat  # noqa: E402
from llm_locust.flavors.openai_chat import FLAVOR as CHAT  # noqa: E402
from llm_locust.locust.exchange import _Reading  # noqa: E402
from llm_locust.metrics.records import RequestTimer  # noqa: E402
from llm_locust.wire import reactor  # noqa: E402
from llm_locust.wire.content import BodyLines, decoder_for  # noqa: E402
from llm_locust.wire.sse import MAX_EVENT_BYTES, EventTooLarge, SSEDecoder, iter_events  # noqa: E402

STRICT = os.environ.get("LLM_LOCUST_FUZZ_STRICT") == "1"
HEADER = 8
#: the reactor's recvmsg size: no read of a case is longer, so every reader sees the same reads
READ_BYTES = reactor._READ_BYTES
Event = tuple[str, str, float]
creader: Any = speedups.module()


class Divergence(AssertionError):
    """Two readers (or a reader and its reference) disagree on one input."""


# ---- turning bytes into a case ------------------------------------------------------------------

_FILLS = (b"a", b"\xff", b"\x00", b" ", b"\xc3", b":", b"\xe2\x82")


class Script:
    """The control bytes of an input (zero where the input is shorter) and its payload.

    ``flags``: each target reads its own bits. ``splits``: how the stream is cut into reads.
    ``seed``: the choices made at random (chunk sizes, cut offsets), so that they are a function of
    the input. ``big``: an optional run of one byte inserted into the payload, of a length near
    :data:`MAX_EVENT_BYTES` (the bounds are where the readers differ most easily; a fuzz input of a
    few KiB cannot hold a 1 MiB line itself).
    """

    __slots__ = ("big", "flags", "payload", "rng", "splits")

    def __init__(self, data: bytes) -> None:
        head = data[:HEADER].ljust(HEADER, b"\0")
        self.flags = head[0]
        self.splits = head[1]
        self.rng = random.Random(head[2] | head[3] << 8)
        self.big = head[4:8]
        self.payload = data[HEADER:]

    def blown_up(self, payload: bytes) -> bytes:
        """``payload`` with the run of ``big`` inserted (kind 12-15 of its first byte; else as is)."""
        kind, where, delta, fill = self.big
        delta = delta - 256 if delta > 127 else delta
        lengths = {12: MAX_EVENT_BYTES + delta, 13: MAX_EVENT_BYTES // 2 + delta, 14: 4 * MAX_EVENT_BYTES}
        length = lengths.get(kind % 16)
        if length is None or length <= 0:
            return payload
        at = len(payload) * where // 255
        run = _FILLS[fill % len(_FILLS)] * (length // len(_FILLS[fill % len(_FILLS)]))
        return payload[:at] + run + payload[at:]

    def cut(self, raw: bytes) -> list[bytes]:
        """``raw`` as the reads that bring it: at random offsets (the low 4 bits of ``splits``:
        how many), or one byte per read (bit 4, for short streams); none longer than
        :data:`READ_BYTES`."""
        if self.splits & 16 and len(raw) <= 512:
            return [raw[i : i + 1] for i in range(len(raw))]
        n = min(self.splits & 15, max(len(raw) - 1, 0))
        points = sorted(self.rng.sample(range(1, len(raw)), n)) if n else []
        reads = []
        for start, end in zip([0, *points], [*points, len(raw)], strict=True):
            reads.extend(raw[i : min(i + READ_BYTES, end)] for i in range(start, end, READ_BYTES))
        return reads


class Where:
    """For each byte of a chunk-encoded body, its offset in the encoded bytes (kept per chunk: a
    list of one int per byte would cost 40 bytes per byte of a 4 MiB body)."""

    def __init__(self) -> None:
        self.body_starts: list[int] = []
        self.raw_starts: list[int] = []

    def add(self, body_offset: int, raw_offset: int) -> None:
        self.body_starts.append(body_offset)
        self.raw_starts.append(raw_offset)

    def __getitem__(self, body_offset: int) -> int:
        k = bisect.bisect_right(self.body_starts, body_offset) - 1
        return self.raw_starts[k] + body_offset - self.body_starts[k]


def chunked(body: bytes, rng: random.Random, large: bool) -> tuple[bytes, Where]:
    """``body`` chunk-encoded as servers do (sizes in either case, the odd leading zero, extension
    or trailer), and where each body byte is in the encoded bytes."""
    out = bytearray()
    where = Where()
    i = 0
    while i < len(body):
        # a body near 1 MiB in small chunks would only be slow: servers send such lines in large ones
        n = min(len(body) - i, rng.randint(1, 70000 if large or len(body) > 65536 else 40))
        size = (b"%x" if rng.random() < 0.5 else b"%X") % n
        if rng.random() < 0.05:
            size = b"0" + size
        ext = rng.choice((b";a=b", b";x", b';q="v"')) if rng.random() < 0.05 else b""
        out += size + ext + b"\r\n"
        where.add(i, len(out))
        out += body[i : i + n] + b"\r\n"
        i += n
    out += b"0\r\nX-Trailer: 1\r\n\r\n" if rng.random() < 0.1 else b"0\r\n\r\n"
    return bytes(out), where


def corrupted(raw: bytes, rng: random.Random) -> bytes:
    """``raw`` with one to three bytes deleted, inserted or replaced (framing bytes most often)."""
    b = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(b) + 1)
        if rng.random() < 0.7:  # the next framing byte (or SSE line end) after a random offset
            i = next((k for k in range(i, min(i + 64, len(b))) if b[k] in b"\r\n0123456789abcdefABCDEF;"), i)
        op = rng.randrange(3)
        if op == 0 and i < len(b):
            del b[i]
        elif op == 1:
            b.insert(i, rng.choice(b"\r\n0fF; \t:x\x00\xff"))
        elif i < len(b):
            b[i] = rng.randrange(256)
    return bytes(b)


# ---- the readers, on scripted reads -------------------------------------------------------------


class FakeSocket:
    """Serves scripted reads to ``recv`` / ``recvmsg`` (no ancillary data), then end of file.

    ``now`` is the arrival stamp of the last read served (for the greenlet reader's clock). Reading
    on at the end of file more than a few times means a reader does not see the end: a hang."""

    def __init__(self, reads: list[bytes], stamps: list[float] | None = None) -> None:
        self._reads = deque(reads)
        self._stamps = deque(stamps or [])
        self.now = 0.0
        self.eofs = 0

    @property
    def _sock(self) -> FakeSocket:  # the reactor reads ``response._sock._sock``
        return self

    def fileno(self) -> int:
        return -1

    def recv(self, n: int) -> bytes:
        if not self._reads:
            self.eofs += 1
            if self.eofs > 3:
                raise Divergence("a reader goes on reading after the end of the file (hang)")
            return b""
        data = self._reads.popleft()
        if self._stamps:
            self.now = self._stamps.popleft()
        if len(data) > n:  # then the readers would not see the same reads
            raise AssertionError(f"harness: a scripted read of {len(data)} bytes, over {n}")
        return data

    def recvmsg(self, n: int, _ancbufsize: int) -> tuple[bytes, list[Any], int, None]:
        return self.recv(n), [], 0, None

    def close(self) -> None:
        pass


class Collect:
    """The plain consumer: every event, until ``[DONE]``. ``dispatched``: for each event, the read
    being handled when it came (``read``, set by the harness): an event's stamp is its last data
    line's arrival, and the blank line that dispatches it may come reads later."""

    def __init__(self, body: Any = None) -> None:
        self.events: list[Event] = []
        self.read = 0
        self.dispatched: list[int] = []

    def on_event(self, name: str, data: str, at: float) -> bool:
        self.events.append((name, data, at))
        self.dispatched.append(self.read)
        return data == "[DONE]"

    def state(self) -> Any:
        return self.events


class Reading:
    """The real consumer of a stream (``exchange._Reading`` and its ``RequestTimer``); with a
    compiled ``body`` the body records the text events, as in ``user._read_stream``."""

    def __init__(self, body: Any = None) -> None:
        self.timer = RequestTimer(lambda: 0.0)
        self.reading = _Reading(self.timer, CHAT, body)
        self.read = 0
        self.dispatched: list[int] = []

    def on_event(self, name: str, data: str, at: float) -> bool:
        return self.reading.event(name, data, at)

    def state(self) -> Any:
        r, t = self.reading, self.timer
        r.adopt_body()
        text: Any = r.text if any(type(p) is not str for p in r.text) else "".join(r.text)
        timing = (t.text_events, t.first_text_at_s, t.first_visible_at_s, t.last_text_at_s, list(t.itl_ms))
        return timing, text, r.finish, r.usage_out, r.usage_in, r.timings, r.done_at


Consumer = Callable[[Any], "Collect | Reading"]


@dataclass
class Outcome:
    """How one reader ended a stream: the consumer's state, the exception (None: a clean end),
    the index of the read that raised it (0: the head's read) and the read of each event."""

    state: Any
    error: BaseException | None
    error_read: int | None = None
    dispatched: list[int] | None = None

    def kind(self) -> str:
        return "ok" if self.error is None else type(self.error).__name__


def _response(sock: FakeSocket) -> Any:
    return HTTPSocketResponse(sock, block_size=READ_BYTES, method="POST")


def run_reactor(
    first: bytes, reads: list[bytes], consumer: Consumer, content: str | None = None
) -> tuple[Outcome | None, list[float]]:
    """The Python reactor, as ``Reactor.read`` drives ``_Stream``. ``first``: the first read (the
    head, maybe with body bytes). Returns the outcome (None where the whole body came with the
    headers: ``reactor.usable`` refuses such a response) and each read's arrival stamp (``[0]``:
    the first read's; reads it did not reach are given later stamps)."""
    sock = FakeSocket([first, *reads])
    response = _response(sock)
    if response._sock is None:  # the body ended with the headers: LLMUser reads it with the greenlet
        return None, [float(k) for k in range(len(reads) + 1)]
    eat = consumer(None)
    stream = reactor._Stream(response, eat.on_event, decoder_for(content))
    stamps = [stream.last_at]
    try:
        stream.consume(stream.last_at)  # body bytes that came with the headers
    except Exception as exc:
        stream.finish(exc)
    while not stream.done:
        if sock.eofs:
            raise Divergence("reactor: the stream goes on after the end of the file (hang)")
        eat.read = len(stamps)
        stream.readable()
        stamps.append(stream.last_at)
    error = stream.result.exception
    outcome = Outcome(eat.state(), error, len(stamps) - 1 if error is not None else None, eat.dispatched)
    while len(stamps) < len(reads) + 1:
        stamps.append(stamps[-1] + 0.001)
    return outcome, stamps[: len(reads) + 1]


def run_greenlet(
    first: bytes, reads: list[bytes], stamps: list[float], consumer: Consumer, content: str | None = None
) -> Outcome:
    """The reader of TLS connections, as ``LLMUser._read_stream`` loops over it; its clock reads the
    arrival stamp of the last read."""
    sock = FakeSocket([first, *reads], stamps)
    response = _response(sock)
    eat = consumer(None)
    error: BaseException | None = None
    try:
        for name, data, at in iter_events(
            BodyLines(response, decoder_for(content)).readline, lambda: sock.now
        ):
            if eat.on_event(name, data, at):
                break
    except Exception as exc:
        error = exc
    return Outcome(eat.state(), error)


def run_compiled(head: bytes, reads: list[bytes], stamps: list[float], consumer: Consumer) -> Outcome:
    """The compiled reader, as the event loop drives it: ``Body.pump`` reads (here ``feed``, with
    the same stamps) and calls ``_CompiledStream.notified`` with the events or the exception,
    unless every event was a plain chunk it recorded and the body goes on."""
    response = _response(FakeSocket([head]))
    eat = consumer(None)
    body = creader.Body(-1, isinstance(eat, Reading))
    if isinstance(eat, Reading):
        eat = Reading(body)
    stream = reactor._CompiledStream(response, eat.on_event, body)
    k = 0
    for k, (raw, at) in enumerate(zip(reads, stamps[1:], strict=True), 1):
        eat.read = k
        try:
            events = body.feed(raw, at)
        except Exception as exc:
            stream.notified(exc)
        else:
            if events or body.complete:
                stream.notified(events)
        if stream.done:
            break
    if not stream.done:  # pump at the end of the file: read() finds it closed, notified() judges
        k += 1
        body.eof()
        stream.notified([])
        if not stream.done:
            raise Divergence("compiled: the stream goes on after the end of the file (hang)")
    stream.close()
    error = stream.result.exception
    return Outcome(eat.state(), error, k if error is not None else None, eat.dispatched)


# ---- comparing outcomes ---------------------------------------------------------------------------


def known_greenlet_divergence(py: Outcome, green: Outcome, raw: bytes) -> str | None:
    """The name of a reported, not yet fixed divergence between the reactor and the greenlet
    reader; None if new. (None is open: a second response after the body, bug 4, is fixed.)"""
    return None


def known_divergence(py: Outcome, c: Outcome) -> str | None:
    """The name of a reported, not yet fixed divergence between the Python reactor (``py``) and the
    compiled reader (``c``) that explains these outcomes; None for anything new. (None is open:
    lenient chunked framing and the chunk size limit, bug 1, and text that is not a string, bug 2,
    are fixed.)"""
    return None


def _prefix_rule(a: Outcome, b: Outcome) -> bool:
    """Both raised: the events agree up to the earlier error (one list is a prefix of the other,
    and the longer one's extra events arrived no earlier than the shorter one's error). For the
    real consumer: the text timings and the text of one are those of the other cut short (the
    compiled reader records the plain chunks of a read that then fails; Python sees none of them)."""
    if not (isinstance(a.state, list) and isinstance(b.state, list)):
        (ta, xa, *_), (tb, xb, *_) = a.state, b.state
        short, long_ = ((ta, xa), (tb, xb)) if ta[0] <= tb[0] else ((tb, xb), (ta, xa))
        (n, first, _vis, _last, itl), text = short
        if not isinstance(text, str) or not isinstance(long_[1], str):
            return a.state == b.state
        return (
            (n == 0 or first == long_[0][1]) and long_[0][4][: len(itl)] == itl and long_[1].startswith(text)
        )
    short, long_ = (a, b) if len(a.state) <= len(b.state) else (b, a)
    if long_.state[: len(short.state)] != short.state:
        return False
    bound = short.error_read if short.error_read is not None else 0
    return all(k >= bound for k in (long_.dispatched or [])[len(short.state) :])


def compare(label: str, a: Outcome, b: Outcome, *, exact: bool) -> None:
    """``exact``: the same events and the same exception type. Else (the compiled reader against the
    reactor): both raise the same type and agree up to the error, or neither raises and all agree."""
    if a.kind() != b.kind() or (exact and a.state != b.state):
        raise _differ(f"{label}: {a.kind()} vs {b.kind()}", a, b)
    if a.error is None and a.state != b.state:
        raise _differ(f"{label}: different events", a, b)
    if a.error is not None and not _prefix_rule(a, b):
        raise _differ(f"{label}: different events before the error", a, b)


def _show(o: Outcome, start: int = 0) -> str:
    state = o.state[start : start + 3] if isinstance(o.state, list) else o.state
    if isinstance(state, list):
        state = [(n[:40], len(d), d[:80], at) for n, d, at in state]
    return (
        f"  {o.kind()} {str(o.error)[:120]!r} at read {o.error_read}, from event {start}: {repr(state)[:600]}"
    )


def _differ(label: str, a: Outcome, b: Outcome) -> Divergence:
    """The divergence, showing both outcomes from their first different event."""
    start = 0
    if isinstance(a.state, list) and isinstance(b.state, list):
        while start < min(len(a.state), len(b.state)) and a.state[start] == b.state[start]:
            start += 1
        label += f" ({len(a.state)} vs {len(b.state)} events)"
    return Divergence(f"{label}\n{_show(a, start)}\n{_show(b, start)}")


# ---- sse: the decoder against its model and sseclient-py ---------------------------------------


def model_events(stream: bytes) -> tuple[list[tuple[str, str, int]], bool]:
    """The decoder's documented rules, written out plainly: lines end at LF (a CR before it is
    dropped), lone CRs inside end lines too, a last line without LF is dropped, an event still open
    at the end is dispatched. Returns ``(name, data, index of the LF that completed its last data
    line)`` per event, and whether the bound on lines or event data was passed (events then stop
    at that line)."""
    out: list[tuple[str, str, int]] = []
    name, data, size, at = "message", None, 0, -1
    start = 0
    while (lf := stream.find(b"\n", start)) >= 0:
        line = stream[start : lf + 1]
        start = lf + 1
        if len(line) > MAX_EVENT_BYTES:
            return out, True
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        for field_line in line.split(b"\r"):
            if not field_line:
                if data is not None:
                    out.append((name, data, at))
                name, data = "message", None
                continue
            if field_line.startswith(b":"):
                continue
            field, _, value = field_line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"data":
                size = len(value) if data is None else size + 1 + len(value)
                if size > MAX_EVENT_BYTES:
                    return out, True
                text = value.decode("utf-8", "replace")
                data = text if data is None else data + "\n" + text
                at = lf
            elif field == b"event":
                name = value.decode("utf-8", "replace") or "message"
    if len(stream) - start >= MAX_EVENT_BYTES:
        return out, True
    if data is not None:
        out.append((name, data, at))
    return out, False


class _ChunkReads:
    """``readline`` as geventhttpclient's: pulls reads into a buffer until a separator is there;
    the clock reads the index of the last read pulled. Bounded like ``content.BodyLines``."""

    def __init__(self, reads: list[bytes]) -> None:
        self._reads = deque(reads)
        self._buf = bytearray()
        self.now = -1.0

    def clock(self) -> float:
        return self.now

    def readline(self, sep: bytes) -> bytes:
        while (i := self._buf.find(sep)) < 0:
            if len(self._buf) >= MAX_EVENT_BYTES:
                raise EventTooLarge("line")
            if not self._reads:
                self._buf.clear()
                return b""
            self._buf += self._reads.popleft()
            self.now += 1.0
        line = bytes(self._buf[: i + 1])
        del self._buf[: i + 1]
        return line


def decoded(reads: list[bytes]) -> tuple[list[Event], bool]:
    """``iter_events`` on these reads: the events, and whether it raised EventTooLarge."""
    src = _ChunkReads(reads)
    out: list[Event] = []
    try:
        out.extend(iter_events(src.readline, src.clock))
    except EventTooLarge:
        return out, True
    return out, False


def _replace_codec(name: str) -> codecs.CodecInfo | None:
    """``utf-8-replace``: sseclient-py decodes strictly; this lets it decode as our readers do."""
    if name != "utf_8_replace":
        return None
    return codecs.CodecInfo(
        name="utf-8-replace",
        encode=codecs.utf_8_encode,
        decode=lambda b, errors="strict": codecs.utf_8_decode(b, "replace", True),
    )


codecs.register(_replace_codec)


def sseclient_events(reads: list[bytes]) -> list[tuple[str, str]]:
    """sseclient-py on the same reads (the reference of ``tests/test_sse.py``)."""
    from sseclient import SSEClient

    class Source:
        def __iter__(self) -> Any:
            return iter(reads)

        def close(self) -> None:
            pass

    return [(e.event, e.data) for e in SSEClient(Source(), char_enc="utf-8-replace").events()]


def sseclient_domain(stream: bytes, eol: bytes) -> bytes:
    """``stream`` with every line end made ``eol`` (LF or CRLF) and one LF at the end.

    Outside this domain sseclient-py is no reference: it ends an event only where the bytes read
    so far end with CR CR, LF LF or CRLF CRLF, so a blank line of another ending than the line
    before it (LF then CRLF, CRLF then CR, ...) does not end its event, and it dispatches an event
    still open at the end where the decoder drops a last line without its LF."""
    lines = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return eol.join(lines) + eol


def sse_target(data: bytes) -> None:
    """The SSE decoder: model, split invariance, stamps, sseclient-py."""
    s = Script(data)
    stream = s.blown_up(s.payload)
    reads = s.cut(stream)
    got, raised = decoded(reads)
    want, over = model_events(stream)
    # the read that completed each byte, to turn the model's LF offsets into stamps
    ends = list(itertools.accumulate(len(r) for r in reads))

    def read_of(offset: int) -> float:
        return float(bisect.bisect_right(ends, offset))

    expect = [(n, d, read_of(at)) for n, d, at in want]
    if raised != over or got != expect:
        raise Divergence(f"sse: decoder {raised} {got[:5]!r}\n model {over} {expect[:5]!r}")
    whole, whole_raised = decoded([stream])
    if whole_raised != raised or [(n, d) for n, d, _ in whole] != [(n, d) for n, d, _ in got]:
        raise Divergence("sse: the events depend on where the reads split the stream")
    if s.flags & 1:
        eol = b"\r\n" if s.flags & 2 else b"\n"
        clean = sseclient_domain(stream, eol)
        reads = s.cut(clean)
        ours, raised = decoded(reads)
        ref = sseclient_events(reads)
        mine = [(n, d) for n, d, _ in ours]
        if (raised and ref[: len(mine)] != mine) or (not raised and ref != mine):
            raise Divergence(f"sse: sseclient-py {ref[:5]!r}\n decoder {raised} {mine[:5]!r}")


# ---- reader: reactor, greenlet and compiled reader on one response -----------------------------

_HEADS = {
    "chunked": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n",
    "length": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n",
    "close": b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n",
}
_AFTER = (b"\r\n", b"GARBAGE", b"HTTP/1.1 200 OK\r\n\r\n", b"0\r\n\r\n")


def _reference(body: bytes, where: Where, stamps: list[float], reads: list[bytes]) -> Outcome:
    """What every reader must give on a well-framed chunked body (``tests/test_speedups.py``'s
    reference): ``SSEDecoder`` fed line by line, each line stamped with the read that brought its
    LF, until ``[DONE]``."""
    ends = list(itertools.accumulate(len(r) for r in reads))

    def stamp(offset: int) -> float:
        return stamps[bisect.bisect_right(ends, offset) + 1]

    decoder, out = SSEDecoder(), []
    start = 0
    eat = Collect()
    try:
        while (lf := body.find(b"\n", start)) >= 0:
            at = stamp(where[lf])
            decoder.feed(body[start : lf + 1], at, out)
            start = lf + 1
            for event in out:
                if eat.on_event(*event):
                    return Outcome(eat.events, None)
            out.clear()
            if len(body) - start >= MAX_EVENT_BYTES and body.find(b"\n", start) < 0:
                raise EventTooLarge("line")
        if len(body) - start >= MAX_EVENT_BYTES:  # as many bytes still without a line end
            raise EventTooLarge("line")
        last = decoder.end()
        if last is not None:
            eat.on_event(*last)
    except EventTooLarge as exc:
        return Outcome(eat.events, exc)
    return Outcome(eat.events, None)


def reader_target(data: bytes) -> None:
    """One response through the three readers.

    ``flags`` bits 0-1: 0-1 chunked as servers do, 2 the payload is the chunked body itself, 3 not
    chunked (bit 2: Content-Length, else closed at the end); bit 3: corrupt the encoded bytes; bit
    4: the real consumer (``_Reading``) instead of collecting events; bit 5: the first body read
    comes with the headers (the compiled reader cannot take such a body); bit 6: bytes after the
    body; bit 7: large chunks."""
    s = Script(data)
    framing = s.flags & 3
    body = s.blown_up(s.payload)
    where: Where | None = None
    if framing < 2:
        raw, where = chunked(body, s.rng, large=bool(s.flags & 128))
        head = _HEADS["chunked"]
    elif framing == 2:
        raw, head = body, _HEADS["chunked"]
    else:
        raw = body
        head = _HEADS["length"] % len(body) if s.flags & 4 else _HEADS["close"]
    if s.flags & 8 and raw:
        raw, where = corrupted(raw, s.rng), None
    if s.flags & 64:
        raw += _AFTER[s.rng.randrange(len(_AFTER))]
        where = None
    head += b"\r\n"
    reads = s.cut(raw)
    with_body = bool(s.flags & 32) and bool(reads)
    if with_body:  # the first read brings the head and as much of the body as fits
        fits = READ_BYTES - len(head)
        first, rest = head + reads[0][:fits], ([reads[0][fits:]] if reads[0][fits:] else []) + reads[1:]
    else:
        first, rest = head, reads
    consumer: Consumer = Reading if s.flags & 16 else Collect
    try:
        _response(FakeSocket([first]))
    except HTTPParseError:
        return  # a broken body in the first read: the request fails before any reader starts
    py, stamps = run_reactor(first, rest, consumer)
    green = run_greenlet(first, rest, stamps, consumer)
    if py is None:
        return
    try:
        compare("reactor vs greenlet", py, green, exact=True)
    except Divergence:
        if known_greenlet_divergence(py, green, raw) is None:
            raise
    if where is not None and consumer is Collect and not with_body:
        compare("reactor vs reference", py, _reference(body, where, stamps, rest), exact=True)
    if head.startswith(_HEADS["chunked"]) and not with_body and creader is not None:
        c = run_compiled(head, rest, stamps, consumer)
        try:
            compare("reactor vs compiled", py, c, exact=False)
        except Divergence:
            if known_divergence(py, c) is None:
                raise


# ---- plain: the plain-chunk scanner against plain_content ---------------------------------------


def _json_of(s: Script) -> bytes:
    """A chunk shaped like a real one from the payload: the payload is the content text, the
    ``splits`` byte picks the fields that decide plainness, ``big`` picks a nesting depth."""
    pick = s.splits
    rng = s.rng
    text = s.payload.decode("utf-8", "replace")
    values: list[Any] = [None, "", "x", 0, 1, False, True, [], {}, "stop", {"completion_tokens": 2}]
    delta: dict[str, Any] = {"content": text if pick & 1 else rng.choice(values)}
    if pick & 2:
        delta[rng.choice(["reasoning_content", "reasoning", "role", "tool_calls"])] = rng.choice(values)
    choice: dict[str, Any] = {"index": 0, "delta": delta}
    if pick & 4:
        choice["finish_reason"] = rng.choice(values)
    obj: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}
    if pick & 8:
        obj[rng.choice(["usage", "timings", "error", "object", "choices"])] = rng.choice(values)
    depth = s.big[1] * 8 if s.big[0] & 1 else 0
    nested: Any = rng.choice(values)
    for k in range(depth):
        nested = [nested] if k % 2 else {"k": nested}
    if depth:
        (delta if pick & 16 else obj)["deep"] = nested
    items = list(obj.items())
    rng.shuffle(items)
    dumped = orjson.dumps(dict(items)) if depth < 250 else _dump_deep(dict(items))
    if pick & 32:
        dumped = dumped.replace(b":", b" : ").replace(b",", b" ,\t")
    if pick & 64:  # a duplicate key: orjson keeps the last one
        dumped = (
            dumped[:-1] + b',"choices":[]}'
            if pick & 128
            else dumped.replace(b'"content"', b'"content":1,"content"', 1)
        )
    return dumped


def _dump_deep(obj: Any) -> bytes:
    """orjson refuses to write more than 255 levels; json has no such limit (within recursion)."""
    import json

    return json.dumps(obj, ensure_ascii=False).encode()


def python_text(data: bytes) -> str | None:
    """What the Python path finds: the text of a plain chunk, else None."""
    try:
        obj = orjson.loads(data.decode("utf-8", "replace"))
    except orjson.JSONDecodeError:
        return None
    return openai_chat.plain_content(obj)


def plain_target(data: bytes) -> None:
    """``flags`` bit 0: the payload is the event's data as is, else it is built into a chunk."""
    if creader is None:
        return
    s = Script(data)
    if s.flags & 1:
        sys_limit = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(max(sys_limit, 20000))
            payload = _json_of(s)
        finally:
            sys.setrecursionlimit(sys_limit)
    else:
        payload = s.payload
    payload = payload.replace(b"\n", b" ").replace(b"\r", b" ")
    body = creader.Body(-1, True)
    event = b"data: " + payload + b"\n\n"
    handed = body.feed(b"%x\r\n%s\r\n" % (len(event), event), 1.0)
    n, first, visible, last, itl, text = body.timing()
    want = python_text(payload)
    if handed:
        if n != 0 or text != "" or handed != [("message", payload.decode("utf-8", "replace"), 1.0)]:
            raise Divergence(f"plain: handed over and recorded {n} {text!r} {handed!r}")
        return
    if want is None or text != want or (n, first, visible, last, itl) != (1, 1.0, 1.0, 1.0, b""):
        raise Divergence(f"plain: C took {text!r} of {payload[:200]!r}; Python: {want!r}")


# ---- content: compressed bodies ------------------------------------------------------------------

_CODINGS = ("gzip", "deflate", "deflate-raw", "br", "gzip, br", "x-gzip")


def _compressed(body: bytes, coding: str, rng: random.Random, flushes: int) -> bytes:
    """``body`` compressed as a streaming server would: flushed after the events at ``flushes``
    random points (so that each flush's events can be decoded on arrival)."""
    points = sorted(rng.sample(range(len(body) + 1), min(flushes, len(body) + 1)))
    pieces = [body[i:j] for i, j in zip([0, *points], [*points, len(body)], strict=True)]
    if coding == "gzip, br":
        return _compressed(_compressed(body, "gzip", rng, flushes), "br", rng, 0)
    if coding == "br":
        c = brotli.Compressor(quality=1)
        return b"".join(c.process(p) + c.flush() for p in pieces) + c.finish()
    if coding in ("gzip", "x-gzip") and rng.random() < 0.2:  # two gzip members
        half = len(body) // 2
        return gzip.compress(body[:half], 1) + gzip.compress(body[half:], 1)
    wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15, "deflate-raw": -15}[coding]
    z = zlib.compressobj(1, zlib.DEFLATED, wbits)
    return b"".join(z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH) for p in pieces) + z.flush()


def content_target(data: bytes) -> None:
    """``flags`` bits 0-2: the coding; bit 3: corrupt the compressed bytes; bit 4: the real
    consumer; bit 5: Content-Length instead of chunked; bits 6-7: how many flushes."""
    s = Script(data)
    coding = _CODINGS[(s.flags & 7) % len(_CODINGS)]
    body = s.blown_up(s.payload)
    packed = _compressed(body, coding, s.rng, 1 + (s.flags >> 6) * 5)
    if s.flags & 8 and packed:
        packed = corrupted(packed, s.rng)
    header = b"Content-Encoding: " + coding.replace("deflate-raw", "deflate").encode() + b"\r\n"
    if s.flags & 32:
        raw = packed
        head = _HEADS["length"] % len(packed) + header + b"\r\n"
    else:
        raw, _where = chunked(packed, s.rng, large=True)
        head = _HEADS["chunked"] + header + b"\r\n"
    reads = s.cut(raw)
    consumer: Consumer = Reading if s.flags & 16 else Collect
    name = coding.replace("deflate-raw", "deflate")
    py, stamps = run_reactor(head, reads, consumer, name)
    green = run_greenlet(head, reads, stamps, consumer, name)
    if py is None:
        return
    compare("content: reactor vs greenlet", py, green, exact=True)
    if not s.flags & 8 and consumer is Collect:
        pieces = [body[i : i + READ_BYTES] for i in range(0, len(body), READ_BYTES)]
        plain = run_reactor(_HEADS["close"] + b"\r\n", pieces, Collect)[0]
        assert plain is not None
        names = [(n, d) for n, d, _ in py.state]
        if py.kind() != plain.kind() or names != [(n, d) for n, d, _ in plain.state]:
            raise Divergence(f"content: {coding} {_show(py)}\n uncompressed {_show(plain)}")


from fuzz.plain_flavors import plain_flavors_target  # noqa: E402

TARGETS: dict[str, Callable[[bytes], None]] = {
    "sse": sse_target,
    "reader": reader_target,
    "plain": plain_target,
    "plain_flavors": plain_flavors_target,
    "content": content_target,
}
