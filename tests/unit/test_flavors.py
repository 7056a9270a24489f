# ruff: noqa: E501 (the APIs' documented payloads, one event per line, read better unwrapped)
"""Each API flavor on its own: the request it builds, how its documented events decode, its whole
answer, its model list and its server timings. Streams are the APIs' documented shapes (Ollama's
recorded from its API docs, since Ollama cannot be installed here)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from llm_locust.errors import ConfigError
from llm_locust.flavors import API_CHOICES, FLAVORS, flavor
from llm_locust.flavors.base import BadEvent, Delta, RequestOptions, Sample, ServerTimings
from llm_locust.locust.exchange import _Reading
from llm_locust.metrics.records import RequestTimer

SAMPLE = Sample(
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
    max_tokens=16,
    extra_body={"top_k": 1},
)
OPTIONS = RequestOptions(model="m", temperature=0.5, ignore_eos=True, api_key="sk-1")


def body_of(name: str) -> dict[str, Any]:
    return json.loads(flavor(name).request(SAMPLE, OPTIONS).body)  # type: ignore[no-any-return]


def test_the_registry_and_the_choices() -> None:
    assert ("auto", *FLAVORS) == API_CHOICES
    assert set(FLAVORS) == {
        "openai-chat", "openai-completions", "openai-responses", "ollama-chat", "ollama-generate",
        "anthropic-messages",
    }  # fmt: skip
    for name in FLAVORS:
        f = flavor(name)
        assert f.name == name and f.framing in ("sse", "ndjson") and f.path.startswith("/")
    with pytest.raises(ConfigError, match="--api 'nope' is unknown; choose one of auto, openai-chat"):
        flavor("nope")


def test_requests() -> None:
    chat = body_of("openai-chat")
    assert chat["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (chat["max_tokens"], chat["ignore_eos"], chat["top_k"], chat["stream"]) == (16, True, 1, True)
    completions = body_of("openai-completions")
    assert completions["prompt"] == "Be brief.\n\nHi there" and completions["max_tokens"] == 16
    assert completions["stream_options"] == {"include_usage": True}
    responses = body_of("openai-responses")
    assert responses["input"] == [{"role": "user", "content": "Hi there"}]
    assert (responses["instructions"], responses["max_output_tokens"]) == ("Be brief.", 16)
    ollama = body_of("ollama-chat")
    assert ollama["options"] == {"num_predict": 16, "temperature": 0.5} and ollama["stream"] is True
    assert len(ollama["messages"]) == 2 and "ignore_eos" not in ollama  # Ollama has none
    generate = body_of("ollama-generate")
    assert (generate["prompt"], generate["system"]) == ("Hi there", "Be brief.")
    anthropic = body_of("anthropic-messages")
    assert anthropic["system"] == "Be brief." and anthropic["messages"] == [
        {"role": "user", "content": "Hi there"}
    ]
    assert anthropic["max_tokens"] == 16
    unlimited = Sample(messages=[{"role": "user", "content": "x"}], max_tokens=None)
    assert json.loads(flavor("anthropic-messages").request(unlimited, OPTIONS).body)["max_tokens"] == 4096


def test_auth_styles() -> None:
    assert flavor("openai-chat").request(SAMPLE, OPTIONS).headers["Authorization"] == "Bearer sk-1"
    headers = flavor("anthropic-messages").request(SAMPLE, OPTIONS).headers
    assert headers["x-api-key"] == "sk-1" and headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in headers
    keyless = RequestOptions(model="m")
    for name in FLAVORS:
        headers = flavor(name).request(SAMPLE, keyless).headers
        assert "Authorization" not in headers and "x-api-key" not in headers
        assert headers["Accept-Encoding"] == "identity"


def read(name: str, events: list[tuple[str, str]]) -> tuple[_Reading, RequestTimer]:
    """Feed ``events`` (one per ms) to the real stream consumer with this flavor's decoder."""
    timer = RequestTimer(lambda: 0.0)
    reading = _Reading(timer, flavor(name))
    for k, (event_name, data) in enumerate(events, 1):
        if reading.event(event_name, data, k / 1000.0):
            break
    return reading, timer


def sse(name: str, obj: dict[str, Any]) -> tuple[str, str]:
    return name, orjson.dumps(obj).decode()


def test_openai_completions_stream() -> None:
    def chunk(text: str, finish: str | None = None) -> tuple[str, str]:
        return "message", orjson.dumps(
            {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
        ).decode()

    usage = (
        "message",
        orjson.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}).decode(),
    )
    reading, timer = read(
        "openai-completions", [chunk(" a"), chunk(" b"), chunk("", "length"), usage, ("message", "[DONE]")]
    )
    assert reading.done_at == 0.005 and reading.finish == "length"
    assert (reading.usage_in, reading.usage_out) == (5, 2) and "".join(reading.text) == " a b"
    assert (timer.first_text_at_s, timer.text_events) == (0.001, 2)


