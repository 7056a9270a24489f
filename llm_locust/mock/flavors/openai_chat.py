"""``POST /v1/chat/completions`` (OpenAI, vLLM, SGLang, llama.cpp): ``chat.completion.chunk`` SSE
events, ``data: [DONE]`` at the end.

The stream: a role chunk (``delta: {"role": "assistant", "content": ""}``), one chunk per token
(``delta.content``, or ``delta.reasoning_content`` for reasoning tokens, as vLLM's and llama.cpp's
reasoning parsers send them), a chunk with ``finish_reason`` and an empty delta, a usage chunk
(``choices: []``) when ``stream_options.include_usage``, then ``data: [DONE]``. The text chunk's
exact bytes are the shape the compiled reader's fast path recognises: keep them. With the mock's
prefix cache on, usage has ``prompt_tokens_details.cached_tokens`` (as vLLM with
``--enable-prompt-tokens-details`` and OpenAI write it); without, no ``prompt_tokens_details``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llm_locust.mock.flavors.base import Ask, BadRequest, Reply, json_str, max_tokens_of
from llm_locust.mock.prompts import last_user_text, messages_text

_TEXT_END = b'"},"logprobs":null,"finish_reason":null}]}\n\n'


def openai_error(status: int, message: str, *, fault: bool) -> dict[str, Any]:
    """OpenAI's error body (``{"error": {"message", "type", "code"}}``)."""
    if fault:
        return {"error": {"message": message, "type": "mock", "code": status}}
    return {"error": {"message": message, "type": "invalid_request_error", "code": status}}


def openai_usage(reply: Reply) -> dict[str, Any]:
    """Chat and completions usage; reasoning tokens are part of completion_tokens, cached tokens of
    prompt_tokens."""
    usage: dict[str, Any] = {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.n_tokens,
        "total_tokens": reply.prompt_tokens + reply.n_tokens,
    }
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    if reply.n_reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.n_reasoning}
    return usage


def stream_options_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


class OpenAIChat:
    name = "openai-chat"
    path = "/v1/chat/completions"
    id_prefix = "chatcmpl-"
    media_type = "text/event-stream"
    reasoning = True
    ends_after_error = False  # as before flavors: the stream goes on after the error event

    def ask(self, body: Any, headers: Mapping[str, str]) -> Ask:
        try:
            messages = body["messages"]
            prompt = messages_text(messages)
        except (KeyError, TypeError, ValueError):
            raise BadRequest(400, "body must be JSON with 'messages'") from None
        requested = body.get("max_completion_tokens") or body.get("max_tokens")
        return Ask(
            prompt=prompt,
            last_user=last_user_text(messages),
            max_tokens=max_tokens_of(requested, "max_tokens"),
            stream=bool(body.get("stream")),
            include_usage=stream_options_usage(body),
        )

    def error_body(self, status: int, message: str, *, fault: bool) -> object:
        return openai_error(status, message, fault=fault)

    def whole(self, reply: Reply, ask: Ask, reasoning: str, text: str) -> object:
        message: dict[str, str] = {"role": "assistant", "content": text}
        if reasoning:
            message["reasoning_content"] = reasoning
        return {
            "id": reply.rid,
            "object": "chat.completion",
            "created": reply.created,
            "model": reply.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "length" if reply.finish_is_length else "stop",
                }
            ],
            "usage": openai_usage(reply),
        }

    def writer(self, reply: Reply, ask: Ask) -> _ChatStream:
        return _ChatStream(reply, ask.include_usage)


class _ChatStream:
    __slots__ = ("_include_usage", "_prefix", "_reply")

    def __init__(self, reply: Reply, include_usage: bool) -> None:
        self._reply = reply
        self._include_usage = include_usage
        self._prefix = (
            f'data: {{"id":"{reply.rid}","object":"chat.completion.chunk","created":{reply.created},'
            f'"model":{json_str(reply.model)},"choices":[{{"index":0,"delta":'
        ).encode()

    def start(self) -> bytes:
        return self._prefix + b'{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'

    def token(self, word: str, reasoning: bool) -> bytes:
        key = b'{"reasoning_content":"' if reasoning else b'{"content":"'
        return self._prefix + key + word.encode() + _TEXT_END

    def end(self) -> bytes:
        reply = self._reply
        finish = b"length" if reply.finish_is_length else b"stop"
        tail = self._prefix + b'{},"logprobs":null,"finish_reason":"' + finish + b'"}]}\n\n'
        if self._include_usage:
            usage = orjson.dumps(openai_usage(reply)).decode()
            model = json_str(reply.model)
            tail += (
                f'data: {{"id":"{reply.rid}","object":"chat.completion.chunk","model":{model},'
                f'"choices":[],"usage":{usage}}}\n\n'
            ).encode()
        return tail + b"data: [DONE]\n\n"

    def error_event(self) -> bytes:
        err = {"error": {"message": "mock error event", "type": "server_error", "code": 500}}
        return b"data: " + orjson.dumps(err) + b"\n\n"

    def malformed(self) -> bytes:
        return b'data: {"choices": [{"delta": {"content": "x"\n\n'

    def huge_event_start(self) -> bytes:
        return b'data: {"choices": [{"delta": {"content": "'
