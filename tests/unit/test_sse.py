"""The SSE reader on byte streams split at every offset, with a fake clock."""

from __future__ import annotations

import itertools
import random

import pytest

from llm_locust.wire.sse import iter_events


class FakeBody:
    """Mimics geventhttpclient's ``readline``: pulls network chunks into a buffer as needed.

    Chunk i "arrives" at time i (the fake clock reads the arrival time of the last chunk pulled).
    """

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)
        self._buf = b""
        self.now = -1.0

    def clock(self) -> float:
        return self.now

    def readline(self, sep: bytes) -> bytes:
        while sep not in self._buf:
            if not self._chunks:
                self._buf = b""  # like geventhttpclient: a tail without a newline is dropped
                return b""
            self._buf += self._chunks.pop(0)
            self.now += 1.0
        i = self._buf.index(sep) + len(sep)
        line, self._buf = self._buf[:i], self._buf[i:]
        return line


def events(chunks: list[bytes]) -> list[tuple[str, str]]:
    body = FakeBody(chunks)
    return [(name, data) for name, data, _at in iter_events(body.readline, body.clock)]


STREAM = (
    b": keep-alive comment\r\n\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: error\ndata: line one\ndata: line two\n\n"
    b"id: 7\ndata: caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80\n\n"
    b"data:no-space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ("message", '{"a": 1}'),
    ("error", "line one\nline two"),
    ("message", "café — 😀"),
    ("message", "no-space"),
    ("message", "[DONE]"),
]


def test_whole_stream() -> None:
    assert events([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_offset(cut: int) -> None:
    assert events([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    assert events([bytes([b]) for b in STREAM]) == EXPECTED


def test_split_at_every_pair_of_offsets_in_a_short_stream() -> None:
    short = b'data: {"x": "\xc3\xa9"}\r\n\r\ndata: [DONE]\r\n\r\n'
    for i, j in itertools.combinations(range(1, len(short)), 2):
        assert events([short[:i], short[i:j], short[j:]]) == [
            ("message", '{"x": "é"}'),
            ("message", "[DONE]"),
        ]


def test_each_event_is_stamped_when_its_line_arrived() -> None:
    chunks = [b"data: one\n\n", b"data: tw", b"o\n\n", b": ping\n\n", b"data: three\n", b"\n"]
    body = FakeBody(chunks)
    got = [(data, at) for _n, data, at in iter_events(body.readline, body.clock)]
    # chunk 0 arrives at t=0; 'two' completes with chunk 2 (t=2); 'three''s data line at t=4
    assert got == [("one", 0.0), ("two", 2.0), ("three", 4.0)]


def test_events_come_out_before_the_stream_ends() -> None:
    """No batching: an event is yielded as soon as its blank line is read."""
    body = FakeBody([b"data: a\n\n", b"data: b\n\n"])
    it = iter_events(body.readline, body.clock)
    assert next(it)[1] == "a"
    assert body._chunks == [b"data: b\n\n"]  # the second chunk was not read yet


def sseclient_events(chunks: list[bytes]) -> list[tuple[str, str]]:
    """The reference: sseclient-py on the same chunks."""
    from sseclient import SSEClient

    class Source:
        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(chunks)

        def close(self) -> None:
            pass

    return [(e.event, e.data) for e in SSEClient(Source()).events()]


def random_stream(rng: random.Random) -> bytes:
    eol = rng.choice([b"\n", b"\r\n"])
    values = ["", "[DONE]", '{"choices": [{"delta": {"content": " hé"}}]}', "a:b:c", "  two spaces", "😀 x"]
    out = b""
    for _ in range(rng.randint(1, 6)):
        if rng.random() < 0.3:
            out += b": comment" + eol
        if rng.random() < 0.3:
            out += b"event: " + rng.choice([b"error", b"message", b""]) + eol
        if rng.random() < 0.2:
            out += b"id: 42" + eol + b"retry: 100" + eol
        for _ in range(rng.randint(0 if rng.random() < 0.1 else 1, 3)):
            sep = rng.choice([b": ", b":"])
            out += b"data" + sep + rng.choice(values).encode() + eol
        out += eol
    if rng.random() < 0.2:
        out += b"data: tail without blank line" + eol
    return out


@pytest.mark.parametrize("seed", range(300))
def test_same_events_as_sseclient_py(seed: int) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng)
    cuts = sorted(rng.sample(range(1, len(stream)), k=min(len(stream) - 1, rng.randint(0, 6))))
    chunks = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert events(chunks) == sseclient_events(chunks) == sseclient_events([stream])


def test_reference_agrees_on_the_fixed_stream() -> None:
    assert sseclient_events([STREAM]) == EXPECTED


def test_kernel_receive_time_corrects_for_loop_delay() -> None:
    """An event handled 50 ms after its bytes arrived is stamped with its arrival, not its handling."""
    import time as _time

    from llm_locust.wire import rxclock

    sock = rxclock.create_tcp_socket(2, 1, 0)
    try:
        sock.rx_ns = _time.time_ns() - 50_000_000
        stamped = rxclock.event_clock(sock)()
        assert _time.perf_counter() - stamped == pytest.approx(0.050, abs=0.005)
        sock.rx_ns = 0  # no kernel timestamp: plain perf_counter
        assert rxclock.event_clock(sock)() == pytest.approx(_time.perf_counter(), abs=0.002)
    finally:
        sock.close()