RESPONSES = [
    sse("response.created", {"type": "response.created", "sequence_number": 0, "response": {"status": "in_progress"}}),
    sse("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1}),
    sse("response.reasoning_text.delta", {"type": "response.reasoning_text.delta", "delta": "think", "sequence_number": 2}),
    sse("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hel", "sequence_number": 3}),
    sse("response.output_text.delta", {"type": "response.output_text.delta", "delta": "lo", "sequence_number": 4}),
    sse("response.output_text.done", {"type": "response.output_text.done", "text": "Hello", "sequence_number": 5}),
    sse("response.completed", {"type": "response.completed", "sequence_number": 6, "response": {
        "status": "completed", "usage": {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 12}}}),
]  # fmt: skip


def test_openai_responses_stream_and_reasoning_counts_in_ttft_not_ttfvt() -> None:
    reading, timer = read("openai-responses", RESPONSES)
    assert reading.done_at == 0.007 and reading.finish == "completed"
    assert (reading.usage_in, reading.usage_out, reading.cached_in) == (9, 3, 4)
    assert timer.first_text_at_s == 0.003 and timer.first_visible_at_s == 0.004  # reasoning first
    assert timer.text_events == 3 and "".join(reading.text) == "thinkHello"


def test_openai_responses_errors() -> None:
    f = flavor("openai-responses")
    assert f.decode("error", '{"type":"error","code":"x","message":"rate limited"}').error == "rate limited"
    failed = {"type": "response.failed", "response": {"error": {"code": "server_error", "message": "boom"}}}
    assert f.decode("response.failed", orjson.dumps(failed).decode()).error == "boom"
    incomplete = {
        "type": "response.incomplete",
        "response": {"incomplete_details": {"reason": "max_output_tokens"}},
    }
    d = f.decode("response.incomplete", orjson.dumps(incomplete).decode())
    assert d.done and d.finish_reason == "max_output_tokens"


#: Ollama's /api/chat stream as its API docs show it (durations in ns).
OLLAMA_CHAT = [
    '{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"","thinking":"Hmm"},"done":false}',
    '{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The"},"done":false}',
    '{"model":"llama3.2","created_at":"2023-08-04T08:52:19.4","message":{"role":"assistant","content":" sky"},"done":false}',
    '{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}',
]  # fmt: skip


def test_ollama_chat_stream_with_the_servers_durations() -> None:
    f = flavor("ollama-chat")
    reading, timer = read("ollama-chat", [("", line) for line in OLLAMA_CHAT])
    assert reading.done_at == 0.004 and reading.finish == "stop"
    assert (reading.usage_in, reading.usage_out) == (26, 282)
    assert timer.first_text_at_s == 0.001 and timer.first_visible_at_s == 0.002
    assert reading.timings is not None
    server = f.server_timings(reading.timings)
    assert server == ServerTimings(
        prefill_ms=342.546, decode_ms=4535.599, decode_tokens=282, prompt_tokens=26, total_ms=4883.583458,
        load_ms=1.334875,
    )  # fmt: skip
    assert server.decode_tokens_per_s == pytest.approx(282 / 4.535599)
    assert f.models({"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest"}]}) == [
        "llama3.2:latest"
    ]


def test_ollama_generate_stream_and_errors() -> None:
    lines = [
        '{"model":"llama3.2","created_at":"x","response":"The","done":false}',
        '{"model":"llama3.2","created_at":"x","response":" end","done":false}',
        '{"model":"llama3.2","created_at":"x","response":"","done":true,"done_reason":"length","context":[1,2],"prompt_eval_count":3,"eval_count":2,"eval_duration":20000000}',
    ]  # fmt: skip
    reading, _timer = read("ollama-generate", [("", line) for line in lines])
    assert "".join(reading.text) == "The end" and reading.finish == "length" and reading.usage_out == 2
    assert (
        flavor("ollama-generate").decode("", '{"error":"model \\"x\\" not found"}').error
        == 'model "x" not found'
    )
    with pytest.raises(BadEvent):
        flavor("ollama-chat").decode("", "data: {}")  # an SSE line where NDJSON was expected


ANTHROPIC = [
    sse("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
        "content": [], "model": "claude", "stop_reason": None, "usage": {"input_tokens": 25,
        "cache_read_input_tokens": 20, "output_tokens": 1}}}),
    sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "x"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse("ping", {"type": "ping"}),
    sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello"}}),
    sse("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "!"}}),
    sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
    sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 15}}),
    sse("message_stop", {"type": "message_stop"}),
]  # fmt: skip


