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

#: Media types of a streamed answer (the ``Content-Type`` of a 2xx response, without parameters).
STREAM_CONTENT_TYPES = ("text/event-stream",)


class Completion(NamedTuple):
    """A whole chat completion: what a server that ignores ``"stream": true`` answers."""

    content: str
    reasoning: str
    finish_reason: str | None
    completion_tokens: int | None
    prompt_tokens: int | None


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
    return delta_of(load(data), data)


def load(data: str) -> Any:
    """The JSON of one ``data:`` payload; :class:`BadEvent` if it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"invalid JSON in event: {data[:80]!r}") from exc


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
    delta = choice.get("delta") or {} if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        raise BadEvent(f"event's first choice has no 'delta' object: {data[:80]!r}")
    content = delta.get("content") or ""
    reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
    if not isinstance(content, str) or not isinstance(reasoning, str):
        raise BadEvent(f"event's delta has text that is not a string: {data[:80]!r}")
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
        out, inp = _count(usage.get("completion_tokens")), _count(usage.get("prompt_tokens"))
    finish = choices[0].get("finish_reason")
    return Completion(content, reasoning, finish if isinstance(finish, str) else None, out, inp)


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None
