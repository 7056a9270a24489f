"""The mock engine's timing models, served in-process on port 0."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import gevent
import orjson
import pytest
from geventhttpclient import HTTPClient

from llm_locust.mock.engine import Engine, Timing
from llm_locust.mock.server import MockServer
from llm_locust.wire import rxclock
from llm_locust.workload.tokenizer import load_tokenizer


def serve(engine: Engine) -> Iterator[str]:
    server = MockServer(engine)
    port = server.start("127.0.0.1", 0)
    # Linux turns receive timestamps on host-wide in a deferred work item when the first socket asks
    # (net_enable_timestamp, again after the last one closed): data arriving before it runs is
    # stamped when read, so a request the busy mock read late would start its schedule late (one of
    # 50 by 5.75 ms in a CI run). The timing tests start once it has run.
    gevent.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def stream(url: str, max_tokens: int) -> tuple[float, list[float], str, float]:
    """Return (ttft_s, token arrival times, text, headers_s) of one streamed request: from the
    instant the request was written to the kernel's receive time of each token, so that the test
    clients sharing this process with the mock do not add their own delays."""
    client = HTTPClient.from_url(url, concurrency=1)
    pool = client._connection_pool
    pool._create_tcp_socket = rxclock.create_tcp_socket
    pool._is_socket_alive = rxclock.socket_alive
    client.get("/health").read()  # connected first
    body = orjson.dumps(
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens, "stream": True}
    )
    resp = client.post("/v1/chat/completions", body=body)
    sock = resp._sock
    rxclock.end_headers(sock)
    clock = rxclock.event_clock(sock)
    sent = sock.sent_at_s
    headers = clock()
    times: list[float] = []
    text = ""
    while line := resp.readline(b"\n"):
        if line.startswith(b"data: {"):
            delta = orjson.loads(line[6:])["choices"]
            if delta and delta[0]["delta"].get("content"):
                times.append(clock())
                text += delta[0]["delta"]["content"]
    client.close()
    return times[0] - sent, times, text, headers - sent


@pytest.fixture
def fixed() -> Iterator[str]:
    yield from serve(Engine("fixed", Timing(ttft_ms=50, itl_ms=10)))


def test_non_streaming_usage_matches_the_tokenizer(fixed: str) -> None:
    client = HTTPClient.from_url(fixed)
    body = orjson.dumps({"messages": [{"role": "user", "content": "Hello there, mock."}], "max_tokens": 12})
    resp = orjson.loads(client.post("/v1/chat/completions", body=body).read())
    tok = load_tokenizer("cl100k_base")
    assert resp["usage"]["completion_tokens"] == 12 == tok.count(resp["choices"][0]["message"]["content"])
    assert resp["usage"]["prompt_tokens"] == tok.count("Hello there, mock.")


def test_fixed_engine_keeps_its_absolute_schedule_under_load(fixed: str) -> None:
    jobs = [gevent.spawn(stream, fixed, 20) for _ in range(50)]
    gevent.joinall(jobs, raise_error=True)
    # 50 requests at once on one core: the mock reads some of them late, but each schedule starts
    # when its request reached the socket (the headers, sent after the read, may come late).
    ttfts = [j.value[0] * 1000 for j in jobs]
    gaps = [(b - a) * 1000 for j in jobs for a, b in zip(j.value[1], j.value[1][1:], strict=False)]
    assert statistics.median(ttfts) == pytest.approx(50, abs=3)
    # Where each schedule began, after its request was sent: token k is due at origin + 50 ms +
    # 10 ms * k and a stalled loop only makes tokens late, so the earliest (arrival - 10 ms * k)
    # is the origin. A schedule started at the mock's read, not the socket's arrival, is late for
    # all 20 tokens; one late wake-up (a loaded machine) is late for a few.
    late_origins_ms = []
    for ttft_s, times, _, _ in (j.value for j in jobs):
        sent = times[0] - ttft_s
        origin = min(t - 0.010 * k for k, t in enumerate(times)) - 0.050
        late_origins_ms.append((origin - sent) * 1000)
    assert max(late_origins_ms) < 5
    assert statistics.mean(gaps) == pytest.approx(10.0, abs=0.3)
    tok = load_tokenizer("cl100k_base")
    assert all(tok.count(j.value[2]) == 20 for j in jobs)


def test_slots_engine_queues_fifo() -> None:
    for url in serve(Engine("slots", Timing(ttft_ms=20, itl_ms=10), slots=1)):
        jobs = [gevent.spawn(stream, url, 10) for _ in range(3)]
        gevent.joinall(jobs, raise_error=True)
        ttfts = sorted(j.value[0] * 1000 for j in jobs)
        one = 20 + 9 * 10  # one request's duration
        assert ttfts[0] == pytest.approx(20, abs=5)
        assert ttfts[1] == pytest.approx(20 + one, abs=8)
        assert ttfts[2] == pytest.approx(20 + 2 * one, abs=12)


def test_batching_engine_trades_per_stream_speed_for_throughput() -> None:
    for url in serve(Engine("batching", Timing(ttft_ms=10, itl_ms=10), batch_exponent=0.5)):
        _, alone, _, _ = stream(url, 20)
        jobs = [gevent.spawn(stream, url, 20) for _ in range(16)]
        gevent.joinall(jobs, raise_error=True)
        solo_itl = (alone[-1] - alone[0]) / 19
        batch_itl = statistics.median((j.value[1][-1] - j.value[1][0]) / 19 for j in jobs)
        assert batch_itl == pytest.approx(solo_itl * 16**0.5, rel=0.15)  # step = itl * n ** 0.5
        assert 16 / batch_itl > 3 * (1 / solo_itl)  # aggregate tokens/s rises


def test_a_request_read_late_keeps_its_ttft_from_arrival() -> None:
    """The mock's loop is busy when a request arrives: its schedule still starts when the request
    reached the socket (kernel receive time), so the client's TTFT stays the configured one, and the
    late read is counted in /mock/stats."""
    import re
    import socket

    server = MockServer(Engine("fixed", Timing(ttft_ms=50, itl_ms=10)))
    port = server.start("127.0.0.1", 0)
    # Linux turns receive timestamps on for the whole host in a deferred work item when the first
    # socket asks (net_enable_timestamp): data that arrives before it runs is stamped when it is
    # read. On a quiet host the request below raced it (read 40 ms late, stamped then, 3 runs in 8).
    gevent.sleep(0.1)
    try:
        req = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True}
        body = orjson.dumps(req)
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        sock = rxclock.create_tcp_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
        sock.connect(("127.0.0.1", port))
        sock.sendall(head + body)
        rxclock.end_headers(sock)
        sent = sock.sent_at_s
        while time.perf_counter() - sent < 0.04:  # the whole process is busy: the mock cannot read
            pass
        tokens: list[float] = []  # when each token reached us (a chunk's tokens share its time)
        while len(tokens) < 8:
            chunk = sock.recv(65536)
            assert chunk, "the stream ended early"
            at = rxclock.corrected(time.perf_counter(), sock.rx_ns)
            tokens += [at] * len(re.findall(rb'"content":"[^"]', chunk))
        sock.close()
        # Token k is due at arrival + 50 ms + 10 ms * k; this process's own busy moments (or a
        # loaded machine's) only make some late, so the earliest (time - 10 ms * k) is where the
        # schedule began: 50 ms after the send, not 50 + the 40 ms the request waited unread.
        origin_ms = min((t - sent) * 1000 - 10 * k for k, t in enumerate(tokens))
        assert origin_ms == pytest.approx(50, abs=5)
        assert server.snapshot()["served"]["requests_read_late_over_5ms"] == 1
    finally:
        server.stop()
