"""Under --otel: the GenAI client metrics, read back through the SDK's InMemoryMetricReader."""

from __future__ import annotations

import logging
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import FakeClock, make_record

from llm_locust.locust import otel
from llm_locust.locust.state import LLMState
from llm_locust.metrics.records import RequestTimer


def config(api: str = "openai-chat", host: str = "http://127.0.0.1:8000", model: str = "qwen") -> Any:
    return SimpleNamespace(api=api, host=host, model=model, api_key="sk-secret-77")


def recorded(records: list[Any], cfg: Any, at_quit: bool = False) -> dict[str, Any]:
    """name -> (unit, [(attributes, count, sum, bucket bounds)])"""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    state = LLMState(SimpleNamespace(runner=None, parsed_options=None, events=None))
    state.config = cfg
    metrics = otel.GenAIMetrics(provider.get_meter("llm_locust"), state)
    for rec in records:
        metrics.record(rec)
    assert metrics._drainer is not None  # queued: recorded by a greenlet, off the request's path
    if at_quit:
        metrics.flush()  # what the quitting listener does: nothing queued is lost
    else:
        metrics._drainer.join(timeout=10)
    data = reader.get_metrics_data()
    out: dict[str, Any] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points = [
                    (dict(p.attributes), p.count, p.sum, tuple(p.explicit_bounds)) for p in m.data.data_points
                ]
                out[m.name] = (m.unit, points)
    provider.shutdown()
    return out


def test_genai_client_metrics_once_per_request() -> None:
    ok = [make_record(ttft_ms=200.0, gaps_ms=(20.0, 30.0, 10.0), tokens=4) for _ in range(3)]
    failed = RequestTimer(FakeClock()).finish("http_5xx", "HTTP 500")
    got = recorded([*ok, failed], config())
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "qwen",
        "server.address": "127.0.0.1",
        "server.port": 8000,
    }
    unit, points = got["gen_ai.client.operation.duration"]
    assert unit == "s"
    by_error = {p[0].get("error.type"): p for p in points}
    assert by_error[None][0] == base and by_error[None][1] == 3
    assert by_error[None][2] == pytest.approx(3 * ok[0].elapsed_ms / 1000)
    assert by_error["http_5xx"][0] == {**base, "error.type": "http_5xx"} and by_error["http_5xx"][1] == 1
    assert by_error[None][3] == otel.DURATION_BUCKETS_S

    unit, points = got["gen_ai.client.token.usage"]
    assert unit == "{token}"
    tokens = {p[0]["gen_ai.token.type"]: (p[1], p[2]) for p in points}
    assert tokens == {"input": (3, 21), "output": (3, 12)}  # make_record: 7 in, 4 out
    assert points[0][3] == otel.TOKEN_BUCKETS

    unit, points = got["gen_ai.client.operation.time_to_first_chunk"]
    assert unit == "s" and [(p[1], round(p[2], 6)) for p in points] == [(3, 0.6)]
    unit, points = got["gen_ai.client.operation.time_per_output_chunk"]
    assert [(p[0], p[1], round(p[2], 6)) for p in points] == [(base, 9, 0.18)]  # 3 gaps per request
    assert "sk-secret-77" not in repr(got)


def test_a_whole_json_answer_has_no_chunk_metrics() -> None:
    """The conventions: time to first chunk and per chunk are for streaming calls only."""
    import dataclasses

    got = recorded([dataclasses.replace(make_record(), streamed=False)], config())
    assert got["gen_ai.client.operation.duration"][1][0][1] == 1
    assert "gen_ai.client.operation.time_to_first_chunk" not in got
    assert "gen_ai.client.operation.time_per_output_chunk" not in got


def test_what_is_queued_at_quit_is_recorded() -> None:
    got = recorded([make_record(gaps_ms=tuple([5.0] * 100), tokens=101)] * 2, config(), at_quit=True)
    assert got["gen_ai.client.operation.time_per_output_chunk"][1][0][1] == 200
    assert got["gen_ai.client.operation.duration"][1][0][1] == 2


def test_a_queue_the_sdk_cannot_keep_up_with_is_bounded_and_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(otel, "MAX_PENDING", 3)
    with caplog.at_level(logging.WARNING, logger="llm_locust"):
        got = recorded([make_record()] * 5, config(), at_quit=True)
    assert got["gen_ai.client.operation.duration"][1][0][1] == 3  # 2 of 5 left out, not queued
    said = [r.getMessage() for r in caplog.records if "--otel" in r.getMessage()]
    assert len(said) == 2 and "2 requests were left out" in said[1]


def test_attributes_follow_the_api_and_the_host() -> None:
    assert (
        otel.attributes_of(config("openai-completions", "https://api.example.com/v1"))["server.port"] == 443
    )
    completions = otel.attributes_of(config("ollama-generate", "http://h:11434", model=""))
    assert completions == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "ollama",
        "server.address": "h",
        "server.port": 11434,
    }
    assert otel.attributes_of(config("anthropic-messages"))["gen_ai.provider.name"] == "anthropic"


def test_a_missing_sdk_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import fails as if not installed
    state = LLMState(SimpleNamespace(runner=None, parsed_options=None, events=None))
    with caplog.at_level(logging.ERROR, logger="llm_locust"):
        otel.install(SimpleNamespace(), state)
    assert state.genai is None
    assert [r.getMessage() for r in caplog.records] == [
        "--otel: the OpenTelemetry packages are not installed; pip install 'llm-locust[otel]'"
    ]


def test_nothing_imports_opentelemetry_without_otel() -> None:
    code = (
        "import sys, llm_locust, llm_locust.locust.plugin, llm_locust.locust.exporter;"
        "llm_locust.locust.plugin.install();"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
