"""``llm-locust mock --record-arrivals``: the peak in flight computed exactly from (arrived, ended)
intervals, and ``/mock/stats``' ``arrivals_s`` and ``peak_in_flight`` from one process (in-process,
port 0) and merged over ``--workers 2``."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gevent
import orjson
import pytest
from geventhttpclient import HTTPClient

from llm_locust.mock.arrivals import INTERVALS, ArrivalLog, peak_in_flight, publish
from llm_locust.mock.engine import Engine, Timing
from llm_locust.mock.server import MockServer
from llm_locust.mock.workers import merge
from tests.conftest import Mock

#: how much earlier than its client's send a request may seem to arrive (the kernel receive time is
#: moved onto perf_counter's clock through the wall clock)
_SLACK_S = 0.005
#: how much later: the request reached the socket as it was sent (in-process), or once urllib had
#: connected and written it (--workers)
_SOON_S = 0.005
_SOON_WORKERS_S = 0.05


# -- the sweep ------------------------------------------------------------------------------------
def test_peak_of_no_requests_is_zero() -> None:
    assert peak_in_flight([]) == 0


def test_peak_counts_overlaps_exactly() -> None:
    assert peak_in_flight([(0, 1)]) == 1
    assert peak_in_flight([(0, 10), (1, 2), (3, 4), (1.5, 3.5)]) == 3  # (0,10), (1,2), (1.5,3.5)
    assert peak_in_flight([(0, 10), (1, 9), (2, 8), (3, 7)]) == 4  # nested
    assert peak_in_flight([(i, i + 0.5) for i in range(100)]) == 1  # one at a time
    assert peak_in_flight([(5, 6)] * 7) == 7  # the same instants
    assert peak_in_flight([(3, 4), (0, 5), (1, 2)]) == 2  # unsorted input


def test_an_end_at_a_start_does_not_overlap_it() -> None:
    assert peak_in_flight([(0, 1), (1, 2), (2, 3)]) == 1  # touching: the end comes first
    assert peak_in_flight([(0, 1), (1, 2), (0.5, 1)]) == 2
    assert peak_in_flight([(0, 1), (1, 2), (0.5, 1.0000001)]) == 2
    assert peak_in_flight([(0, 1), (0, 1), (1, 2), (1, 2), (1, 2)]) == 3


def test_a_request_of_no_length_is_in_flight_for_its_instant() -> None:
    assert peak_in_flight([(1, 1)]) == 1
    assert peak_in_flight([(0, 1), (1, 1)]) == 1  # (0, 1) ended first
    assert peak_in_flight([(1, 1), (1, 2)]) == 2
    assert peak_in_flight([(0, 5), (2, 2), (2, 2)]) == 3
    assert peak_in_flight([(2, 1), (0, 3)]) == 2  # ended "before" it arrived: an instant


def test_requests_in_flight_stay_open_until_the_snapshot() -> None:
    log = ArrivalLog()
    done = log.start(1.0)
    log.start(2.0)  # never ends
    log.end(done, 3.0)
    late = log.start(4.0)  # arrives after the first ended
    assert log.snapshot(10.0) == [(1.0, 3.0), (2.0, 10.0), (4.0, 10.0)]
    assert peak_in_flight(log.snapshot(10.0)) == 2
    assert peak_in_flight(log.snapshot(3.5)) == 2  # the open ones end at the snapshot
    log.end(late, 5.0)
    assert log.snapshot(10.0)[2] == (4.0, 5.0)
    log.clear()
    assert log.snapshot(10.0) == []


def test_the_log_keeps_the_newest_arrivals() -> None:
    log = ArrivalLog(limit=3)
    tokens = [log.start(float(i)) for i in range(5)]
    for t in tokens:
        log.end(t, 100.0)
    assert len(log) == 3
    assert [a for a, _ in log.snapshot(200.0)] == [2.0, 3.0, 4.0]


def test_merge_joins_intervals_and_publish_computes_the_peak_over_all() -> None:
    def snap(intervals: list[list[float]]) -> dict[str, Any]:
        served = {"requests": len(intervals), INTERVALS: intervals}
        return {"served": served, "served_by_flavor": {}, "running": 0, "waiting": 0}

    # each worker alone had at most 2 in flight; together 4 (from 2.0 to 3.0)
    total = merge([snap([[0, 3], [2, 4], [5, 6]]), snap([[1, 3.5], [2.5, 3], [3, 7]])])["served"]
    publish(total)
    assert total == {
        "requests": 6,
        "arrivals_s": [0, 1, 2, 2.5, 3, 5],
        "peak_in_flight": 4,
    }
    without = merge([{"served": {"requests": 1}, "served_by_flavor": {}, "running": 0, "waiting": 0}])
    publish(without["served"])
    assert without["served"] == {"requests": 1}


# -- one process ----------------------------------------------------------------------------------
def _serve(record_arrivals: bool) -> Iterator[str]:
    server = MockServer(Engine("fixed", Timing(ttft_ms=100, itl_ms=5)), record_arrivals=record_arrivals)
    port = server.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def recording() -> Iterator[str]:
    yield from _serve(True)


_CHAT = orjson.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
_PROMPT = orjson.dumps({"prompt": "hi", "max_tokens": 4, "stream": True})


def _generate(url: str, path: str = "/v1/chat/completions", body: bytes = _CHAT) -> tuple[float, float]:
    """One request on a connection of its own: (just before it was sent, just after the answer)."""
    client = HTTPClient.from_url(url, concurrency=1)
    client.get("/health").read()  # connected first, and not a generation request
    sent = time.perf_counter()
    client.post(path, body=body).read()
    done = time.perf_counter()
    client.close()
    return sent, done


def _served(url: str) -> dict[str, Any]:
    client = HTTPClient.from_url(url)
    try:
        client.get("/v1/models").read()  # not generation requests either
        return orjson.loads(client.get("/mock/stats").read())["served"]  # type: ignore[no-any-return]
    finally:
        client.close()


def test_arrivals_and_peak_of_sequential_then_concurrent_requests(recording: str) -> None:
    windows = [_generate(recording) for _ in range(5)]
    served = _served(recording)
    assert served["requests"] == 5
    assert len(served["arrivals_s"]) == 5
    assert served["peak_in_flight"] == 1  # each ended before the next was sent
    jobs = [gevent.spawn(_generate, recording, *args) for args in [(), (), (), ("/v1/completions", _PROMPT)]]
    gevent.joinall(jobs, raise_error=True)
    windows += [j.value for j in jobs]
    served = _served(recording)
    arrivals = served["arrivals_s"]
    assert served["requests"] == len(arrivals) == 9
    assert arrivals == sorted(arrivals)
    assert served["peak_in_flight"] == 4  # 100 ms each, sent together
    # every arrival is its request's send, on this process's perf_counter clock
    for (sent, done), arrived in zip(sorted(windows), arrivals, strict=True):
        assert sent - _SLACK_S <= arrived <= min(sent + _SOON_S, done)


def test_a_request_still_in_flight_counts_until_the_snapshot(recording: str) -> None:
    jobs = [gevent.spawn(_generate, recording) for _ in range(3)]
    gevent.sleep(0.05)  # all three arrived; none has ended (100 ms)
    served = _served(recording)
    assert len(served["arrivals_s"]) == 3
    assert served["peak_in_flight"] == 3
    gevent.joinall(jobs, raise_error=True)


def test_reset_forgets_the_arrivals(recording: str) -> None:
    _generate(recording)
    client = HTTPClient.from_url(recording)
    client.post("/mock/reset", body=b"").read()
    client.close()
    served = _served(recording)
    assert served["arrivals_s"] == [] and served["peak_in_flight"] == 0
    _generate(recording)
    assert len(_served(recording)["arrivals_s"]) == 1


def test_without_the_option_nothing_is_recorded() -> None:
    for url in _serve(False):
        _generate(url)
        served = _served(url)
        assert served["requests"] == 1
        assert "arrivals_s" not in served and "peak_in_flight" not in served and INTERVALS not in served


# -- --workers 2 ----------------------------------------------------------------------------------
def _chat(url: str) -> tuple[float, float]:
    """One request on a connection of its own (urllib: no keep-alive): its window."""
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=_CHAT, headers={"Content-Type": "application/json"}
    )
    sent = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as r:
        json.loads(r.read())
    return sent, time.perf_counter()


def test_arrivals_are_merged_over_workers(mock_engine: Callable[..., Mock]) -> None:
    timing = ("--engine", "fixed", "--ttft-ms", "150", "--itl-ms", "0")
    mock = mock_engine("--workers", "2", "--record-arrivals", *timing)
    windows = [_chat(mock.url) for _ in range(20)]  # one at a time
    stats = mock.all_stats()
    served = stats["served"]
    arrivals = served["arrivals_s"]
    assert served["requests"] == len(arrivals) == 20
    assert arrivals == sorted(arrivals)
    assert served["peak_in_flight"] == 1
    per_worker = [w.get("requests", 0) for w in stats["workers"]]
    assert all(per_worker), per_worker  # the kernel spread the connections over both
    assert all(set(w) & {"arrivals_s", "peak_in_flight", INTERVALS} == set() for w in stats["workers"])
    # the workers' clock is this process's (CLOCK_MONOTONIC): each arrival is its request's send
    for (sent, done), arrived in zip(windows, arrivals, strict=True):
        assert sent - _SLACK_S <= arrived <= min(sent + _SOON_WORKERS_S, done)
    with ThreadPoolExecutor(6) as pool:  # 150 ms each, at once, over both workers
        list(pool.map(lambda _: _chat(mock.url), range(6)))
    served = mock.stats()
    assert len(served["arrivals_s"]) == 26
    assert served["peak_in_flight"] == 6
    mock.reset()
    served = mock.stats()
    assert served["arrivals_s"] == [] and served["peak_in_flight"] == 0
