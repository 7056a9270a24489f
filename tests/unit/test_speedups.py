"""The compiled body reader (llm_locust/_native/_speedups.c) against the Python decoder it replaces.

Every random body is chunked at random sizes, cut into reads at random offsets, and fed to the C
reader; the Python reference (``sse.SSEDecoder``, line by line, each line stamped with the read
that completed it, as the Python reactor does) must give the same events with the same stamps.
"""

from __future__ import annotations

import random
import socket
import time
from typing import Any

import gevent
import pytest
from geventhttpclient.response import HTTPParseError

from llm_locust._native import speedups
from llm_locust.wire import rxclock
from llm_locust.wire.sse import SSEDecoder

creader = speedups.module()


def test_the_compiled_reader_is_built() -> None:
    # CI installs a C compiler; without one, pip installs the package without the extension and
    # the Python reactor reads the streams (LLM_LOCUST_READER=auto falls back to it).
    assert creader is not None, "llm_locust._native._speedups was not built: is a C compiler installed?"


def body_of(rng: random.Random) -> bytes:
    """An event stream with every shape the decoder knows, in random order and line endings."""
    pieces = []
    for i in range(rng.randint(1, 25)):
        eol = rng.choice([b"\n", b"\r\n", b"\r\n", b"\n", b"\r"])
        kind = rng.randrange(9)
        if kind <= 3:
            pieces.append(b'data: {"i": %d, "t": "\xc3\xa9\xe2\x82\xac"}' % i + eol + eol)
        elif kind == 4:
            pieces.append(b": comment " + str(i).encode() + eol)
        elif kind == 5:
            pieces.append(b"event: error" + eol + b'data: {"e": %d}' % i + eol + eol)
        elif kind == 6:
            pieces.append(b"data:no-space" + eol + b"data" + eol + b"data:  two" + eol + eol)
        elif kind == 7:
            pieces.append(b"id: 7" + eol + b"retry: 10" + eol + b"event:" + eol + b"data: x" + eol + eol)
        else:
            pieces.append(eol)  # a blank line with nothing open
    if rng.random() < 0.3:
        pieces.append(b"data: unterminated")  # a last line without its newline: dropped
    elif rng.random() < 0.3:
        pieces.append(b"data: open event\n")  # an event without its blank line: dispatched at the end
    return b"".join(pieces)


def chunk(body: bytes, rng: random.Random) -> tuple[bytes, list[int]]:
    """``body`` in chunks of random sizes (with the odd extension and trailer), and for each body
    byte its offset in the encoded stream."""
    out = bytearray()
    where: list[int] = []
    i = 0
    while i < len(body):
        n = min(len(body) - i, rng.randint(1, 30))
        ext = b";name=value" if rng.random() < 0.1 else b""
        size = b"%x" % n if rng.random() < 0.5 else b"%X" % n
        out += size + ext + b"\r\n"
        where.extend(range(len(out), len(out) + n))
        out += body[i : i + n] + b"\r\n"
        i += n
    out += b"0\r\nX-Trailer: 1\r\n\r\n" if rng.random() < 0.2 else b"0\r\n\r\n"
    return bytes(out), where


def cuts(n: int, rng: random.Random) -> list[int]:
    points = sorted(rng.sample(range(1, n), min(n - 1, rng.randint(0, 12)))) if n > 1 else []
    return [0, *points, n]


def reference(body: bytes, where: list[int], bounds: list[int]) -> list[tuple[str, str, float]]:
    """What the Python reactor gives: lines split at LF, stamped with the read that completed them."""

    def read_index(raw_offset: int) -> float:
        return float(next(k for k in range(len(bounds) - 1) if bounds[k] <= raw_offset < bounds[k + 1]))

    decoder, out = SSEDecoder(), []
    start = 0
    while (lf := body.find(b"\n", start)) >= 0:
        decoder.feed(body[start : lf + 1], read_index(where[lf]), out)
        start = lf + 1
    last = decoder.end()
    if last is not None:
        out.append(last)
    return out


def compiled(raw: bytes, bounds: list[int]) -> tuple[list[tuple[str, str, float]], Any]:
    body = creader.Body(-1)
    out = []
    for k in range(len(bounds) - 1):
        out += body.feed(raw[bounds[k] : bounds[k + 1]], float(k))
    if body.complete:  # the response's parser would say the message ended here
        body.end(out)
    return out, body


@pytest.mark.parametrize("seed", range(400))
def test_same_events_and_stamps_as_the_python_decoder(seed: int) -> None:
    rng = random.Random(seed)
    body = body_of(rng)
    raw, where = chunk(body, rng)
    bounds = cuts(len(raw), rng)
    got, state = compiled(raw, bounds)
    assert got == reference(body, where, bounds)
    assert state.complete and not state.closed


def test_every_split_of_a_short_stream() -> None:
    body = b'data: {"a": 1}\r\n\r\n: c\n\nevent: e\ndata: x\ndata: y\n\ndata: [DONE]\n\n'
    raw, where = chunk(body, random.Random(5))
    whole = reference(body, where, [0, len(raw)])
    for cut in range(1, len(raw)):
        got, _ = compiled(raw, [0, cut, len(raw)])
        assert [(n, d) for n, d, _at in got] == [(n, d) for n, d, _at in whole]


