"""OpenAI-compatible ``/v1/chat/completions``: request bodies and streamed chunk decoding."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

PATH = "/v1/chat/completions"


class BadEvent(ValueError):
    """A streamed event that is not JSON or not a chat-completion chunk."""


class Delta(NamedTuple):
    """What one streamed chunk carried. Empty strings mean "nothing of that kind".

    A NamedTuple rather than a frozen dataclass: one is built per streamed token, and a frozen
    dataclass's ``__init__`` costs several times more."""

    content: str = ""
    reasoning: str = ""
    finish_reason: str | None = None
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    error: str | None = None
    #: llama.cpp's non-standard ``timings`` object (prompt_n, prompt_ms, predicted_n, predicted_ms)
    timings: dict[str, Any] | None = None


_EMPTY = Delta()


def build_body(
    *,
    model: str,
    messages: list[dict[str, str]],
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


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        msg = error.get("message") or error.get("msg") or orjson.dumps(error).decode()
        return str(msg)
    return str(error)


def parse_chunk(data: str) -> Delta:
    """Decode one ``data:`` payload (``[DONE]`` is handled by the caller).

    Raises :class:`BadEvent` for invalid JSON or an object that is neither a chunk nor an error.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"invalid JSON in event: {data[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise BadEvent(f"event is not a JSON object: {data[:80]!r}")
    if obj.get("error"):
        return Delta(error=_error_text(obj["error"]))
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
    if not choices:
        if usage is None and timings is None:
            return _EMPTY
        return Delta(completion_tokens=completion_tokens, prompt_tokens=prompt_tokens, timings=timings)
    choice = choices[0]
    delta = choice.get("delta") or {}
    content = delta.get("content") or ""
    reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
    finish = choice.get("finish_reason")
    if not (content or reasoning or finish or completion_tokens is not None or timings is not None):
        return _EMPTY
    return Delta(
        content=content,
        reasoning=reasoning,
        finish_reason=finish,
        completion_tokens=completion_tokens,
        prompt_tokens=prompt_tokens,
        timings=timings,
    )
