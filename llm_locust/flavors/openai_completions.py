"""OpenAI-compatible ``/v1/completions`` (what ``vllm bench serve`` sends by default): a prompt in,
``choices[0].text`` out, the same SSE framing, usage chunk and ``[DONE]`` as chat."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llm_locust.flavors.base import (
    EMPTY,
    JSON_HEADERS,
    BadEvent,
    Completion,
    Delta,
    Request,
    RequestOptions,
    Sample,
    ServerTimings,
    bearer,
    count,
    load_json,
    text_of,
)
from llm_locust.flavors.openai_chat import (
    DONE_DATA,
    cached_prompt_tokens,
    error_text,
    llama_cpp_timings,
    openai_models,
    response_id,
)

PATH = "/v1/completions"
_DONE = Delta(done=True)


def plain_content(obj: Any) -> str | None:
    """The text of the common chunk that carries only text (one choice with ``text``, no finish
    reason, usage, timings or error), else None. Where this returns text, :func:`delta_of` returns
    ``Delta(content=text)``; the compiled reader recognises the same chunks in C."""
    if type(obj) is not dict:
        return None
    choices = obj.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason") is not None:
        return None
    text = choice.get("text")
    if type(text) is not str or not text:
        return None
    if obj.get("error") or obj.get("usage") is not None or obj.get("timings") is not None:
        return None
    if obj.get("object") == "error":
        return None
    return text


def delta_of(obj: Any, data: str) -> Delta:
    """What one completions chunk carried (``data`` is its text, for error messages)."""
    if not isinstance(obj, dict):
        raise BadEvent(f"event is not a JSON object: {data[:80]!r}")
    if obj.get("error"):
        return Delta(error=error_text(obj["error"]))
    if obj.get("object") == "error":
        return Delta(error=str(obj.get("message", data[:200])))
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise BadEvent(f"event has no 'choices' list: {data[:80]!r}")
    usage = obj.get("usage")
    out = inp = None
    if isinstance(usage, dict):
        out, inp = count(usage.get("completion_tokens")), count(usage.get("prompt_tokens"))
    timings = obj.get("timings") if isinstance(obj.get("timings"), dict) else None
    cached = cached_prompt_tokens(usage, timings)
    rid = response_id(obj)
    if not choices:
        if out is None and inp is None and timings is None:
            return EMPTY if rid is None else Delta(response_id=rid)
        return Delta(
            completion_tokens=out, prompt_tokens=inp, cached_tokens=cached, timings=timings, response_id=rid
        )
    choice = choices[0]
    if not isinstance(choice, dict):
        raise BadEvent(f"event's first choice is not an object: {data[:80]!r}")
    text = text_of(choice.get("text"), "text", data)
    finish = choice.get("finish_reason")
    if not (text or finish or out is not None or timings is not None):
        return EMPTY if rid is None else Delta(response_id=rid)
    return Delta(
        content=text,
        finish_reason=finish if isinstance(finish, str) else None,
        completion_tokens=out,
        prompt_tokens=inp,
        cached_tokens=cached,
        timings=timings,
        # not on a plain text chunk: it must decode as plain_content's Delta(content=...) does
        response_id=None if text and finish is None and usage is None and timings is None else rid,
    )


class OpenAICompletions:
    name = "openai-completions"
    path = PATH
    models_path = "/v1/models"
    framing = "sse"
    stream_media_types = ("text/event-stream",)
    plain_scanner: str | None = "openai-completions"
    end_marker = "[DONE] or finish_reason"
    ignore_eos_field = True

    def request(self, sample: Sample, options: RequestOptions) -> Request:
        body: dict[str, Any] = {
            "model": options.model,
            "prompt": sample.prompt,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sample.max_tokens is not None:
            body["max_tokens"] = sample.max_tokens
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.ignore_eos:
            body["ignore_eos"] = True  # vLLM, SGLang and llama.cpp honour this extension
        body.update(sample.extra_body)
        headers = {**JSON_HEADERS, "Accept": "text/event-stream", **bearer(options.api_key)}
        return Request(PATH, headers, orjson.dumps(body))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return bearer(api_key)

    def decode(self, name: str, data: str) -> Delta:
        if data == DONE_DATA:
            return _DONE
        if name == "error":
            return Delta(error=data[:200])
        return delta_of(load_json(data), data)

    def whole(self, obj: Any) -> Completion | None:
        if not isinstance(obj, dict) or obj.get("error"):
            return None
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        text = choices[0].get("text")
        if not isinstance(text, str):
            return None
        raw_usage = obj.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        finish = choices[0].get("finish_reason")
        return Completion(
            text,
            "",
            finish if isinstance(finish, str) else None,
            count(usage.get("completion_tokens")),
            count(usage.get("prompt_tokens")),
            response_id(obj),
        )

    def models(self, obj: Any) -> list[str]:
        return openai_models(obj)

    def server_timings(self, raw: Mapping[str, Any]) -> ServerTimings | None:
        return llama_cpp_timings(raw)


FLAVOR = OpenAICompletions()
