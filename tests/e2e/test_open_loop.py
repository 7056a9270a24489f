"""Open-loop load as the server sees it: a real ``locust --headless`` run (most with
``--processes 2``) against the mock with ``--record-arrivals``, which keeps the instant each
request reached its socket. The arrivals at the server follow the requested process (rate, CV of
the gaps = 1/sqrt(B)) on an absolute schedule, the concurrency cap holds at the server, and a
client that cannot keep the schedule shows it as schedule lag."""

from __future__ import annotations

import itertools
import json
import math
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import LOCUSTFILES, TEST_LOCUSTFILES, free_port, own_master_port, run_locust

from llm_locust.load.arrivals import UnitSequence
from llm_locust.metrics.slo import EXIT_SLO_MISSED

FIXED = ("--engine", "fixed", "--ttft-ms", "50", "--itl-ms", "5", "--output-tokens", "8", "--record-arrivals")
COMMON = ("--model", "mock", "--max-tokens", "8", "--stop-timeout", "10")


def sequence_span(n: int, burstiness: float, seed: int = 0) -> float:
    """s_{n-1} of the run's unit-rate sequence: the first to the last of n arrivals, at rate 1."""
    seq = UnitSequence(seed, burstiness)
    for _ in range(n - 1):
        seq.advance()
    return seq.s


def gaps(arrivals: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(arrivals)]


def test_arrivals_over_two_processes_are_the_requested_process_on_an_absolute_schedule(
    tmp_path: Path, mock_engine
) -> None:
    # 60 s at 20 req/s, burstiness 4: 1,200 arrivals from two processes, merged at the server. Two
    # processes that each ran a Gamma process of their own (or shifted copies of one) would show
    # gaps nearer Poisson's CV of 1 than this process's 1/sqrt(4).
    mock = mock_engine(*FIXED)
    n, rate, burstiness = 1200, 20.0, 4.0
    run = run_locust(tmp_path, mock.url, "--processes", "2", "-u", "2", "--request-rate", str(rate),
                     "--burstiness", str(burstiness), "--max-requests", str(n), *COMMON,
                     timeout_s=150)  # fmt: skip
    res = run.results
    assert res is not None and run.returncode == 0, run.output[-3000:]
    arrivals = mock.stats()["arrivals_s"]
    assert len(arrivals) == n == res["completed"] and res["failed"] == res["cancelled"] == 0
    # the mean rate is the sequence's own (an exact mechanism) and within a few % of the request
    span = arrivals[-1] - arrivals[0]
    assert abs(span - sequence_span(n, burstiness) / rate) < 0.05
    assert (n - 1) / span == pytest.approx(rate, rel=0.05)
    g = gaps(arrivals)
    assert statistics.pstdev(g) / statistics.mean(g) == pytest.approx(1 / math.sqrt(burstiness), abs=0.05)
    # absolute schedule: arrival k at the server is origin + t_k, the same offset at the end of the
    # minute as at its start (a sleep-after-send loop drifts by its overhead on every request)
    seq = UnitSequence(0, burstiness)
    due = []
    for _ in range(n):
        due.append(seq.s / rate)
        seq.advance()
    offsets = [a - t for a, t in zip(arrivals, due, strict=True)]
    first, last = statistics.median(offsets[:100]), statistics.median(offsets[-100:])
    assert abs(last - first) < 0.002, (first, last)
    # the lag was measured and small; the schedule's metrics are in the results
    assert res["count_schedule_lag"] == n and res["median_schedule_lag_ms"] < 5
    assert res["metadata"]["options"]["load"] == "open"
    assert [lv["users"] for lv in res["levels"]] == ["20 req/s"]


def test_the_concurrency_cap_holds_at_the_server_and_waiting_is_schedule_lag(
    tmp_path: Path, mock_engine
) -> None:
    # each request takes ~85 ms: at 100 req/s that is ~9 in flight; the cap is 4 over both workers
    mock = mock_engine(*FIXED)
    run = run_locust(tmp_path, mock.url, "--processes", "2", "-u", "2", "--request-rate", "100",
                     "--max-concurrency", "4", "--max-requests", "200", *COMMON)  # fmt: skip
    res = run.results
    assert res is not None and run.returncode == 0, run.output[-3000:]
    served = mock.stats()
    assert len(served["arrivals_s"]) == 200 == res["completed"]
    assert served["peak_in_flight"] == 4  # reached, never passed
    # the arrivals waited for a slot: what they waited is the lag, and TTFT from the schedule has it
    assert res["p99_schedule_lag_ms"] > 100
    assert res["mean_ttft_from_schedule_ms"] > res["mean_ttft_ms"] + 50
    assert "WARNING: the client did not keep the schedule" in run.output
    assert "--max-concurrency holds due arrivals" in run.output
    # and inf: everything at once, only the cap between the arrivals and the server
    mock.reset()
    burst = run_locust(tmp_path, mock.url, "-u", "1", "--request-rate", "inf", "--max-concurrency", "3",
                       "--max-requests", "30", *COMMON)  # fmt: skip
    assert burst.results is not None and burst.results["completed"] == 30, burst.output[-3000:]
    assert mock.stats()["peak_in_flight"] == 3


