"""Decoding OpenAI-compatible stream chunks."""

from __future__ import annotations

import orjson
import pytest

from llm_locust.flavors.openai_chat import BadEvent, Delta, build_body, parse_chunk


def chunk(delta: dict[str, object] | None = None, finish: str | None = None, **extra: object) -> str:
    obj: dict[str, object] = {"id": "x", "object": "chat.completion.chunk", "choices": []}
    if delta is not None:
        obj["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    obj.update(extra)
    return orjson.dumps(obj).decode()


def test_role_only_first_chunk_carries_only_the_answer_id() -> None:
    assert parse_chunk(chunk({"role": "assistant", "content": ""})) == Delta(response_id="x")
    assert parse_chunk(chunk({"role": "assistant"}, id=None)) == Delta()


def test_empty_content_chunk_carries_only_the_answer_id() -> None:
    assert parse_chunk(chunk({"content": ""})) == Delta(response_id="x")
    assert parse_chunk(chunk({"content": None})) == Delta(response_id="x")


def test_content() -> None:
    assert parse_chunk(chunk({"content": " hi"})) == Delta(content=" hi")  # plain: no id (taken once)
    assert parse_chunk(chunk({"content": "!"}, finish="stop")).response_id == "x"


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_reasoning_deltas(key: str) -> None:
    d = parse_chunk(chunk({key: "think"}))
    assert d.reasoning == "think" and d.content == ""


def test_finish_reason() -> None:
    assert parse_chunk(chunk({}, finish="length")).finish_reason == "length"


def test_usage_chunk_with_empty_choices() -> None:
    d = parse_chunk(chunk(None, usage={"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}))
    assert (d.prompt_tokens, d.completion_tokens) == (12, 34)


def test_usage_on_last_content_chunk() -> None:
    d = parse_chunk(
        chunk({"content": "x"}, finish="stop", usage={"prompt_tokens": 1, "completion_tokens": 2})
    )
    assert (d.content, d.finish_reason, d.completion_tokens) == ("x", "stop", 2)


def test_error_objects_in_stream() -> None:
    assert parse_chunk('{"error": {"message": "boom", "code": 500}}').error == "boom"
    assert parse_chunk('{"object": "error", "message": "vllm says no", "code": 400}').error == "vllm says no"
    assert parse_chunk('{"error": "plain"}').error == "plain"


@pytest.mark.parametrize(
    "data", ['{"choices": [{"delta": {"content": "x"}', "[1, 2]", '{"foo": 1}', "nonsense"]
)
def test_bad_events(data: str) -> None:
    with pytest.raises(BadEvent):
        parse_chunk(data)


def test_body_asks_for_usage_and_merges_extra_body() -> None:
    body = orjson.loads(
        build_body(
            model="m",
            messages=[{"role": "user", "content": "q"}],
            max_tokens=8,
            temperature=0.0,
            ignore_eos=True,
            extra_body={"top_k": 1, "max_tokens": 9},
        )
    )
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["ignore_eos"] is True and body["temperature"] == 0.0 and body["top_k"] == 1
    assert body["max_tokens"] == 9  # --extra-body wins


def test_llama_cpp_timings_are_kept() -> None:
    timings = {"prompt_n": 19, "prompt_ms": 28.7, "predicted_n": 16, "predicted_ms": 53.6}
    d = parse_chunk(chunk(None, usage={"prompt_tokens": 19, "completion_tokens": 16}, timings=timings))
    assert d.timings == timings and d.completion_tokens == 16


def test_plain_content_fast_path_agrees_with_delta_of() -> None:
    """The fast path returns text exactly when delta_of would return Delta(content=text)."""
    import itertools

    from llm_locust.flavors.openai_chat import delta_of, load, plain_content

    deltas = [{}, {"content": "a"}, {"content": ""}, {"content": None}, {"content": 3},
              {"content": "a", "reasoning_content": "r"}, {"content": "a", "reasoning": ""},
              {"role": "assistant", "content": "x"}, "notadict"]  # fmt: skip
    finishes = [None, "stop"]
    extras = [{}, {"usage": {"completion_tokens": 3}}, {"usage": None}, {"timings": {"x": 1}},
              {"error": "boom"}, {"error": None}, {"object": "error"}]  # fmt: skip
    seen_fast = 0
    for d, f, extra in itertools.product(deltas, finishes, extras):
        for choices in ([{"index": 0, "delta": d, "finish_reason": f}],
                        [{"index": 0, "delta": d}, {"index": 1, "delta": d}], []):  # fmt: skip
            obj = {"object": "chat.completion.chunk", "choices": choices, **extra}
            data = orjson.dumps(obj).decode()
            fast = plain_content(load(data))
            try:
                slow = delta_of(load(data), data)
            except BadEvent:
                assert fast is None
                continue
            if fast is not None:  # declining is always safe: delta_of then decides
                seen_fast += 1
                assert slow == Delta(content=fast), data
    assert seen_fast > 0
    assert plain_content(load(chunk({"content": " the"}))) == " the"  # the common chunk takes it
