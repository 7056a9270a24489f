"""What Locust's users expect of a plugin: a locustfile's ``host``, ``--json`` on stdout, the summary
beside Locust's tables (and in ``--logfile``), ``--csv PREFIX`` and the report-path tags, and result
files that vLLM's tooling reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import TEST_LOCUSTFILES

SUMMARY_HEADER = " llm-locust results "


def test_a_headless_run_follows_locusts_conventions(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "8")
    cmd = [
        sys.executable, "-m", "locust", "-f", str(TEST_LOCUSTFILES / "class_host.py"), "--headless",
        "-u", "2", "-r", "2", "-t", "2s", "--json", "--csv", str(tmp_path / "run"),
        "--llm-json", str(tmp_path / "results_{u}u.json"), "--llm-html", str(tmp_path / "report_{t}s.html"),
        "--logfile", str(tmp_path / "locust.log"),
    ]  # fmt: skip
    env = {**os.environ, "LLM_TEST_HOST": mock.url}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    stats = json.loads(proc.stdout)  # --json: stdout is Locust's JSON and nothing else
    assert any(row["name"] == "/v1/chat/completions" and row["num_requests"] > 0 for row in stats)
    assert SUMMARY_HEADER in proc.stderr  # beside Locust's own tables
    assert SUMMARY_HEADER in (tmp_path / "locust.log").read_text()

    res = json.loads((tmp_path / "results_2u.json").read_text())  # {u}: the users
    assert (tmp_path / "report_2s.html").read_text().startswith("<!DOCTYPE html>")  # {t}: the run time
    assert res["metadata"]["host"] == mock.url  # the locustfile's host = ...
    assert res["completed"] > 0 and res["failed"] == 0
    csv_rows = (tmp_path / "run_llm.csv").read_text().splitlines()  # beside run_stats.csv
    assert (tmp_path / "run_stats.csv").exists() and any(r.startswith("ttft,ms,") for r in csv_rows)

    # vllm bench serve's top-level keys
    assert res["endpoint_type"] == res["backend"] == res["label"] == "openai-chat"
    assert res["model_id"] == res["metadata"]["model"] and res["tokenizer_id"] == "cl100k_base"
    assert res["num_prompts"] == res["completed"] + res["cancelled"]  # cancelled: in flight at the stop
    assert (res["request_rate"], res["burstiness"], res["max_concurrency"]) == ("inf", 1.0, 2)
    assert res["request_goodput"] is None
    assert 1 <= res["max_concurrent_requests"] <= 2
    # 8 tokens per request, a request every ~60 ms per user: at least a request's worth in a second
    assert 8 <= res["max_output_tokens_per_s"] <= res["total_output_tokens"]
    assert list(res)[:3] == ["date", "endpoint_type", "backend"]


def test_user_classes_naming_different_hosts_need_host(tmp_path: Path) -> None:
    locustfile = tmp_path / "two.py"
    task = "    @task\n    def t(self):\n        self.chat()\n\n"
    locustfile.write_text(
        "from locust import task\nfrom llm_locust import LLMUser\n\n"
        f"class A(LLMUser):\n    host = 'http://127.0.0.1:9'\n\n{task}"
        f"class B(LLMUser):\n    host = 'http://127.0.0.1:10'\n\n{task}"
    )
    cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "1", "-t", "1s"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert "llm-locust: error: the user classes name different hosts" in proc.stderr
    assert "Traceback" not in proc.stderr
