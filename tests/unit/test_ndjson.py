"""NDJSON streams (Ollama's native API): the decoder on byte streams split at every offset, and the
compiled reader's NDJSON mode against it on chunked bodies cut into random reads."""

from __future__ import annotations

import random

import pytest
from test_speedups import chunk, cuts

from llm_locust._native import speedups
from llm_locust.wire.ndjson import NDJSONDecoder
from llm_locust.wire.sse import MAX_EVENT_BYTES, EventTooLarge, iter_events

creader = speedups.module()

STREAM = (
    b'{"model":"m","message":{"role":"assistant","content":"The"},"done":false}\n'
    b"\n"
    b'{"model":"m","message":{"role":"assistant","content":" caf\xc3\xa9"},"done":false}\r\n'
    b"   \t\n"
    b'{"model":"m","message":{"role":"assistant","content":""},"done":true,"eval_count":2}'
)
EXPECTED = [
    '{"model":"m","message":{"role":"assistant","content":"The"},"done":false}',
    '{"model":"m","message":{"role":"assistant","content":" café"},"done":false}',
    '{"model":"m","message":{"role":"assistant","content":""},"done":true,"eval_count":2}',
]


class FakeBody:
    """geventhttpclient-style readline over chunks; a last line without LF comes out as it is (as
    BodyLines does with ``tail=True``). Chunk i arrives at time i."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)
        self._buf = b""
        self.now = -1.0

    def readline(self, sep: bytes) -> bytes:
        while sep not in self._buf:
            if not self._chunks:
                line, self._buf = self._buf, b""
                return line
            self._buf += self._chunks.pop(0)
            self.now += 1.0
        i = self._buf.index(sep) + len(sep)
        line, self._buf = self._buf[:i], self._buf[i:]
        return line


def lines_of(chunks: list[bytes]) -> list[str]:
    body = FakeBody(chunks)
    return [data for name, data, _at in iter_events(body.readline, lambda: body.now, NDJSONDecoder())]


def test_whole_stream() -> None:
    assert lines_of([STREAM]) == EXPECTED


def test_every_split() -> None:
    for cut in range(1, len(STREAM)):
        assert lines_of([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_a_line_is_stamped_when_its_last_byte_arrived() -> None:
    body = FakeBody([b'{"a":', b"1}\n", b'{"b":2}\n'])
    got = [(data, at) for _n, data, at in iter_events(body.readline, lambda: body.now, NDJSONDecoder())]
    assert got == [('{"a":1}', 1.0), ('{"b":2}', 2.0)]


def test_a_line_over_the_bound_is_refused() -> None:
    decoder = NDJSONDecoder()
    decoder.feed(b"x" * (MAX_EVENT_BYTES - 1) + b"\n", 0.0, [])  # exactly the bound: taken
    with pytest.raises(EventTooLarge):
        decoder.feed(b"x" * MAX_EVENT_BYTES + b"\n", 0.0, [])


def reference(body: bytes, where: list[int], bounds: list[int]) -> list[tuple[str, str, float]]:
    """Lines stamped with the read that completed them; a last line without LF at the last read."""

    def read_index(raw_offset: int) -> float:
        return float(next(k for k in range(len(bounds) - 1) if bounds[k] <= raw_offset < bounds[k + 1]))

    decoder, out, start = NDJSONDecoder(), [], 0
    while (lf := body.find(b"\n", start)) >= 0:
        decoder.feed(body[start : lf + 1], read_index(where[lf]), out)
        start = lf + 1
    if start < len(body):
        decoder.feed(body[start:], float(len(bounds) - 2), out)
    return out


def random_body(rng: random.Random) -> bytes:
    pieces = []
    for i in range(rng.randint(1, 20)):
        kind = rng.randrange(5)
        eol = rng.choice([b"\n", b"\r\n"])
        if kind <= 2:
            pieces.append(b'{"message":{"content":"t%d \xc3\xa9"},"done":false}' % i + eol)
        elif kind == 3:
            pieces.append(rng.choice([b"\n", b"  \n", b"\t\r\n"]))  # blank lines
        else:
            pieces.append(b'{"bad json' + bytes([rng.randrange(256)]) + eol)
    if rng.random() < 0.5:
        pieces.append(b'{"done":true}')  # the last line without its LF
    return b"".join(pieces)


@pytest.mark.skipif(creader is None, reason="llm_locust._native._speedups is not built")
@pytest.mark.parametrize("seed", range(200))
def test_the_compiled_ndjson_reader_gives_the_same_lines_and_stamps(seed: int) -> None:
    rng = random.Random(seed)
    body = random_body(rng)
    raw, where = chunk(body, rng)
    bounds = cuts(len(raw), rng)
    reader = creader.Body(-1, False, True)
    got: list[tuple[str, str, float]] = []
    for k in range(len(bounds) - 1):
        got += reader.feed(raw[bounds[k] : bounds[k + 1]], float(k))
    assert reader.complete
    reader.end(got)
    assert got == reference(body, where, bounds)
