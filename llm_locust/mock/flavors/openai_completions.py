"""``POST /v1/completions`` (OpenAI legacy completions, vLLM, SGLang, llama.cpp): ``text_completion``
SSE events, ``data: [DONE]`` at the end.

The request: ``prompt`` (a string or a list of strings), ``max_tokens``, ``stream``,
``stream_options.include_usage``. The stream: one chunk per token
(``{"id", "object": "text_completion", "created", "model", "choices": [{"index": 0, "text",
"logprobs": null, "finish_reason": null}]}``), a last chunk with ``text: ""`` and ``finish_reason``, a
usage chunk (``choices: []``) when include_usage, then ``data: [DONE]``. No reasoning field: the
mock's reasoning tokens are sent as text (a completions server does not parse reasoning out).
Usage as chat's (``prompt_tokens_details.cached_tokens`` with the prefix cache on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llm_locust.mock.flavors.base import Ask, BadRequest, Reply, json_str, max_tokens_of
from llm_locust.mock.flavors.openai_chat import openai_error, openai_usage, stream_options_usage

_TEXT_END = b'","logprobs":null,"finish_reason":null}]}\n\n'


def _prompt_text(prompt: object) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return "".join(prompt)
    raise BadRequest(400, "body must be JSON with 'prompt' (a string or a list of strings)")


class OpenAICompletions:
    name = "openai-completions"
    path = "/v1/completions"
    id_prefix = "cmpl-"
    media_type = "text/event-stream"
    reasoning = False
    ends_after_error = False  # as chat

    def ask(self, body: Any, headers: Mapping[str, str]) -> Ask:
        if not isinstance(body, dict):
            raise BadRequest(400, "body must be a JSON object")
        prompt = _prompt_text(body.get("prompt"))
        return Ask(
            prompt=prompt,
            last_user=prompt,
            max_tokens=max_tokens_of(body.get("max_tokens"), "max_tokens"),
            stream=bool(body.get("stream")),
            include_usage=stream_options_usage(body),
        )

    def error_body(self, status: int, message: str, *, fault: bool) -> object:
        return openai_error(status, message, fault=fault)

    def whole(self, reply: Reply, ask: Ask, reasoning: str, text: str) -> object:
        return {
            "id": reply.rid,
            "object": "text_completion",
            "created": reply.created,
            "model": reply.model,
            "choices": [
                {
                    "index": 0,
                    "text": reasoning + text,
                    "logprobs": None,
                    "finish_reason": "length" if reply.finish_is_length else "stop",
                }
            ],
            "usage": openai_usage(reply),
        }

    def writer(self, reply: Reply, ask: Ask) -> _CompletionStream:
        return _CompletionStream(reply, ask.include_usage)


class _CompletionStream:
    __slots__ = ("_head", "_include_usage", "_prefix", "_reply")

    def __init__(self, reply: Reply, include_usage: bool) -> None:
        self._reply = reply
        self._include_usage = include_usage
        self._head = (
            f'{{"id":"{reply.rid}","object":"text_completion","created":{reply.created},'
            f'"model":{json_str(reply.model)},"choices":'
        )
        self._prefix = f'data: {self._head}[{{"index":0,"text":"'.encode()

    def start(self) -> bytes:
        return b""

    def token(self, word: str, reasoning: bool) -> bytes:
        return self._prefix + word.encode() + _TEXT_END

    def end(self) -> bytes:
        reply = self._reply
        finish = b"length" if reply.finish_is_length else b"stop"
        tail = self._prefix + b'","logprobs":null,"finish_reason":"' + finish + b'"}]}\n\n'
        if self._include_usage:
            usage = orjson.dumps(openai_usage(reply)).decode()
            tail += f'data: {self._head}[],"usage":{usage}}}\n\n'.encode()
        return tail + b"data: [DONE]\n\n"

    def error_event(self) -> bytes:
        err = {"error": {"message": "mock error event", "type": "server_error", "code": 500}}
        return b"data: " + orjson.dumps(err) + b"\n\n"

    def malformed(self) -> bytes:
        return b'data: {"choices": [{"text": "x"\n\n'

    def huge_event_start(self) -> bytes:
        return b'data: {"choices": [{"text": "'
