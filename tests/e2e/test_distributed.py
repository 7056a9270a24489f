"""Master/worker runs: exact merge at scale, and a worker lost mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import LOCUSTFILES, free_port, own_master_port, run_locust


def test_processes_4_with_2000_users_merge_exactly(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "100", "--itl-ms", "200", "--output-tokens", "10")
    run = run_locust(tmp_path, mock.url, "--processes", "4", "-u", "2000", "-r", "1000", "-t", "8s",
                     "--stop-timeout", "20", "--model", "mock", timeout_s=180)  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None
    served = mock.stats()
    assert res["metadata"]["workers"] == 4 and res["metadata"]["users"] == 2000
    reader = res["metadata"]["reader"]  # the workers' choice, each reported with its data
    assert (reader["in_use"], reader["processes"], reader["without_compiled"]) == ("compiled", 4, 0)
    assert (res["cancelled"], res["failed"]) == (0, 0), run.output[-4000:]
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
         "--processes", "2", *own_master_port(), "-u", "10", "-r", "10", "-t", "12s", "--model", "mock",
         "--llm-json", str(out)],
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


def test_options_travel_to_workers_including_one_that_joins_late(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5")
    port = free_port()
    out = tmp_path / "results.json"
    conf = tmp_path / "master.conf"  # a config file read by the master only
    conf.write_text("prompt = from the master\n")
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py")]
    master = subprocess.Popen(
        [*base, "--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--expect-workers", "1", "--enable-rebalancing", "--host", mock.url, "-u", "6", "-r", "6",
         "-t", "10s",
         "--stop-timeout", "5", "--config", str(conf), "--llm-json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "LOCUST_MAX_TOKENS": "7"},  # only the master has it: it must travel
    )  # fmt: skip
    worker = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    workers = [subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)]
    try:
        time.sleep(5)
        workers.append(
            subprocess.Popen(worker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        )
        output, _ = master.communicate(timeout=90)
    finally:
        for p in [master, *workers]:
            if p.poll() is None:
                p.kill()
    res = json.loads(out.read_text())
    assert res["metadata"]["workers"] == 2, output[-2000:]  # the late worker reported data too
    assert res["metadata"]["options"]["max_tokens"] == 7
    assert res["completed"] > 20 and res["failed"] == 0
    # every request, the late worker's included, used the master's env var and config file
    assert res["total_output_tokens"] == 7 * res["completed"]
    assert res["total_input_tokens"] == 3 * res["completed"]  # "from the master" is 3 cl100k tokens
    assert mock.stats()["ok"] == res["completed"]


def test_workers_stop_soon_after_the_master_is_killed(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "10", "--output-tokens", "10")
    port = free_port()
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py")]
    master = subprocess.Popen(
        [*base, "--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--expect-workers", "1", "--host", mock.url, "-u", "4", "-r", "4", "-t", "120s", "--model", "mock",
         "--stop-timeout", "60"],  # the workers must not wait for their streams: nobody gets the results
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while mock.stats().get("ok", 0) < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert mock.stats().get("ok", 0) >= 20, log.read_text()[-2000:]  # the test is running
        master.kill()
        killed = time.monotonic()
        worker.wait(timeout=20)
        stopped_after_s = time.monotonic() - killed
    finally:
        for p in (master, worker):
            if p.poll() is None:
                p.kill()
    output = log.read_text()
    assert stopped_after_s <= 10, output[-2000:]
    lines = [ln for ln in output.splitlines() if "no heartbeat from the master" in ln]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    requests = mock.stats()["requests"]
    time.sleep(1)
    assert mock.stats()["requests"] == requests  # nothing is sent any more


def test_processes_keep_the_master_port_on_loopback(tmp_path: Path, mock_engine) -> None:
    """Every worker that connects to the master port gets the options, the key included: with
    --processes (workers on this machine) it listens on 127.0.0.1 unless told otherwise."""
    import psutil

    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "10", "--output-tokens", "5")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--headless",
         "--processes", "1", "--master-port", str(port), "--master-bind-port", str(port), "--host", mock.url,
         "-u", "1", "-t", "4s", "--model", "mock"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        listening: list[str] = []
        while not listening and time.monotonic() < deadline:
            conns = psutil.Process(proc.pid).net_connections(kind="tcp")
            listening = [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
            time.sleep(0.1)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert listening == ["127.0.0.1"], output[-2000:]
    assert proc.returncode == 0, output[-2000:]
    assert f"the master port {port} listens on 127.0.0.1 only" in output