def test_an_overloaded_client_shows_its_lag_instead_of_hiding_it(tmp_path: Path, mock_engine) -> None:
    # the task holds the event loop 15 ms per arrival: 100 req/s need 1.5 s of a second
    mock = mock_engine(*FIXED)
    run = run_locust(tmp_path, mock.url, "-u", "1", "--request-rate", "100", "--max-requests", "150", *COMMON,
                     locustfile=TEST_LOCUSTFILES / "blocking_task.py")  # fmt: skip
    res = run.results
    assert res is not None and res["completed"] == 150, run.output[-3000:]
    arrivals = mock.stats()["arrivals_s"]
    # the server saw the client's pace (~66 req/s), not the schedule's
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) < 75
    assert res["max_schedule_lag_ms"] > 300 and res["p99_schedule_lag_ms"] > 200
    # from the send, TTFT hides the wait; from the schedule, it shows
    assert res["p99_ttft_from_schedule_ms"] > res["p99_ttft_ms"] + 150
    assert "WARNING: the client did not keep the schedule" in run.output


def test_a_rate_ladder_reports_each_rate_and_the_capacity_answer(tmp_path: Path, mock_engine) -> None:
    # two slots, 8 tokens of 5 ms after 30 ms: ~65 ms per request, 30 req/s per slot at best
    mock = mock_engine("--engine", "slots", "--slots", "2", "--ttft-ms", "30", "--itl-ms", "5",
                       "--output-tokens", "8", "--record-arrivals")  # fmt: skip
    run = run_locust(tmp_path, mock.url, "-u", "1", "--rates", "10,50", "--level-duration", "3",
                     "--slo", "ttft_p95<=100ms", "--slo-per-level", *COMMON)  # fmt: skip
    res = run.results
    assert res is not None, run.output[-3000:]
    rows = {r["users"]: r for r in res["levels"]}
    assert list(rows) == ["10 req/s", "50 req/s"]
    assert abs(rows["10 req/s"]["completed"] - 31) < 13 and abs(rows["50 req/s"]["completed"] - 150) < 40
    assert {lv["users"]: lv["passed"] for lv in res["slo"]["levels"]} == {"10 req/s": True, "50 req/s": False}
    assert res["slo"]["capacity"] == "10 req/s"
    assert run.returncode == EXIT_SLO_MISSED  # the whole run missed (its 50 req/s half)
    assert "Per level (requests grouped by the rate they were due at)" in run.output
    # it ended with its last level, by itself
    assert len(mock.stats()["arrivals_s"]) == sum(
        r["completed"] + r["failed"] + r["cancelled"] for r in rows.values()
    )


def test_a_linear_ramp_rises_from_its_start_to_its_end_rate(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FIXED)
    run = run_locust(tmp_path, mock.url, "-u", "1", "--ramp-up-strategy", "linear",
                     "--ramp-up-start-rps", "10", "--ramp-up-end-rps", "70", "--ramp-up-duration", "4",
                     "--level-duration", "2", *COMMON)  # fmt: skip
    res = run.results
    assert res is not None and run.returncode == 0, run.output[-3000:]
    rows = {r["users"]: r["completed"] for r in res["levels"]}
    assert list(rows) == ["10-40 req/s", "40-70 req/s"]
    assert abs(rows["10-40 req/s"] - 51) < 22 and abs(rows["40-70 req/s"] - 110) < 33
    arrivals = mock.stats()["arrivals_s"]
    assert arrivals[-1] - arrivals[0] < 4.1


def test_max_requests_and_warmup_count_exactly_in_either_loop(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FIXED)
    # open loop: 100 arrivals, the first 20 of them left out of every statistic
    run = run_locust(tmp_path, mock.url, "--processes", "2", "-u", "2", "--request-rate", "50",
                     "--max-requests", "100", "--warmup", "20req", *COMMON)  # fmt: skip
    res = run.results
    assert res is not None and run.returncode == 0, run.output[-3000:]
    assert len(mock.stats()["arrivals_s"]) == 100
    assert res["completed"] == 80 and res["warmup_excluded"] == 20 and res["count_ttft"] == 80
    assert "Warm-up, left out of the statistics:" in run.output
    assert any(p["warmup"] for p in res["timeseries"])
    # closed loop: 4 users over two processes send 30 requests in all, then the run ends by itself
    mock.reset()
    closed = run_locust(tmp_path, mock.url, "--processes", "2", "-u", "4", "-r", "4", "--max-requests", "30",
                        "--warmup", "6req", *COMMON)  # fmt: skip
    res = closed.results
    assert res is not None and closed.returncode == 0, closed.output[-3000:]
    assert len(mock.stats()["arrivals_s"]) == 30
    assert res["completed"] == 24 and res["warmup_excluded"] == 6 and res["cancelled"] == 0
    assert "count_schedule_lag" not in res  # a closed loop has no schedule: no such rows


