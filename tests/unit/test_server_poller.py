"""The --server-metrics poller against the in-process mock's /metrics (vLLM's and llama.cpp's names),
a server without one, a closed port, and where the API key may go."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator

import gevent
import orjson
import pytest
from gevent.server import StreamServer
from geventhttpclient import HTTPClient

from llm_locust.locust import servermetrics
from llm_locust.locust.servermetrics import Poller, check_option, metrics_url
from llm_locust.mock.engine import Engine, Timing
from llm_locust.mock.server import MockServer
from llm_locust.mock.workers import merge
from llm_locust.wire.urls import public_url


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servermetrics, "INTERVAL_S", 0.05)


def until(done: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        gevent.sleep(0.01)


def serve(metrics: str) -> Iterator[tuple[str, MockServer]]:
    server = MockServer(Engine("batching", Timing(ttft_ms=5, itl_ms=5)), metrics=metrics)
    port = server.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.stop()


def chat(url: str, n: int, max_tokens: int) -> None:
    """``n`` streamed requests at once, each read to its end."""

    def one() -> None:
        client = HTTPClient.from_url(url, concurrency=1)
        body = orjson.dumps({"messages": [{"role": "user", "content": "count"}], "max_tokens": max_tokens,
                             "stream": True})  # fmt: skip
        resp = client.post("/v1/chat/completions", body=body)
        resp.read()
        client.close()

    gevent.joinall([gevent.spawn(one) for _ in range(n)], raise_error=True)


@pytest.mark.parametrize("names", ["vllm", "llamacpp"])
def test_the_window_counts_what_the_mock_served(names: str) -> None:
    for url, server in serve(names):
        chat(url, 2, 5)  # before the test: not in its window
        poller = Poller("auto", url + "/v1")
        poller.start()
        until(lambda p=poller: p.active)
        assert poller.active
        busy = gevent.spawn(chat, url, 6, 40)
        gevent.sleep(0.15)  # half-way through the streams (about 0.3 s), three polls later
        running = poller.now()[0]
        busy.get()
        poller.stop()
        served = merge([server.snapshot()])["served"]
        res = poller.results({"total_output_tokens": 6 * 40})
        assert res is not None
        assert res["engine"] == {"vllm": "vllm", "llamacpp": "llama.cpp"}[names]
        assert res["url"] == url + "/metrics"
        assert res["tokens_check"] == {
            "server_generation_tokens": 240,
            "our_output_tokens": 240,
            "difference": 0,
        }
        assert res["prompt_tokens"] == 6 * served["prompt_tokens"] // 8  # 8 requests, the same prompt
        assert running == 6 and res["running"]["max"] == 6 and res["running"]["last"] == 0
        assert res["failures"] == 0 and res["window"]["polls"] == res["polls"] >= 3
        if names == "vllm":
            assert res["latency"]["decode"]["count"] == 6
            assert res["kv_cache_usage"]["max"] == pytest.approx(6 / 256)


def test_auto_turns_itself_off_quietly_without_metrics(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llm_locust")
    for url, _server in serve("off"):
        poller = Poller("auto", url)
        poller.start()
        gevent.sleep(0.3)
        poller.stop()
        assert not poller.active and poller.results({}) is None
        lines = [r for r in caplog.records if "--server-metrics" in r.getMessage()]
        assert [r.levelno for r in lines] == [logging.INFO]
        assert "HTTP 404" in lines[0].getMessage()


def test_an_explicit_url_that_fails_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it
    poller = Poller(f"http://user:secret@127.0.0.1:{port}/metrics?token=abc", "http://127.0.0.1:1")
    poller.start()
    gevent.sleep(0.3)
    poller.stop()
    lines = [r.getMessage() for r in caplog.records if "--server-metrics" in r.getMessage()]
    assert len(lines) == 1 and caplog.records[-1].levelno == logging.WARNING
    assert "secret" not in lines[0] and "abc" not in lines[0]
    assert poller.results({}) is None


def test_failed_polls_are_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    for url, server in serve("vllm"):
        poller = Poller(url + "/metrics", url)
        poller.start()
        until(lambda p=poller: p.polls >= 2)
        server.stop()
        until(lambda p=poller: p.failures >= 3)
        poller.stop()
        res = poller.results({"total_output_tokens": 0})
        assert res is not None and res["failures"] >= 3 and res["polls"] >= 2
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def headers_seen() -> Iterator[tuple[str, list[str]]]:
    """A server that answers every GET with a Prometheus page and keeps each request's headers."""
    seen: list[str] = []

    def handle(sock: socket.socket, _addr: object) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            got = sock.recv(65536)
            if not got:
                return
            data += got
        seen.append(data.decode("latin-1"))
        page = b"# TYPE up gauge\nup 1\n"
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)
        )
        sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.stop()


def test_the_key_goes_only_to_the_hosts_own_origin() -> None:
    for metrics, seen in headers_seen():
        same = Poller(metrics + "/metrics", metrics + "/v1", api_key="sk-SECRET")
        same.poll(probe=True)
        other = Poller(metrics + "/metrics", "http://127.0.0.1:9/v1", api_key="sk-SECRET")
        other.poll(probe=True)
        assert "authorization: bearer sk-secret" in seen[0].lower()
        assert "sk-SECRET" not in seen[1]


def test_option_values() -> None:
    assert check_option("") == "auto" and check_option("off") == "off"
    assert metrics_url("auto", "https://h:8443/v1") == "https://h:8443/metrics"
    assert metrics_url("off", "http://h") is None
    assert public_url("http://u:p@h:1/metrics?k=v") == "http://h:1/metrics"
    with pytest.raises(ValueError, match="--server-metrics 'ftp://h/metrics' must be auto, off or an http"):
        check_option("ftp://h/metrics")


def test_the_window_starts_at_the_first_poll_after_the_warmup() -> None:
    for url, _server in serve("vllm"):
        warm = [True]
        poller = Poller("auto", url, warmup_now=lambda w=warm: w[0])
        poller.start()
        until(lambda p=poller: p.active)
        chat(url, 2, 10)  # within --warmup: the server counts them, the window must not
        seen = poller.polls
        until(lambda p=poller, n=seen: p.polls >= n + 2)
        warm[0] = False
        seen = poller.polls
        until(lambda p=poller, n=seen: p.polls >= n + 1)  # the window's first poll
        chat(url, 3, 7)
        poller.stop()
        res = poller.results({"total_output_tokens": 21})
        assert res is not None and res["generation_tokens"] == 21 and res["tokens_check"]["difference"] == 0
        assert 2 <= res["window"]["polls"] < res["polls"]


def test_a_stats_reset_starts_the_window_over() -> None:
    """LLMState.reset (Locust's reset_stats event and --reset-stats at the end of spawning alike)
    restarts the server's window with ours: its first poll after the reset is the window's start."""
    from types import SimpleNamespace

    from llm_locust.locust.state import LLMState

    for url, _server in serve("vllm"):
        chat(url, 2, 5)
        poller = Poller("auto", url + "/v1")
        poller.start()
        until(lambda p=poller: p.window.polls >= 2)
        state = LLMState(SimpleNamespace(runner=None, parsed_options=None, events=None))
        state.server_metrics = poller
        state.reset()
        assert poller.window.polls == 0
        until(lambda p=poller: p.window.polls >= 1)  # the window's first poll, then the requests
        chat(url, 3, 10)
        poller.stop()
        res = poller.results({"total_output_tokens": 30})
        assert res is not None and res["tokens_check"]["difference"] == 0  # the 2 before, left out
