"""Ollama's native chat API: ``POST /api/chat`` with messages, NDJSON lines with ``message.content``
(and ``message.thinking``), the last line ``done: true`` with the counts and the server's durations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llm_locust.flavors import _ollama
from llm_locust.flavors.base import (
    JSON_HEADERS,
    Completion,
    Delta,
    Request,
    RequestOptions,
    Sample,
    ServerTimings,
    bearer,
    load_json,
)

PATH = "/api/chat"


def plain_content(obj: Any) -> str | None:
    """The text of a line that carries text only (see :func:`llm_locust.flavors._ollama.plain_text`)."""
    return _ollama.plain_text(obj, obj.get("message") if type(obj) is dict else None, "content")


class OllamaChat:
    name = "ollama-chat"
    path = PATH
    models_path = "/api/tags"
    framing = "ndjson"
    stream_media_types = _ollama.MEDIA_TYPES
    plain_scanner: str | None = "ollama-chat"
    end_marker = "a line with done: true"
    ignore_eos_field = False

    def request(self, sample: Sample, options: RequestOptions) -> Request:
        body = _ollama.body(options.model, sample, options.temperature)
        body["messages"] = [dict(m) for m in sample.messages]
        body.update(sample.extra_body)
        return Request(PATH, {**JSON_HEADERS, **bearer(options.api_key)}, orjson.dumps(body))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return bearer(api_key)  # Ollama itself takes none; a proxy in front of it may

    def decode(self, name: str, data: str) -> Delta:
        obj = load_json(data)
        content, reasoning = _ollama.texts(
            obj.get("message") if isinstance(obj, dict) else None, "content", data
        )
        return _ollama.line_delta(obj, data, content, reasoning)

    def whole(self, obj: Any) -> Completion | None:
        message = obj.get("message") if isinstance(obj, dict) else None
        content, reasoning = _ollama.texts(message, "content", "")
        return _ollama.whole(obj, content, reasoning) if isinstance(message, dict) else None

    def models(self, obj: Any) -> list[str]:
        return _ollama.models(obj)

    def server_timings(self, raw: Mapping[str, Any]) -> ServerTimings | None:
        return _ollama.server_timings(raw)


FLAVOR = OllamaChat()
