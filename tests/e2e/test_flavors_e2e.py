"""Every API flavor through headless Locust against the mock engine, measured as exactly as chat:
timings within a few ms of the mock's schedule, token counts equal to what the mock served for that
flavor, reasoning text in TTFT but not in TTFVT, --processes 2 totals exact, each fault counted once
in its category, and --api auto."""

from __future__ import annotations

import http.server
import threading
from collections import Counter
from pathlib import Path

import pytest
from conftest import TEST_LOCUSTFILES, run_locust

from llm_locust.flavors import FLAVORS
from llm_locust.mock.faults import short_tokens
from llm_locust.mock.server import FAULT_OUTCOMES, FAULTS

#: flavors whose API has a reasoning field (completions has none: the mock sends it as text)
REASONING = {name for name in FLAVORS if name != "openai-completions"}


@pytest.mark.parametrize("api", list(FLAVORS))
def test_a_flavor_measured_exactly_over_two_processes(tmp_path: Path, mock_engine, api: str) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "60", "--itl-ms", "15", "--output-tokens", "12",
                       "--reasoning-tokens", "3")  # fmt: skip
    run = run_locust(tmp_path, mock.url, "--processes", "2", "-u", "4", "-r", "4", "-t", "4s",
                     "--stop-timeout", "10", "--api", api, "--model", "mock")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None
    served = mock.by_flavor(api)
    assert res["metadata"]["api"] == api and res["metadata"]["workers"] == 2
    assert (res["failed"], res["cancelled"]) == (0, 0)
    assert res["completed"] == served["ok"] == served["requests"] == mock.stats()["requests"] > 10
    assert res["total_output_tokens"] == served["output_tokens"] == 12 * res["completed"]
    assert res["total_input_tokens"] == served["prompt_tokens"]
    assert res["output_tokens_source"] == {"usage": res["completed"]}
    assert res["count_itl"] == 11 * res["completed"]  # one event per token, reasoning included
    assert 59 <= res["median_ttft_ms"] <= 67
    assert 14 <= res["median_itl_ms"] <= 16.5
    if api in REASONING:  # three reasoning tokens first: the first visible text comes 3 ITLs later
        assert 59 + 45 <= res["median_ttfvt_ms"] <= 67 + 45
    else:
        assert res["median_ttfvt_ms"] == res["median_ttft_ms"]
    assert "API flavor:" in run.output and api in run.output
    if api.startswith("ollama"):  # the server's own durations beside ours
        assert res["count_server_prefill"] == res["completed"]
        assert res["median_server_prefill_ms"] == pytest.approx(res["median_ttft_ms"], abs=8)


@pytest.mark.parametrize("api", list(FLAVORS))
def test_every_fault_of_every_flavor_counted_once(tmp_path: Path, mock_engine, api: str) -> None:
    mock = mock_engine(
        "--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "10", "--stall-s", "3"
    )
    run = run_locust(
        tmp_path, mock.url, "-u", "1", "-r", "1", "-t", "60s", "--request-timeout", "1", "--model", "mock",
        "--api", api, "--fail-backoff", "0", locustfile=TEST_LOCUSTFILES / "faults.py",
    )  # fmt: skip
    res = run.results
    assert res is not None, run.output
    expected = Counter(outcome for outcome in FAULT_OUTCOMES.values() if outcome != "ok")
    assert res["failures"] == dict(expected), run.output[-3000:]
    oks = 1 + sum(outcome == "ok" for outcome in FAULT_OUTCOMES.values())
    assert (res["failed"], res["completed"], res["cancelled"]) == (len(FAULTS) + 1 - oks, oks, 0)
    # every ok answer has the mock's 10 tokens but the short one, cut to short_tokens(10)
    assert res["not_streamed"] == 1 and res["total_output_tokens"] == 10 * (oks - 1) + short_tokens(10)
    assert mock.by_flavor(api)["requests"] == len(FAULTS) + 1
    assert "Traceback" not in run.output


@pytest.mark.parametrize(
    ("suffix", "api", "how"),
    [("", "openai-chat", "GET /v1/models"), ("/api", "ollama-chat", "host path /api")],
)
def test_auto_says_which_flavor_it_took(tmp_path: Path, mock_engine, suffix: str, api: str, how: str) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "5")
    run = run_locust(tmp_path, mock.url + suffix, "-u", "1", "-t", "2s", "--stop-timeout", "5")
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None
    assert (res["metadata"]["api"], res["metadata"]["api_detected_by"]) == (api, how)
    assert res["metadata"]["model"] == "mock" and res["completed"] == mock.by_flavor(api)["ok"] > 0
    assert "API flavor:" in run.output and how in run.output


@pytest.mark.parametrize("api", ["ollama-chat", "ollama-generate", "openai-chat"])
def test_ignore_eos_where_the_api_has_no_such_field_is_said(tmp_path: Path, mock_engine, api: str) -> None:
    """Ollama cannot be told to ignore EOS: the run says so (log, summary, JSON) instead of letting a
    user believe every answer was --max-tokens long."""
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "5", "--output-tokens", "5")
    run = run_locust(tmp_path, mock.url, "-u", "1", "-t", "2s", "--stop-timeout", "5", "--api", api,
                     "--model", "mock", "--ignore-eos")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["completed"] > 0
    notes = [n for n in res["metadata"]["notes"] if n.startswith("--ignore-eos")]
    if api.startswith("ollama"):
        assert notes == [f"--ignore-eos: {api} has no ignore-EOS field, so output lengths are the model's;"
                         " compare per-token metrics (TPOT, ITL, tok/s) across engines"]  # fmt: skip
        assert f"NOTE: {notes[0]}" in run.output
    else:
        assert notes == []


OTHER_APIS_STREAM = [
    # Ollama's NDJSON where OpenAI chat's SSE was expected (an Ollama host without /v1)
    ("openai-chat", "application/x-ndjson", b'{"model":"m","message":{"role":"assistant","content":"hi"},'
     b'"done":false}\n', "not_a_stream: 200 application/x-ndjson: {\"model\":\"m\",\"message\""),
    # an SSE stream where Ollama's NDJSON was expected (--api ollama-chat against a /v1 endpoint)
    ("ollama-chat", "text/event-stream", b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n',
     "not_a_stream: 200 text/event-stream: data: {\"choices\""),
    # Anthropic's answer to a request it refused, with status 200 (a gateway)
    ("anthropic-messages", "application/json",
     b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: required"}}',
     "not_a_stream: 200 application/json: {\"type\":\"error\""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("api", "media", "body", "detail"), OTHER_APIS_STREAM, ids=[a for a, *_ in OTHER_APIS_STREAM]
)
def test_a_flavor_given_another_apis_answer_says_what_arrived(
    tmp_path: Path, api: str, media: str, body: bytes, detail: str
) -> None:
    """Each request fails once, as not_a_stream with the media type and first bytes of what came."""
    served: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        run = run_locust(tmp_path, url, "-u", "1", "-t", "2s", "--stop-timeout", "5", "--api", api,
                         "--model", "m", "--fail-backoff", "0.2")  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    res = run.results
    assert res is not None, run.output[-3000:]
    assert res["failures"] == {"not_a_stream": len(served)} and res["completed"] == 0 and len(served) > 2
    assert detail in run.output, run.output[-3000:]
    assert "Traceback" not in run.output
