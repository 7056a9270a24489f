"""Anthropic Messages (``POST /v1/messages``; Anthropic's API, and vLLM and llama.cpp, which serve
it too): ``x-api-key`` and ``anthropic-version`` headers, ``system`` at the top level, ``max_tokens``
required; named SSE events. ``message_start`` carries the input tokens (and the cached ones),
``content_block_delta`` the text (``text_delta``) or the thinking (``thinking_delta``),
``message_delta`` the stop reason and the output tokens so far, ``message_stop`` the end;
``ping`` is nothing, ``error`` an error. TTFT is the first text or thinking delta; TTFVT the first
text delta."""

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
    count,
    load_json,
    text_of,
)
from llm_locust.flavors.openai_chat import openai_models, response_id

PATH = "/v1/messages"
VERSION = "2023-06-01"
#: ``max_tokens`` is required by the API: sent when --max-tokens is 0 ("let the server decide").
DEFAULT_MAX_TOKENS = 4096
_DONE = Delta(done=True)


def plain_content(obj: Any) -> str | None:
    """The text of a ``content_block_delta`` event with a ``text_delta``, else None. Where this
    returns text, :func:`delta_of` returns ``Delta(content=text)``; the compiled reader recognises
    the same events in C."""
    if type(obj) is not dict or obj.get("type") != "content_block_delta":
        return None
    delta = obj.get("delta")
    if type(delta) is not dict or delta.get("type") != "text_delta":
        return None
    text = delta.get("text")
    return text if type(text) is str and text else None


def delta_of(kind: str, obj: Any, data: str) -> Delta:
    """What one event carried: ``kind`` is its SSE event name (else its ``type``)."""
    if not isinstance(obj, dict):
        raise BadEvent(f"event is not a JSON object: {data[:80]!r}")
    kind = str(obj.get("type") or kind)
    if kind == "content_block_delta":
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            raise BadEvent(f"content_block_delta without a delta object: {data[:80]!r}")
        if delta.get("type") == "text_delta":
            return Delta(content=text_of(delta.get("text"), "text", data))
        if delta.get("type") == "thinking_delta":
            return Delta(reasoning=text_of(delta.get("thinking"), "thinking", data))
        return EMPTY  # signature_delta, input_json_delta
    if kind == "message_start":
        message = obj.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
        rid = message.get("id") if isinstance(message, dict) else None
        rid = rid if isinstance(rid, str) and rid else None  # msg_...
        if not isinstance(usage, dict):
            return EMPTY if rid is None else Delta(response_id=rid)
        return Delta(
            prompt_tokens=count(usage.get("input_tokens")),
            cached_tokens=count(usage.get("cache_read_input_tokens")),
            response_id=rid,
        )
    if kind == "message_delta":
        delta = obj.get("delta")
        usage = obj.get("usage")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        return Delta(
            finish_reason=reason if isinstance(reason, str) else None,
            completion_tokens=count(usage.get("output_tokens")) if isinstance(usage, dict) else None,
        )
    if kind == "message_stop":
        return _DONE
    if kind == "error":
        error = obj.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        return Delta(error=str(message or data[:200]))
    return EMPTY  # ping, content_block_start, content_block_stop


class AnthropicMessages:
    name = "anthropic-messages"
    path = PATH
    models_path = "/v1/models"
    framing = "sse"
    stream_media_types = ("text/event-stream",)
    plain_scanner: str | None = "anthropic-messages"
    end_marker = "message_stop"
    ignore_eos_field = True

    def request(self, sample: Sample, options: RequestOptions) -> Request:
        body: dict[str, Any] = {
            "model": options.model,
            "max_tokens": sample.max_tokens if sample.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "messages": sample.turns,
            "stream": True,
        }
        if sample.system:
            body["system"] = sample.system
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.ignore_eos:
            body["ignore_eos"] = True  # an extension of vLLM's and llama.cpp's servers
        body.update(sample.extra_body)
        headers = {**JSON_HEADERS, "Accept": "text/event-stream", **self.auth_headers(options.api_key)}
        return Request(PATH, headers, orjson.dumps(body))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        headers = {"anthropic-version": VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def decode(self, name: str, data: str) -> Delta:
        return delta_of(name, load_json(data), data)

    def whole(self, obj: Any) -> Completion | None:
        if not isinstance(obj, dict) or obj.get("type") != "message":
            return None
        text, thinking = [], []
        for block in obj.get("content") or []:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                text.append(block["text"])
            elif isinstance(block, dict) and isinstance(block.get("thinking"), str):
                thinking.append(block["thinking"])
        raw_usage = obj.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        reason = obj.get("stop_reason")
        return Completion(
            "".join(text),
            "".join(thinking),
            reason if isinstance(reason, str) else None,
            count(usage.get("output_tokens")),
            count(usage.get("input_tokens")),
            response_id(obj),  # msg_...
        )

    def models(self, obj: Any) -> list[str]:
        return openai_models(obj)  # the same {"data": [{"id": ...}]} shape

    def server_timings(self, raw: Mapping[str, Any]) -> ServerTimings | None:
        return None


FLAVOR = AnthropicMessages()
