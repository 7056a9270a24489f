"""OpenAI-compatible ``/v1/chat/completions`` (vLLM, SGLang, llama.cpp, Ollama's ``/v1``, TGI, hosted
APIs): request bodies and streamed chunk decoding.

The chunk that carries one piece of text is nearly every event; :func:`plain_content` recognises it
without building a :class:`Delta`, and the compiled reader recognises it in C (``plain_scanner``).
"""

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
)

PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
#: Media types of a streamed answer (the ``Content-Type`` of a 2xx response, without parameters).
STREAM_CONTENT_TYPES = ("text/event-stream",)
DONE_DATA = "[DONE]"

__all__ = ["FLAVOR", "BadEvent", "Delta", "build_body", "delta_of", "load", "parse_chunk", "plain_content"]

_EMPTY = EMPTY
_DONE_DELTA = Delta(done=True)


def build_body(
    *,
    model: str,
    messages: Any,
    max_tokens: int | None,
    temperature: float | None,
    ignore_eos: bool,
    extra_body: dict[str, Any],
) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if ignore_eos:
        body["ignore_eos"] = True  # vLLM, SGLang and llama.cpp honour this extension
    body.update(extra_body)
    return orjson.dumps(body)


def error_text(error: Any) -> str:
    if isinstance(error, dict):
        msg = error.get("message") or error.get("msg") or orjson.dumps(error).decode()
        return str(msg)
    return str(error)


def parse_chunk(data: str) -> Delta:
    """Decode one ``data:`` payload (``[DONE]`` is handled by the caller).

    Raises :class:`BadEvent` for invalid JSON or an object that is neither a chunk nor an error.
    """
    return delta_of(load(data), data)


def load(data: str) -> Any:
    """The JSON of one ``data:`` payload; :class:`BadEvent` if it is not JSON."""
    return load_json(data)


def plain_content(obj: Any) -> str | None:
    """The text of the common chunk that carries only text (one choice, ``delta.content``, no finish
    reason, usage, timings, reasoning or error), else None: then use :func:`delta_of`. Where this
    returns text, ``delta_of`` returns ``Delta(content=text)``; it only skips building the Delta."""
    if type(obj) is not dict:
        return None
    choices = obj.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("finish_reason") is not None:
        return None
    delta = choice.get("delta")
    if type(delta) is not dict:
        return None
    content = delta.get("content")
    if type(content) is not str or not content or delta.get("reasoning_content") or delta.get("reasoning"):
        return None
    if obj.get("error") or obj.get("usage") is not None or obj.get("timings") is not None:
        return None
    if obj.get("object") == "error":
        return None
    return content


def delta_of(obj: Any, data: str) -> Delta:
    """What a decoded chunk carried (``data`` is its text, for error messages)."""
    if not isinstance(obj, dict):
        raise BadEvent(f"event is not a JSON object: {data[:80]!r}")
    if obj.get("error"):
        return Delta(error=error_text(obj["error"]))
    if obj.get("object") == "error":  # vLLM's in-stream error shape
        return Delta(error=str(obj.get("message", data[:200])))
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise BadEvent(f"event has no 'choices' list: {data[:80]!r}")
    usage = obj.get("usage")
    timings = obj.get("timings")
    if timings is not None and not isinstance(timings, dict):
        timings = None
    completion_tokens = prompt_tokens = None
    if isinstance(usage, dict):
        completion_tokens = usage.get("completion_tokens")
        prompt_tokens = usage.get("prompt_tokens")
    cached = cached_prompt_tokens(usage, timings)
    rid = response_id(obj)
    if not choices:
        if usage is None and timings is None:
            return _EMPTY if rid is None else Delta(response_id=rid)
        return Delta(
            completion_tokens=completion_tokens,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            timings=timings,
            response_id=rid,
        )
    choice = choices[0]
    delta = choice.get("delta") or {} if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        raise BadEvent(f"event's first choice has no 'delta' object: {data[:80]!r}")
    content = delta.get("content") or ""
    reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
    if not isinstance(content, str) or not isinstance(reasoning, str):
        raise BadEvent(f"event's delta has text that is not a string: {data[:80]!r}")
    finish = choice.get("finish_reason")
    if not (content or reasoning or finish or completion_tokens is not None or timings is not None):
        return _EMPTY if rid is None else Delta(response_id=rid)  # the role chunk that opens a stream
    return Delta(
        content=content,
        reasoning=reasoning,
        finish_reason=finish,
        completion_tokens=completion_tokens,
        prompt_tokens=prompt_tokens,
        cached_tokens=cached,
        timings=timings,
        # not on a plain text chunk: it must decode as plain_content's Delta(content=...) does
        response_id=None
        if content and not reasoning and finish is None and not usage and not timings
        else rid,
    )