def test_utf8_split_between_chunks_and_invalid_bytes() -> None:
    raw = b"3\r\ndat\r\n5\r\na: \xe2\x82\r\n4\r\n\xac\xff\n\n\r\n0\r\n\r\n"
    got, _ = compiled(raw, [0, 9, len(raw)])
    assert [(n, d) for n, d, _at in got] == [("message", "€\ufffd")]


def test_the_terminal_chunk_and_what_follows_are_kept_for_the_parser() -> None:
    """Trailers (and bytes after the body) are judged by the response's own parser, as in Python."""
    raw = b"5\r\ndata:\r\n1\r\n\n\r\n0;ext=1\r\nX-Trailer: 1\r\n\r\nHTTP/1.1"
    got, body = compiled(raw, [0, 20, len(raw)])
    assert got == [("message", "", 0.0)]
    assert body.complete and body.take_extra() == b"0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1"
    assert body.take_extra() == b""


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"3z\r\n", "invalid character in chunk size"),
        (b"\r\n", "no chunk size"),
        (b"3\rx", "expected LF after chunk size"),
        (b"3\r\nabcX", "missing expected CR after chunk data"),
        (b"3\r\nabc\rX", "expected LF after chunk data"),
        (b"fffffffffffffffff\r\n", "chunk size overflow"),
        # what llhttp (the Python reactor's parser) refuses too
        (b"5\ndata:\r\n", "invalid character in chunk size"),
        (b"5\r\ndata:\n", "missing expected CR after chunk data"),
        (b"5 \r\n", "invalid character in chunk size"),
        (b"5;\x01\r\n", "invalid character in chunk extensions"),
        (b"5;x=y z\r\n", "invalid character in chunk extensions value"),
        (b'5;x="a"b\r\n', "invalid character in chunk extensions quote value"),
        (b'5;x="\\\x01"\r\n', "invalid quoted-pair"),
    ],
)
def test_a_broken_chunked_body_raises_the_parsers_error(raw: bytes, why: str) -> None:
    with pytest.raises(HTTPParseError, match=why):
        creader.Body(-1).feed(raw, 0.0)


def test_its_clock_is_perf_counter() -> None:
    for _ in range(100):
        before = time.perf_counter()
        now = creader.monotonic()
        after = time.perf_counter()
        assert before <= now <= after


def tcp_pair() -> tuple[Any, socket.socket]:
    """(our client socket, the server's end) over 127.0.0.1."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = rxclock.create_tcp_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    client.connect(server.getsockname())
    peer, _ = server.accept()
    server.close()
    return client, peer


def test_read_stamps_with_the_kernel_receive_time_and_reports_eof() -> None:
    client, peer = tcp_pair()
    try:
        body = creader.Body(client._sock.fileno())
        assert body.read() is None  # nothing waiting: no block, no event
        peer.sendall(b"d\r\ndata: hello\n\n\r\n")
        sent = time.perf_counter()
        time.sleep(0.2)  # the bytes wait in the kernel; their stamp is their arrival, not this read
        got = body.read()
        assert [(n, d) for n, d, _at in got] == [("message", "hello")]
        assert abs(got[0][2] - sent) < 0.02 and body.last_at == got[0][2]
        peer.close()
        time.sleep(0.05)
        assert body.read() == [] and body.closed and not body.complete
    finally:
        client.close()
        peer.close()


HEAD = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\n"
BLOCK_ENDS = (25, len(HEAD))


@pytest.mark.parametrize("cut", range(1, len(HEAD) + 1))
def test_header_mode_reads_exactly_the_headers(cut: int) -> None:
    """Whatever the segments, no header read crosses the end of a header block, and the body stays
    in the kernel for the compiled reader."""
    sock, peer = tcp_pair()
    body = b"5\r\nhello\r\n"
    try:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        peer.recv(100)
        peer.sendall(HEAD[:cut])
        gevent.sleep(0.01)
        reads = [sock.recv(4096)]
        peer.sendall(HEAD[cut:] + body)
        gevent.sleep(0.01)
        while sum(map(len, reads)) < len(HEAD):
            reads.append(sock.recv(4096))
        assert b"".join(reads) == HEAD
        ends = {sum(map(len, reads[: k + 1])) for k in range(len(reads))}
        assert set(BLOCK_ENDS) <= ends
        assert rxclock.end_headers(sock) is True
        assert sock.recv(4096) == body  # header mode is off: an ordinary read
        assert rxclock.end_headers(sock) is False
    finally:
        sock.close()
        peer.close()


def test_lf_only_header_blocks_end_too() -> None:
    sock, peer = tcp_pair()
    try:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        peer.recv(100)
        peer.sendall(b"HTTP/1.1 200 OK\nA: b\n\nBODY")
        gevent.sleep(0.01)
        assert sock.recv(4096) == b"HTTP/1.1 200 OK\nA: b\n\n"
    finally:
        sock.close()
        peer.close()


@pytest.mark.parametrize("seed", range(300))
def test_same_events_as_sseclient_py(seed: int) -> None:
    """The issue's rule for a hand-written decoder: the same events as sseclient-py, on test_sse's
    random streams, here chunk-encoded and read in random pieces."""
    from test_sse import random_stream, sseclient_events

    rng = random.Random(seed)
    stream = random_stream(rng)
    raw, _where = chunk(stream, rng)
    got, _ = compiled(raw, cuts(len(raw), rng))
    assert [(n, d) for n, d, _at in got] == sseclient_events([stream])
