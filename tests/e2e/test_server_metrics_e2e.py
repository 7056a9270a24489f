"""--server-metrics in a headless run against the mock's vLLM-named /metrics: the server's counters
over the window equal what we counted, in --llm-json, the summary and the HTML report."""

from __future__ import annotations

from pathlib import Path

from conftest import run_locust


def test_server_tokens_equal_ours_in_json_summary_and_html(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "batching", "--max-seqs", "2", "--ttft-ms", "50", "--itl-ms", "10",
                       "--metrics", "vllm")  # fmt: skip
    html = tmp_path / "report.html"
    run = run_locust(tmp_path, mock.url, "-u", "4", "-r", "4", "-t", "3s", "--stop-timeout", "5",
                     "--max-tokens", "20", "--llm-html", str(html))  # fmt: skip
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    served = mock.stats()
    sm = res["server_metrics"]
    assert sm["engine"] == "vllm" and sm["url"] == mock.url + "/metrics" and sm["failures"] == 0
    assert res["completed"] == served["ok"] > 0 and res["cancelled"] == 0
    # every request ran inside the window (--stop-timeout lets the last ones end): exact equality
    assert sm["tokens_check"] == {
        "server_generation_tokens": served["output_tokens"],
        "our_output_tokens": res["total_output_tokens"],
        "difference": 0,
    }
    assert sm["prompt_tokens"] == res["total_input_tokens"] == served["prompt_tokens"]
    assert sm["running"]["max"] == 2 and sm["waiting"]["max"] == 2  # 4 users, 2 sequences at once
    assert sm["kv_cache_usage"]["max"] == 1.0
    queue, prefill = sm["latency"]["queue"], sm["latency"]["prefill"]
    assert queue["count"] == prefill["count"] == res["completed"]
    # the server's queue + prefill is our TTFT (same host: within a few ms)
    assert abs(queue["mean_ms"] + prefill["mean_ms"] - res["mean_ttft_ms"]) < 10
    # each point carries the latest poll's value (a 3 s run has two points: at 2 s and at the end)
    running = [p["server_running"] for p in res["timeseries"]]
    assert running and all(r is not None and 0 <= r <= 2 for r in running), running
    assert "Generation tokens, server / ours:" in run.output
    page = html.read_text()
    assert (
        'id="server-metrics"' in page and 'href="#server-metrics"' in page and "Server: KV-cache use" in page
    )