def rate_between(arrivals: list[float], start_s: float, end_s: float) -> float:
    t0 = arrivals[0]
    return sum(start_s <= a - t0 < end_s for a in arrivals) / (end_s - start_s)


def wait_for_line(log: Path, text: str, timeout_s: float) -> float:
    """When ``text`` appeared in ``log`` (perf_counter: the mock's clock on this host)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return time.perf_counter()
        time.sleep(0.1)
    raise AssertionError(
        f"{text!r} not in the master's log: {log.read_text()[-3000:] if log.exists() else ''}"
    )


def test_the_rate_stays_the_run_s_when_workers_join_and_leave(tmp_path: Path, mock_engine) -> None:
    # 40 req/s over all workers: one worker, then two (a late one joins), then one again (killed)
    mock = mock_engine(*FIXED)
    port = free_port()
    log = tmp_path / "master.log"
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py")]
    master = subprocess.Popen(
        [*base, "--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--expect-workers", "1", "--enable-rebalancing", "--host", mock.url, "-u", "2", "-r", "2",
         "-t", "90s", "--request-rate", "40", "--burstiness", "8", "--logfile", str(log), *COMMON],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    first = subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    late = None
    try:
        deadline = time.monotonic() + 30
        while not mock.stats().get("arrivals_s") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3.5)
        late = subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        joined = wait_for_line(log, "2 worker(s) share the arrivals", 30)
        time.sleep(4)
        late.send_signal(signal.SIGKILL)
        left = wait_for_line(log, "1 worker(s) share the arrivals", 30)
        time.sleep(4)
    finally:
        for p in (master, first, late):
            if p is not None and p.poll() is None:
                p.kill()
    arrivals = mock.stats()["arrivals_s"]
    first_s = arrivals[0]
    # the run's rate with one worker, with two (not twice it), and with one again once Locust has
    # given the killed worker up (its heartbeats stop; meanwhile its share is lost, and said so)
    windows = (
        (0.5, 3.5),
        (joined - first_s + 1.0, joined - first_s + 4.0),
        (left - first_s + 1.0, left - first_s + 4.0),
    )
    for start_s, end_s in windows:
        assert rate_between(arrivals, start_s, end_s) == pytest.approx(40, rel=0.2), (start_s, end_s)


def test_the_web_ui_shows_the_rate_and_changes_it_mid_run(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FIXED)
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--host", mock.url,
         "--web-host", "127.0.0.1", "--web-port", str(port), "--autostart", "-u", "2", "-r", "2",
         "-t", "14s", "--autoquit", "0", "--processes", "2", *own_master_port(), "--request-rate", "20",
         "--burstiness", "8", *COMMON],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not mock.stats().get("arrivals_s") and time.monotonic() < deadline:
            time.sleep(0.1)
        first = mock.stats()["arrivals_s"][0]
        assert json.loads(get(f"{web}/llm/rate")) == {
            "open_loop": True, "rate_per_s": 20.0, "levels": ["20 req/s"], "burst": False
        }  # fmt: skip
        bad = post(f"{web}/llm/rate", {"rate": "lots"})
        assert bad == (400, {"error": "rate 'lots' is not a number of requests/s"})
        zero = post(f"{web}/llm/rate", {"rate": 0})
        assert zero == (400, {"error": "the new rate 0 must be a number of requests/s > 0"})
        time.sleep(max(0.0, first + 3.0 - time.perf_counter()))
        status, changed = post(f"{web}/llm/rate", {"rate": 80})
        assert status == 200 and changed["rate_per_s"] in (20.0, 80.0)  # it holds from 0.5 s ahead
        time.sleep(1.0)
        tab = json.loads(get(f"{web}/stats/requests"))["extended_stats"][0]["data"]
        assert {"metric": "Open loop: request rate now (req/s)", "value": 80.0}.items() <= next(
            r for r in tab if r["metric"].startswith("Open loop")
        ).items()
        time.sleep(4.0)
        arrivals = mock.stats()["arrivals_s"]
        assert rate_between(arrivals, 0.5, 3.0) == pytest.approx(20, rel=0.25)
        assert rate_between(arrivals, 4.5, 7.5) == pytest.approx(80, rel=0.2)
        assert 'id="llm-rate"' in get(f"{web}/llm/charts").decode()  # the control the page shows
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()  # type: ignore[no-any-return]


def post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
