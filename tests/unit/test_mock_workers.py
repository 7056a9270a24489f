"""``llm-locust mock --workers N``: one port served by N processes, ``/mock/stats`` summed exactly over
them, ``/mock/reset`` for all, and no worker left behind when the parent goes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest

from llm_locust.cli import start_mock_process
from llm_locust.mock.prompts import digest
from llm_locust.mock.workers import WorkerSpec, merge
from tests.conftest import Mock

_FAST = ("--engine", "fixed", "--ttft-ms", "0", "--itl-ms", "0")


def _chat(url: str, i: int) -> dict[str, Any]:
    """One non-streamed chat request on a connection of its own; every 7th asks for a fault."""
    req: dict[str, Any] = {
        "model": "mock",
        "messages": [{"role": "user", "content": f"prompt number {i} " + "word " * (i % 5)}],
        "max_tokens": 1 + i % 9,
    }
    if i % 7 == 0:
        req["mock_fault"] = "short"
    body = json.dumps(req).encode()
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _workers(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children()


def _gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill(proc: subprocess.Popen[str], workers: list[psutil.Process]) -> None:
    """After a failed test: leave nothing running."""
    for p in workers:
        if not _gone(p):
            p.kill()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_connections_are_spread_over_workers_and_stats_sum_exactly(
    mock_engine: Callable[..., Mock],
) -> None:
    mock = mock_engine("--workers", "3", "--record-prompts", *_FAST)
    assert len(_workers(mock.proc)) == 3
    n = 120
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: _chat(mock.url, i), range(n)))
    stats = mock.all_stats()
    served = stats["served"]
    assert served["requests"] == served["ok"] == n
    assert served["output_tokens"] == sum(a["usage"]["completion_tokens"] for a in answers)
    assert served["prompt_tokens"] == sum(a["usage"]["prompt_tokens"] for a in answers)
    assert served["injected:short"] == len(range(0, n, 7))
    assert stats["served_by_flavor"]["openai-chat"]["requests"] == n
    assert served["prompts"] == {digest(f"prompt number {i} " + "word " * (i % 5)): 1 for i in range(n)}
    per_worker = [w.get("requests", 0) for w in stats["workers"]]
    assert sum(per_worker) == n
    assert sum(1 for c in per_worker if c) >= 2, per_worker  # the kernel spread the connections
    assert len({a["id"] for a in answers}) == n  # ids unique over all workers


def test_reset_resets_every_worker(mock_engine: Callable[..., Mock]) -> None:
    mock = mock_engine("--workers", "2", *_FAST)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: _chat(mock.url, i), range(40)))
    assert mock.stats()["requests"] == 40
    mock.reset()
    stats = mock.all_stats()
    assert stats["served"] == {}
    assert stats["workers"] == [{}, {}]
    _chat(mock.url, 1)
    assert mock.stats()["requests"] == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_parent_stops_every_worker(sig: signal.Signals) -> None:
    proc, _url = start_mock_process("--workers", "3", *_FAST)
    workers = _workers(proc)
    try:
        assert len(workers) == 3
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert all(_gone(w) for w in workers)
    finally:
        _kill(proc, workers)


def test_a_killed_parent_leaves_no_worker_behind() -> None:
    proc, _url = start_mock_process("--workers", "2", *_FAST)
    workers = _workers(proc)
    try:
        assert len(workers) == 2
        proc.kill()  # no chance to stop them: they see their stdin close
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not all(_gone(w) for w in workers):
            assert time.monotonic() < deadline, [w.pid for w in workers if not _gone(w)]
            time.sleep(0.05)
    finally:
        _kill(proc, workers)


def test_workers_must_be_at_least_one() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llm_locust", "mock", "--workers", "0"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "--workers must be >= 1" in done.stderr


def test_merge_sums_every_counter() -> None:
    one = {
        "served": {"requests": 2, "prompts": {"a": 1}},
        "served_by_flavor": {"ollama-chat": {"requests": 2}, "openai-chat": {}},
        "running": 1,
        "waiting": 0,
    }
    two = {
        "served": {"requests": 3, "injected:reset": 1, "prompts": {"a": 1, "b": 2}},
        "served_by_flavor": {"ollama-chat": {"requests": 1}, "openai-chat": {"requests": 2}},
        "running": 2,
        "waiting": 4,
    }
    assert merge([one, two]) == {
        "served": {"requests": 5, "injected:reset": 1, "prompts": {"a": 2, "b": 2}},
        "served_by_flavor": {"ollama-chat": {"requests": 3}, "openai-chat": {"requests": 2}},
        "running": 3,
        "waiting": 4,
    }
    assert Counter(merge([one])["served"]) == Counter(one["served"])


def test_worker_spec_round_trips_and_names_what_is_wrong() -> None:
    spec = WorkerSpec(1, 5, 6, (4001, 4002))
    assert WorkerSpec.parse(str(spec)) == spec
    with pytest.raises(ValueError, match="INDEX:LISTEN_FD"):
        WorkerSpec.parse("1:5")
    with pytest.raises(ValueError, match="index 2 is not one of the 2"):
        WorkerSpec.parse("2:5:6:4001,4002")