def test_anthropic_stream_thinking_counts_in_ttft_not_ttfvt() -> None:
    reading, timer = read("anthropic-messages", ANTHROPIC)
    assert reading.done_at == 0.012 and reading.finish == "end_turn"
    assert (reading.usage_in, reading.usage_out, reading.cached_in) == (25, 15, 20)
    assert timer.first_text_at_s == 0.003 and timer.first_visible_at_s == 0.008
    assert timer.text_events == 3 and "".join(reading.text) == "Let meHello!"
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert flavor("anthropic-messages").decode("error", orjson.dumps(error).decode()).error == "Overloaded"


@pytest.mark.parametrize(
    ("name", "obj", "text"),
    [
        ("openai-chat", {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 3, "completion_tokens": 1}}, "hi"),
        ("openai-completions", {"choices": [{"text": "hi", "finish_reason": "length"}],
                                "usage": {"prompt_tokens": 3, "completion_tokens": 1}}, "hi"),
        ("openai-responses", {"object": "response", "status": "completed", "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "th"}]},
            {"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
            "usage": {"input_tokens": 3, "output_tokens": 1}}, "hi"),
        ("ollama-chat", {"message": {"role": "assistant", "content": "hi"}, "done": True, "done_reason": "stop",
                         "prompt_eval_count": 3, "eval_count": 1}, "hi"),
        ("ollama-generate", {"response": "hi", "done": True, "prompt_eval_count": 3, "eval_count": 1}, "hi"),
        ("anthropic-messages", {"type": "message", "content": [{"type": "text", "text": "hi"}],
                                "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 1}}, "hi"),
    ],
)  # fmt: skip
def test_whole_answers(name: str, obj: dict[str, Any], text: str) -> None:
    f = flavor(name)
    whole = f.whole(obj)
    assert whole is not None and whole.content == text
    assert (whole.prompt_tokens, whole.completion_tokens) == (3, 1)
    assert f.whole({"error": {"message": "nope"}}) is None
    for other in FLAVORS:  # a JSON error body is nobody's answer
        assert flavor(other).whole({"error": "x"}) is None


def test_llama_cpp_timings_become_server_figures() -> None:
    raw = {
        "prompt_n": 12,
        "prompt_ms": 30.5,
        "predicted_n": 48,
        "predicted_ms": 240.0,
        "predicted_per_second": 200.0,
    }
    server = flavor("openai-chat").server_timings(raw)
    assert server == ServerTimings(prefill_ms=30.5, decode_ms=240.0, decode_tokens=48, prompt_tokens=12)
    assert server.decode_tokens_per_s == pytest.approx(200.0) and server.time_per_token_ms == pytest.approx(
        5.0
    )
    assert flavor("openai-chat").server_timings({"cache_n": 3}) is None


def test_text_that_is_not_a_string_is_a_bad_event() -> None:
    with pytest.raises(BadEvent):
        flavor("openai-completions").decode("message", '{"choices":[{"text":5}]}')
    with pytest.raises(BadEvent):
        flavor("ollama-chat").decode("", '{"message":{"content":5},"done":false}')
    with pytest.raises(BadEvent):
        flavor("anthropic-messages").decode(
            "content_block_delta", '{"type":"content_block_delta","delta":{"type":"text_delta","text":[1]}}'
        )
    assert flavor("openai-chat").decode("message", "[DONE]") == Delta(done=True)


@pytest.mark.parametrize(
    ("api", "data", "cached"),
    [
        ("openai-chat", '{"choices":[],"usage":{"prompt_tokens":300,"completion_tokens":9,'
         '"prompt_tokens_details":{"cached_tokens":256}}}', 256),  # vLLM, SGLang, OpenAI
        ("openai-chat", '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
         '"timings":{"cache_n":48,"prompt_n":12}}', 48),  # llama.cpp
        ("openai-chat", '{"choices":[],"usage":{"prompt_tokens":300,"completion_tokens":9}}', None),
        ("openai-completions", '{"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":2,'
         '"prompt_tokens_details":{"cached_tokens":16}}}', 16),
        ("openai-responses", '{"type":"response.completed","response":{"status":"completed","usage":'
         '{"input_tokens":30,"output_tokens":2,"input_tokens_details":{"cached_tokens":16}}}}', 16),
        ("anthropic-messages", '{"type":"message_start","message":{"usage":{"input_tokens":30,'
         '"cache_read_input_tokens":16,"output_tokens":1}}}', 16),
    ],
)  # fmt: skip
def test_cached_prompt_tokens_are_read_where_the_api_reports_them(
    api: str, data: str, cached: int | None
) -> None:
    name = {"openai-responses": "response.completed", "anthropic-messages": "message_start"}.get(
        api, "message"
    )
    assert flavor(api).decode(name, data).cached_tokens == cached