def response_id(obj: dict[str, Any]) -> str | None:
    """A chunk's ``id`` (``chatcmpl-...``, ``cmpl-...``): the same in every chunk of one answer."""
    rid = obj.get("id")
    return rid if type(rid) is str and rid else None


def cached_prompt_tokens(usage: Any, timings: Any) -> int | None:
    """Prompt tokens served from a prefix cache: ``usage.prompt_tokens_details.cached_tokens``
    (OpenAI, vLLM, SGLang), else llama.cpp's ``timings.cache_n``; None where neither says."""
    if isinstance(usage, dict):
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict):
            found = count(details.get("cached_tokens"))
            if found is not None:
                return found
    if isinstance(timings, dict):
        return count(timings.get("cache_n"))
    return None


def completion_of(obj: Any) -> Completion | None:
    """The answer of a non-streamed ``chat.completion`` object, or None when ``obj`` is not one."""
    if not isinstance(obj, dict) or obj.get("error"):
        return None
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    if not isinstance(content, str) or not isinstance(reasoning, str):
        return None
    usage = obj.get("usage")
    out = inp = None
    if isinstance(usage, dict):
        out, inp = count(usage.get("completion_tokens")), count(usage.get("prompt_tokens"))
    finish = choices[0].get("finish_reason")
    finish = finish if isinstance(finish, str) else None
    return Completion(content, reasoning, finish, out, inp, response_id(obj))


def llama_cpp_timings(raw: Mapping[str, Any]) -> ServerTimings | None:
    """llama.cpp's ``timings`` (``prompt_n``, ``prompt_ms``, ``predicted_n``, ``predicted_ms``)."""

    def number(key: str) -> float | None:
        value = raw.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    prompt_n, predicted_n = number("prompt_n"), number("predicted_n")
    timings = ServerTimings(
        prefill_ms=number("prompt_ms"),
        decode_ms=number("predicted_ms"),
        decode_tokens=int(predicted_n) if predicted_n is not None else None,
        prompt_tokens=int(prompt_n) if prompt_n is not None else None,
    )
    return None if timings == ServerTimings() else timings


def openai_models(obj: Any) -> list[str]:
    """The ids of an OpenAI-style model list (``{"data": [{"id": ...}, ...]}``)."""
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, list):
        return []
    return [str(m["id"]) for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


class OpenAIChat:
    """The ``openai-chat`` flavor."""

    name = "openai-chat"
    path = PATH
    models_path = MODELS_PATH
    framing = "sse"
    stream_media_types = STREAM_CONTENT_TYPES
    plain_scanner: str | None = "openai-chat"
    end_marker = "[DONE] or finish_reason"
    ignore_eos_field = True

    def request(self, sample: Sample, options: RequestOptions) -> Request:
        body = build_body(
            model=options.model,
            messages=list(sample.messages),
            max_tokens=sample.max_tokens,
            temperature=options.temperature,
            ignore_eos=options.ignore_eos,
            extra_body=dict(sample.extra_body),
        )
        headers = {**JSON_HEADERS, "Accept": "text/event-stream", **bearer(options.api_key)}
        return Request(PATH, headers, body)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return bearer(api_key)

    def decode(self, name: str, data: str) -> Delta:
        if data == DONE_DATA:
            return _DONE_DELTA
        if name == "error":
            return Delta(error=data[:200])
        obj = load_json(data)
        content = plain_content(obj)
        if content is not None:
            return Delta(content=content)
        return delta_of(obj, data)

    def whole(self, obj: Any) -> Completion | None:
        return completion_of(obj)

    def models(self, obj: Any) -> list[str]:
        return openai_models(obj)

    def server_timings(self, raw: Mapping[str, Any]) -> ServerTimings | None:
        return llama_cpp_timings(raw)


FLAVOR = OpenAIChat()
