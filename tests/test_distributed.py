"""Master/worker runs: exact merge at scale, and a worker lost mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import LOCUSTFILES, run_locust


def test_processes_4_with_2000_users_merge_exactly(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "100", "--itl-ms", "200", "--output-tokens", "10")
    run = run_locust(tmp_path, mock.url, "--processes", "4", "-u", "2000", "-r", "1000", "-t", "8s",
                     "--stop-timeout", "20", "--model", "mock", timeout_s=180)  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None
    served = mock.stats()
    assert res["metadata"]["workers"] == 4 and res["metadata"]["users"] == 2000
    assert res["cancelled"] == 0 and res["failed"] == 0
    assert res["completed"] == served["ok"] == served["requests"] >= 2000
    assert res["total_output_tokens"] == served["output_tokens"] == 10 * res["completed"]
    assert res["total_input_tokens"] == served["prompt_tokens"]
    # every histogram holds exactly the samples the workers recorded: none twice, none lost
    assert res["count_ttft"] == res["count_tpot"] == res["count_e2el"] == res["completed"]
    assert res["count_itl"] == 9 * res["completed"]
    rows = run.final_rows()
    assert rows["/v1/chat/completions"] == rows["Aggregated"] == (res["completed"], 0)
    assert rows["ITL"][0] == res["count_itl"]


def test_a_worker_killed_mid_run_is_reported_and_the_run_goes_on(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "10", "--output-tokens", "10")
    out = tmp_path / "results.json"
    master = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--headless", "--host", mock.url,
         "--processes", "2", "-u", "10", "-r", "10", "-t", "12s", "--model", "mock", "--llm-json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        time.sleep(5)
        children = subprocess.run(
            ["pgrep", "-P", str(master.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2, children
        os.kill(int(children[0]), signal.SIGKILL)
        output, _ = master.communicate(timeout=90)
    finally:
        if master.poll() is None:
            master.kill()
    assert "Traceback" not in output, output[-3000:]
    res = json.loads(out.read_text())
    assert len(res["metadata"]["workers_lost"]) == 1, res["metadata"]
    assert "Workers lost" in output
    assert res["completed"] > 100 and res["failed"] == 0
    served = mock.stats()
    assert res["completed"] <= served["ok"]  # what the lost worker had not yet reported is missing
