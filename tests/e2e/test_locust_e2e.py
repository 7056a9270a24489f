"""Headless Locust against the mock engine: timings, exact token counts, failures, distribution."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from conftest import LOCUSTFILES, TEST_LOCUSTFILES, run_locust

from llm_locust.mock.faults import short_tokens
from llm_locust.mock.server import FAULT_OUTCOMES, FAULTS

#: Every stream reader: the process-wide reactor with each body read by llm_locust._native._speedups (the
#: default on Linux) or parsed in Python, and one greenlet per stream (TLS connections).
READERS = pytest.mark.parametrize("reader", ["compiled", "reactor", "greenlet"])


@READERS
def test_known_timing_and_exact_tokens(tmp_path: Path, mock_engine, reader: str) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "200", "--itl-ms", "25", "--output-tokens", "20")
    csv_path = tmp_path / "llm.csv"
    run = run_locust(
        tmp_path, mock.url, "-u", "4", "-r", "4", "-t", "4s", "--stop-timeout", "5", "--model", "mock",
        "--llm-csv", str(csv_path), env={"LLM_LOCUST_READER": reader},
    )  # fmt: skip
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    served = mock.stats()
    with csv_path.open() as f:
        csv_rows = {row["metric"]: row for row in csv.DictReader(f)}
    assert int(csv_rows["ttft"]["count"]) == res["completed"]
    assert float(csv_rows["itl"]["p99"]) == pytest.approx(res["p99_itl_ms"])
    assert res["completed"] == served["ok"] > 0
    assert res["failed"] == 0 and res["cancelled"] == 0
    assert res["total_output_tokens"] == 20 * res["completed"] == served["output_tokens"]
    assert res["total_input_tokens"] == served["prompt_tokens"]
    assert res["output_tokens_source"] == {"usage": res["completed"]}
    # the mock's text tokenizes to exactly its usage count with cl100k_base
    assert res["usage_vs_tokenizer"]["compared"] == res["completed"]
    assert res["usage_vs_tokenizer"]["disagreed"] == 0
    # measured within a few ms of the configured schedule (client and server share 2 cores)
    assert 200 <= res["median_ttft_ms"] <= 205
    assert 24 <= res["median_itl_ms"] <= 26
    assert 24.5 <= res["mean_tpot_ms"] <= 25.5
    assert 200 + 19 * 25 <= res["median_e2el_ms"] <= 200 + 19 * 25 + 8
    assert res["count_itl"] == 19 * res["completed"]
    # one Locust request row per completion; metric rows stay out of 'Aggregated'
    rows = run.final_rows()
    assert rows["/v1/chat/completions"] == (res["completed"], 0)
    assert rows["ITL"] == (res["count_itl"], 0)
    assert rows["TTFT"] == rows["TPOT"] == rows["E2E"] == (res["completed"], 0)
    assert rows["Aggregated"] == (res["completed"], 0)
    assert "llm-locust results" in run.output
    client = res["client"]  # the load generator's own health
    assert client["loop_lag_ms"]["count"] >= 40  # a sample every 50 ms over the 4 s
    assert set(client["cpu_share"]) == {"local"}
    assert "Client event-loop lag p50/p99/max (ms):" in run.output


@READERS
def test_every_fault_category_counted_exactly_once(tmp_path: Path, mock_engine, reader: str) -> None:
    """One request per kind of wrong answer (and one clean one): each gets its own category, or is
    read correctly (compressed streams, a whole JSON answer), and nothing is counted twice."""
    mock = mock_engine(
        "--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "10", "--stall-s", "3"
    )
    run = run_locust(
        tmp_path, mock.url, "-u", "1", "-r", "1", "-t", "60s", "--request-timeout", "1", "--model", "mock",
        "--fail-backoff", "0", locustfile=TEST_LOCUSTFILES / "faults.py", env={"LLM_LOCUST_READER": reader},
    )  # fmt: skip
    res = run.results
    assert res is not None, run.output
    expected = Counter(outcome for outcome in FAULT_OUTCOMES.values() if outcome != "ok")
    assert res["failures"] == dict(expected), run.output
    oks = 1 + sum(outcome == "ok" for outcome in FAULT_OUTCOMES.values())
    total = len(FAULTS) + 1
    outcomes = (res["failed"], res["completed"], res["cancelled"])
    assert outcomes == (total - oks, oks, 0), (mock.stats(), run.output)
    assert res["not_streamed"] == 1  # the JSON answer to a streaming request
    # compressed streams are decoded; every successful answer has the mock's 10 tokens, the short one half
    assert res["total_output_tokens"] == 10 * (oks - 1) + short_tokens(10)
    assert run.returncode == 1  # Locust's exit code on failed requests
    rows = run.final_rows()
    assert rows["/v1/chat/completions"] == rows["Aggregated"] == (total, total - oks)
    assert "Traceback" not in run.output
    assert "HTTP 429: mock fault http_429 (Retry-After: 1)" in run.output
    assert "HTTP 302: redirect to http://127.0.0.1:9/v1/chat/completions (not followed" in run.output
    assert "not_a_stream: 200 text/html: <html><body><h1>Login required</h1>" in run.output
    assert "bad_event: a line of the event stream is over 1 MiB" in run.output
    assert "of which not streamed (one JSON body):" in run.output and "WARNING: 1 successful" in run.output


def test_unreachable_host_fails_as_connect_and_run_ends_cleanly(tmp_path: Path) -> None:
    run = run_locust(tmp_path, "http://127.0.0.1:9", "-u", "2", "-r", "2", "-t", "2s", "--model", "m")
    res = run.results
    assert res is not None, run.output
    assert res["completed"] == 0 and res["failed"] > 0
    assert set(res["failures"]) == {"connect"}
    assert "Traceback" not in run.output
    assert run.returncode == 1


def test_processes_2_totals_equal_what_the_mock_served(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "batching", "--ttft-ms", "50", "--itl-ms", "10", "--output-tokens", "30")
    run = run_locust(
        tmp_path,
        mock.url,
        "--processes",
        "2",
        "-u",
        "20",
        "-r",
        "20",
        "-t",
        "4s",
        "--stop-timeout",
        "10",
        "--model",
        "mock",
    )
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    served = mock.stats()
    # --stop-timeout lets every stream finish: nothing is cut, so the totals must be equal
    assert res["cancelled"] == 0 and res["failed"] == 0
    assert res["completed"] == served["ok"] == served["requests"] > 50
    assert res["total_output_tokens"] == served["output_tokens"]
    assert res["total_input_tokens"] == served["prompt_tokens"]
    assert res["count_itl"] == 29 * res["completed"]
    assert res["count_ttft"] == res["count_tpot"] == res["count_e2el"] == res["completed"]
    assert res["metadata"]["workers"] == 2
    assert len(res["client"]["cpu_share"]) == 2  # each worker's health reaches the master
    assert res["client"]["loop_lag_ms"]["count"] > 0
    rows = run.final_rows()
    assert rows["/v1/chat/completions"] == rows["Aggregated"] == (res["completed"], 0)
    assert rows["ITL"][0] == res["count_itl"]


def test_streams_cut_by_the_end_are_cancelled_not_successes(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "100", "--itl-ms", "50", "--output-tokens", "30")
    run = run_locust(
        tmp_path, mock.url, "--processes", "2", "-u", "10", "-r", "10", "-t", "3s", "--model", "mock"
    )
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    served = mock.stats()
    assert res["cancelled"] == 10  # every user was mid-stream when the test ended
    assert res["failed"] == 0
    assert res["completed"] + res["cancelled"] == served["requests"]
    assert res["completed"] <= served["ok"]
    assert res["total_output_tokens"] == 30 * res["completed"]
    assert run.final_rows()["/v1/chat/completions"] == (res["completed"], 0)


def test_seed_ladder_reports_one_row_per_level(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "batching", "--ttft-ms", "30", "--itl-ms", "5", "--output-tokens", "20")
    run = run_locust(
        tmp_path,
        mock.url,
        "--levels",
        "1,4",
        "--level-duration",
        "2",
        "--stop-timeout",
        "3",
        locustfile=LOCUSTFILES / "seed_benchmark.py",
    )
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    levels = {row["users"]: row for row in res["levels"]}
    assert set(levels) == {"1", "4"}
    assert sum(row["completed"] for row in levels.values()) == res["completed"]
    # batching: per-stream speed falls and aggregate throughput rises with more users
    assert levels["4"]["median_tokens_per_s"] < levels["1"]["median_tokens_per_s"]
    assert levels["4"]["output_throughput"] > 2 * levels["1"]["output_throughput"]
    assert "Per level" in run.output
    assert res["metadata"]["model"] == "mock"  # discovered from /v1/models
    # the seed's ~1,000-token prompt, counted by the server
    assert res["total_input_tokens"] > 1000 * res["completed"]


def test_headless_progress_line_unless_only_summary(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "50", "--itl-ms", "10", "--output-tokens", "20")
    run = run_locust(tmp_path, mock.url, "-u", "4", "-r", "4", "-t", "7s", "--model", "mock")
    lines = [ln for ln in run.output.splitlines() if "LLM: users" in ln]
    assert lines, run.output[-2000:]
    fields = dict(part.strip().rsplit(" ", 1) for part in lines[-1].split("LLM: ", 1)[1].split("|")[:2])
    assert fields == {"users": "4", "in flight": "4"}
    assert "TTFT p50 5" in lines[-1]  # ~50 ms
    quiet = run_locust(
        tmp_path, mock.url, "-u", "4", "-r", "4", "-t", "7s", "--model", "mock", "--only-summary"
    )
    assert "LLM: users" not in quiet.output
