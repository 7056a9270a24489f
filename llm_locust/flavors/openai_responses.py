"""OpenAI Responses (``POST /v1/responses``; hosted APIs, vLLM): ``input`` and ``instructions`` in,
typed SSE events out. Text arrives as ``response.output_text.delta``, reasoning text as
``response.reasoning_text.delta`` (or its summary's deltas), and the stream ends with
``response.completed`` (or ``response.incomplete``), which carries the usage; ``error`` and
``response.failed`` are errors."""

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
from llm_locust.flavors.openai_chat import error_text, openai_models

PATH = "/v1/responses"
_REASONING = (
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning.delta",
)
_ENDS = ("response.completed", "response.incomplete")


def _usage(response: Any) -> tuple[int | None, int | None, int | None]:
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None, None, None
    details = usage.get("input_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, dict) else None
    return count(usage.get("output_tokens")), count(usage.get("input_tokens")), cached


def _finish(response: Any, kind: str) -> str:
    """Why the response ended: its incomplete reason (``max_output_tokens``: OpenAI sends
    ``response.incomplete``, vLLM ``response.completed`` with ``status: "incomplete"``), else its
    status."""
    response = response if isinstance(response, dict) else {}
    status = response.get("status")
    if kind == "response.incomplete" or status == "incomplete":
        details = response.get("incomplete_details")
        if isinstance(details, dict) and isinstance(details.get("reason"), str):
            return str(details["reason"])
        return "incomplete"
    return status if isinstance(status, str) else "completed"


def plain_content(obj: Any) -> str | None:
    """The text of a ``response.output_text.delta`` event, else None. Where this returns text,
    :func:`delta_of` returns ``Delta(content=text)``; the compiled reader recognises the same events
    in C."""
    if type(obj) is not dict or obj.get("type") != "response.output_text.delta":
        return None
    text = obj.get("delta")
    return text if type(text) is str and text else None


def delta_of(kind: str, obj: Any, data: str) -> Delta:
    """What one Responses event carried: ``kind`` is its type (the SSE event name, else ``type``)."""
    if not isinstance(obj, dict):
        raise BadEvent(f"event is not a JSON object: {data[:80]!r}")
    kind = str(obj.get("type") or kind)
    if kind == "response.output_text.delta":
        return Delta(content=text_of(obj.get("delta"), "delta", data))
    if kind in _REASONING:
        return Delta(reasoning=text_of(obj.get("delta"), "delta", data))
    if kind in _ENDS:
        response = obj.get("response")
        out, inp, cached = _usage(response)
        return Delta(
            finish_reason=_finish(response, kind),
            completion_tokens=out,
            prompt_tokens=inp,
            cached_tokens=cached,
            done=True,
            response_id=_response_id(response),
        )
    if kind == "response.created" or kind == "response.in_progress":
        rid = _response_id(obj.get("response"))
        return EMPTY if rid is None else Delta(response_id=rid)
    if kind == "error":
        return Delta(error=str(obj.get("message") or error_text(obj.get("error") or obj)))
    if kind == "response.failed":
        response = obj.get("response")
        error = response.get("error") if isinstance(response, dict) else None
        return Delta(error=error_text(error) if error else "response.failed")
    return EMPTY


def _response_id(response: Any) -> str | None:
    """``response.id`` (``resp_...``) of the events that carry the response object."""
    rid = response.get("id") if isinstance(response, dict) else None
    return rid if isinstance(rid, str) and rid else None


def _output_text(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(text, reasoning) of a whole response's ``output`` items."""
    text, reasoning = [], []
    for item in obj.get("output") or []:
        if not isinstance(item, dict):
            continue
        for part in item.get("content") or item.get("summary") or []:
            if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                continue
            if part.get("type") == "output_text":
                text.append(part["text"])
            elif item.get("type") == "reasoning":
                reasoning.append(part["text"])
    return "".join(text), "".join(reasoning)


class OpenAIResponses:
    name = "openai-responses"
    path = PATH
    models_path = "/v1/models"
    framing = "sse"
    stream_media_types = ("text/event-stream",)
    plain_scanner: str | None = "openai-responses"
    end_marker = "response.completed"
    ignore_eos_field = True

    def request(self, sample: Sample, options: RequestOptions) -> Request:
        body: dict[str, Any] = {"model": options.model, "input": sample.turns, "stream": True}
        if sample.system:
            body["instructions"] = sample.system
        if sample.max_tokens is not None:
            body["max_output_tokens"] = sample.max_tokens
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.ignore_eos:
            body["ignore_eos"] = True  # a vLLM extension
        body.update(sample.extra_body)
        headers = {**JSON_HEADERS, "Accept": "text/event-stream", **bearer(options.api_key)}
        return Request(PATH, headers, orjson.dumps(body))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return bearer(api_key)

    def decode(self, name: str, data: str) -> Delta:
        return delta_of(name, load_json(data), data)

    def whole(self, obj: Any) -> Completion | None:
        if not isinstance(obj, dict) or obj.get("object") != "response" or obj.get("error"):
            return None
        text, reasoning = _output_text(obj)
        out, inp, _cached = _usage(obj)
        status = obj.get("status")
        finish = status if isinstance(status, str) else None
        return Completion(text, reasoning, finish, out, inp, _response_id(obj))

    def models(self, obj: Any) -> list[str]:
        return openai_models(obj)

    def server_timings(self, raw: Mapping[str, Any]) -> ServerTimings | None:
        return None


FLAVOR = OpenAIResponses()
