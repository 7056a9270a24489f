"""What Ollama's native chat and generate APIs share: NDJSON lines, ``options``, the last line's
counts and the server's own durations (nanoseconds), the model list at ``/api/tags``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_locust.flavors.base import EMPTY, BadEvent, Completion, Delta, Sample, ServerTimings, count, text_of

#: The fields of the last line that say how the server spent its time (nanoseconds).
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
MEDIA_TYPES = ("application/x-ndjson",)


def body(model: str, sample: Sample, temperature: float | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if sample.max_tokens is not None:
        options["num_predict"] = sample.max_tokens
    if temperature is not None:
        options["temperature"] = temperature
    out: dict[str, Any] = {"model": model, "stream": True}
    if options:
        out["options"] = options
    return out


def plain_text(obj: Any, holder: Any, key: str) -> str | None:
    """The text of a line that is neither the last one nor an error and carries text only (``key``
    of ``holder``, no thinking), else None. Where this returns text, the flavor's ``decode`` returns
    ``Delta(content=text)``; the compiled reader recognises the same lines in C."""
    if type(obj) is not dict or obj.get("error") or obj.get("done") is True or type(holder) is not dict:
        return None
    text = holder.get(key)
    thinking = holder.get("thinking")
    if (
        type(text) is not str
        or not text
        or (thinking is not None and (type(thinking) is not str or thinking))
    ):
        return None
    return text


def line_delta(obj: Any, data: str, content: str, reasoning: str) -> Delta:
    """One line's delta, given the text and thinking the API put where it puts them."""
    if not isinstance(obj, dict):
        raise BadEvent(f"line is not a JSON object: {data[:80]!r}")
    if obj.get("error"):
        return Delta(error=str(obj["error"])[:200])
    if obj.get("done") is True:
        timings = {k: obj[k] for k in (*DURATIONS, "prompt_eval_count", "eval_count") if k in obj}
        reason = obj.get("done_reason")
        return Delta(
            content=content,
            reasoning=reasoning,
            finish_reason=reason if isinstance(reason, str) else "stop",
            completion_tokens=count(obj.get("eval_count")),
            prompt_tokens=count(obj.get("prompt_eval_count")),
            timings=timings or None,
            done=True,
        )
    if not (content or reasoning):
        return EMPTY
    return Delta(content=content, reasoning=reasoning)


def texts(holder: Any, content_key: str, data: str) -> tuple[str, str]:
    if not isinstance(holder, dict):
        return "", ""
    return text_of(holder.get(content_key), content_key, data), text_of(
        holder.get("thinking"), "thinking", data
    )


def whole(obj: Any, content: str, reasoning: str) -> Completion | None:
    if not isinstance(obj, dict) or obj.get("error") or "done" not in obj:
        return None
    reason = obj.get("done_reason")
    return Completion(
        content,
        reasoning,
        reason if isinstance(reason, str) else None,
        count(obj.get("eval_count")),
        count(obj.get("prompt_eval_count")),
    )


def models(obj: Any) -> list[str]:
    """The names of ``GET /api/tags``'s ``models``."""
    found = obj.get("models") if isinstance(obj, dict) else None
    if not isinstance(found, list):
        return []
    names = (m.get("name") or m.get("model") for m in found if isinstance(m, dict))
    return [str(n) for n in names if isinstance(n, str)]


def server_timings(raw: Mapping[str, Any]) -> ServerTimings | None:
    """Ollama's durations (ns) and counts of the last line, in ms."""

    def ms(key: str) -> float | None:
        value = raw.get(key)
        return value / 1e6 if isinstance(value, int | float) and not isinstance(value, bool) else None

    timings = ServerTimings(
        prefill_ms=ms("prompt_eval_duration"),
        decode_ms=ms("eval_duration"),
        decode_tokens=count(raw.get("eval_count")),
        prompt_tokens=count(raw.get("prompt_eval_count")),
        total_ms=ms("total_duration"),
        load_ms=ms("load_duration"),
    )
    return None if timings == ServerTimings() else timings
