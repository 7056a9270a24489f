"""--llm-requests in headless runs: one line per request, and ``llm-locust report`` on the lines
gives the run's own results (the same values through the same aggregate), in one process and from
the workers of --processes through the master."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import run_locust

#: results keys that do not come from the requests' records: the run's metadata, the over-time series
#: (sampled during the run) and the client's own health
_NOT_FROM_RECORDS = ("metadata", "timeseries", "client")


def _report(tmp_path: Path, lines: Path) -> dict[str, Any]:
    out = tmp_path / "rebuilt.json"
    done = subprocess.run(
        [sys.executable, "-m", "llm_locust", "report", str(lines), "--json", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Successful requests:" in done.stdout
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def _check(tmp_path: Path, res: dict[str, Any], lines: Path) -> list[dict[str, Any]]:
    rebuilt = _report(tmp_path, lines)
    for key, value in res.items():
        if key not in _NOT_FROM_RECORDS:
            assert rebuilt[key] == value, key  # exactly: counts, tokens, every statistic, duration
    objs = [json.loads(x) for x in lines.read_text().splitlines()]
    assert "llm_locust_run" in objs[-1] and objs[-1]["llm_locust_run"]["model"] == "mock"
    requests = objs[:-1]
    assert len(requests) == res["completed"] + res["failed"] + res["cancelled"] + res["warmup_excluded"]
    assert len({r["request_id"] for r in requests}) == len(requests)  # none written twice
    assert all(r["response_id"].startswith("chatcmpl-") for r in requests if r["outcome"] == "ok")
    return requests


def test_report_on_the_request_lines_gives_the_runs_results(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "12")
    lines = tmp_path / "requests.jsonl"
    run = run_locust(tmp_path, mock.url, "-u", "4", "-r", "4", "-t", "3s", "--model", "mock",
                     "--warmup", "6req", "--llm-requests", str(lines), "--only-summary")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["completed"] > 20 and res["warmup_excluded"] == 6
    requests = _check(tmp_path, res, lines)
    assert sum(r["warmup"] for r in requests) == 6
    assert {r["worker"] for r in requests} == {"local"}
    assert sum(r["outcome"] == "ok" and not r["warmup"] for r in requests) == res["completed"]


def test_the_master_writes_every_workers_lines_once(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "12")
    lines = tmp_path / "requests.jsonl"
    run = run_locust(tmp_path, mock.url, "--processes", "2", "-u", "4", "-r", "4", "-t", "3s",
                     "--request-rate", "30", "--model", "mock", "--llm-requests", str(lines),
                     "--only-summary", timeout_s=120)  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["completed"] > 40
    requests = _check(tmp_path, res, lines)
    assert len({r["worker"] for r in requests}) == 2
    # open loop: each arrival its due time (a request cut by the end of the test is recorded before it)
    assert all(r["schedule_lag_ms"] is not None for r in requests if r["outcome"] != "cancelled")
