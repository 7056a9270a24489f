"""The web UI: LLM rows appear while the test runs, out of the total; options are in the form."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import LOCUSTFILES, free_port, own_master_port


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()  # type: ignore[no-any-return]


def test_llm_rows_live_in_the_web_ui(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "50", "--itl-ms", "10", "--output-tokens", "10")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILES / "chat.py"),
            "--host",
            mock.url,
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
            "--autostart",
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "20s",
            "--autoquit",
            "0",
            "--api-key",
            "sk-do-not-show-42",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        rows: dict[str, dict] = {}
        while time.monotonic() < deadline:
            try:
                stats = json.loads(get(f"http://127.0.0.1:{port}/stats/requests"))
            except OSError:
                time.sleep(0.2)
                continue
            rows = {r["name"]: r for r in stats["stats"]}
            if stats["state"] == "running" and rows.get("TTFT", {}).get("num_requests", 0) >= 6:
                break
            time.sleep(0.2)
        assert {"TTFT", "TPOT", "ITL", "E2E", "/v1/chat/completions", "Aggregated"} <= set(rows), rows.keys()
        post = rows["/v1/chat/completions"]["num_requests"]
        assert rows["Aggregated"]["num_requests"] == post  # metric rows do not inflate the total
        assert rows["ITL"]["num_requests"] >= 9 * rows["TTFT"]["num_requests"] > 0
        assert 50 <= rows["TTFT"]["median_response_time"] <= 60
        page = get(f"http://127.0.0.1:{port}/").decode()
        assert "max_tokens" in page and "extra_body" in page  # our options are in the start form
        assert "sk-do-not-show-42" not in page
        # "Download Data": the current run's results and HTML report, made in memory
        assert "./llm/results.json" in page and "./llm/report.html" in page
        results = json.loads(get(f"http://127.0.0.1:{port}/llm/results.json"))
        assert results["completed"] >= 1 and results["metadata"]["end_time"] is None  # still running
        report = get(f"http://127.0.0.1:{port}/llm/report.html").decode()
        assert report.startswith("<!DOCTYPE html>")
        assert "sk-do-not-show-42" not in report + json.dumps(results)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "sk-do-not-show-42" not in out


def test_options_from_the_web_form_reach_the_workers(tmp_path: Path, mock_engine) -> None:
    """Start a distributed test from the web UI form: --processes 2 workers use the form's options."""
    import signal
    import urllib.parse

    mock = mock_engine("--engine", "fixed", "--ttft-ms", "10", "--itl-ms", "2")
    port = free_port()
    out = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--host", mock.url,
         "--web-host", "127.0.0.1", "--web-port", str(port), "--processes", "2", *own_master_port(),
         "--model", "mock",
         "--llm-json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if json.loads(get(f"http://127.0.0.1:{port}/stats/requests"))["worker_count"] == 2:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        form = {"user_count": "4", "spawn_rate": "4", "host": mock.url, "max_tokens": "5",
                "temperature": "0.5", "prompt": "from the form", "extra_body": "{}"}  # fmt: skip
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/swarm", data=urllib.parse.urlencode(form).encode()
        )
        assert json.loads(urllib.request.urlopen(req, timeout=10).read())["success"] is True
        time.sleep(4)
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/stop", data=b""), timeout=10)
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    res = json.loads(out.read_text())
    assert res["completed"] > 10, output[-3000:]
    assert res["metadata"]["workers"] == 2
    assert res["metadata"]["options"]["temperature"] == 0.5
    assert res["total_output_tokens"] == 5 * res["completed"]  # the mock honours the form's max_tokens
    assert res["total_input_tokens"] == 3 * res["completed"]  # "from the form": 3 cl100k tokens
    assert "Traceback" not in output
