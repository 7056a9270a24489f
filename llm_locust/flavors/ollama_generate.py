"""Ollama's native generate API: ``POST /api/generate`` with a prompt (and ``system``), NDJSON lines
with ``response`` (and ``thinking``), the last line ``done: true`` with the counts and durations."""

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

PATH = "/api/generate"


def plain_content(obj: Any) -> str | None:
    """The text of a line that carries text only (see :func:`llm_locust.flavors._ollama.plain_text`)."""
    return _ollama.plain_text(obj, obj, "response")


class OllamaGenerate:
    name = "ollama-generate"
    path = PATH
    models_path = "/api/tags"
    framing = "ndjson"
    stream_media_types = _ollama.MEDIA_TYPES
    plain_scanner: str | None = "ollama-generate"
    end_marker = "a line with done: true"
    ignore_eos_field = False

    def request(self, sample: Sample, options: RequestOptions) -> Request:
        body = _ollama.body(options.model, sample, options.temperature)
        body["prompt"] = "\n\n".join(m.get("content", "") for m in sample.turns if m.get("content"))
        if sample.system:
            body["system"] = sample.system
        body.update(sample.extra_body)
        return Request(PATH, {**JSON_HEADERS, **bearer(options.api_key)}, orjson.dumps(body))

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return bearer(api_key)

    def decode(self, name: str, data: str) -> Delta:
        obj = load_json(data)
        content, reasoning = _ollama.texts(obj, "response", data)
        return _ollama.line_delta(obj, data, content, reasoning)

    def whole(self, obj: Any) -> Completion | None:
        if not isinstance(obj, dict) or not isinstance(obj.get("response"), str):
            return None
        content, reasoning = _ollama.texts(obj, "response", "")
        return _ollama.whole(obj, content, reasoning)

    def models(self, obj: Any) -> list[str]:
        return _ollama.models(obj)

    def server_timings(self, raw: Mapping[str, Any]) -> ServerTimings | None:
        return _ollama.server_timings(raw)


FLAVOR = OllamaGenerate()
