"""Our metrics out, live: --llm-prometheus-port on a headless distributed run (the master serves the
workers' merged numbers while the test runs; the workers, given the same option, leave the port
alone), and the GenAI client metrics under Locust's --otel."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import LOCUSTFILES, free_port, own_master_port, run_locust
from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "sk-never-exported-9" not in text
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)
    }


def test_headless_master_serves_merged_metrics_during_the_run(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "8")
    port = free_port()
    out = tmp_path / "results.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--headless", "--host", mock.url,
         "-u", "4", "-r", "4", "-t", "5s", "--processes", "2", *own_master_port(), "--model", "mock",
         "--api-key", "sk-never-exported-9", "--web-host", "127.0.0.1", "--llm-prometheus-port", str(port),
         "--llm-json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        fams: dict[str, list[tuple[str, dict[str, str], float]]] = {}
        ok = 0.0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                fams = scrape(port)
            except OSError:
                time.sleep(0.2)
                continue
            ok = {s[1]["outcome"]: s[2] for s in fams["llm_locust:requests"]}.get("ok", 0.0)
            if ok >= 10:
                break
            time.sleep(0.3)
        assert ok >= 10, fams
        e2e = {name: value for name, _labels, value in fams["llm_locust:e2e_request_latency_seconds"]}
        assert e2e["llm_locust:e2e_request_latency_seconds_count"] == ok  # one scrape, one story
        ttft = [s for s in fams["llm_locust:time_to_first_token_seconds"] if s[0].endswith("_bucket")]
        le = {labels["le"]: value for _n, labels, value in ttft}
        assert le["0.01"] == 0 and le["0.1"] == ok  # the mock's 20 ms TTFT, between vLLM's 0.01 and 0.1
        tokens = fams["llm_locust:generation_tokens"][0][2]
        assert tokens == 8 * ok
        assert fams["llm_locust:users"][0][2] == 4
        info = fams["llm_locust:test_info"][0][1]
        assert info == {"model_name": "mock", "api": "openai-chat"}
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "llm-prometheus-port" not in output  # no worker tried the port
    assert json.loads(out.read_text())["completed"] >= ok


def test_otel_records_the_genai_metrics_on_locusts_meter_provider(tmp_path: Path, mock_engine) -> None:
    """Locust's --otel sets the provider up (here a console exporter, read from stdout at exit);
    every request of the run is recorded once, the last ones too (flushed at quit)."""
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "8")
    env = {"OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "console",
           "OTEL_METRIC_EXPORT_INTERVAL": "600000"}  # fmt: skip
    args = ("-u", "2", "-r", "2", "-t", "3s", "--otel", "--model", "mock")
    run = run_locust(tmp_path, mock.url, *args, env=env)
    assert run.returncode == 0 and run.results is not None, run.output[-3000:]
    start = run.output.index('{\n    "resource_metrics"')
    exported, _end = json.JSONDecoder().raw_decode(run.output[start:])
    ours = {
        m["name"]: m["data"]["data_points"]
        for rm in exported["resource_metrics"]
        for sm in rm["scope_metrics"]
        if sm["scope"]["name"] == "llm_locust"
        for m in sm["metrics"]
    }
    completed = run.results["completed"]
    (duration,) = ours["gen_ai.client.operation.duration"]
    assert duration["count"] == completed > 5
    assert duration["attributes"]["gen_ai.request.model"] == "mock"
    (chunks,) = ours["gen_ai.client.operation.time_per_output_chunk"]
    assert chunks["count"] == 7 * completed  # 8 one-token events: 7 gaps each
    tokens = {p["attributes"]["gen_ai.token.type"]: p["sum"] for p in ours["gen_ai.client.token.usage"]}
    assert tokens["output"] == run.results["total_output_tokens"] == 8 * completed
