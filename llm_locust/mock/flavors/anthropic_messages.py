"""``POST /v1/messages`` (Anthropic Messages, as api.anthropic.com, vLLM and llama.cpp serve it).

The request: headers ``x-api-key`` (not checked: the mock has no keys) and ``anthropic-version``
(required, as the real API does: 400 without it), ``max_tokens`` (required: 400
``invalid_request_error`` "max_tokens: Field required" without it), ``system`` (a string or text
blocks), ``messages``, ``stream``. The stream (SSE, each event named by an ``event:`` line and
carrying its ``type``): ``message_start`` (``message.usage``: ``input_tokens`` (every prompt token),
``cache_creation_input_tokens`` 0, ``cache_read_input_tokens`` (the mock's prefix cache's; 0 without
one), ``output_tokens`` 0),
``content_block_start`` of block 0, ``ping``; reasoning tokens as ``thinking_delta`` in a
``thinking`` block, closed by a ``signature_delta`` and ``content_block_stop`` when the text block
starts; text tokens as ``text_delta`` in a ``text`` block; ``content_block_stop``,
``message_delta`` (``delta.stop_reason``: ``"max_tokens"`` or ``"end_turn"``; ``usage.output_tokens``
cumulative, reasoning included), ``message_stop``. Errors: ``{"type": "error", "error": {"type",
"message"}}``, as the HTTP body or as an ``event: error`` after which the body ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llm_locust.mock.flavors.base import Ask, BadRequest, Reply, max_tokens_of
from llm_locust.mock.prompts import last_user_text, messages_text, text_of

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _event(kind: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **obj}) + b"\n\n"


def _usage(reply: Reply, output_tokens: int) -> dict[str, int]:
    # input_tokens is every prompt token, the cached ones included, as vLLM's Anthropic endpoint
    # reports it (Anthropic's own API counts only the uncached ones there), so that prompt tokens
    # compare equal across flavors; the cached part is cache_read_input_tokens.
    return {
        "input_tokens": reply.prompt_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": reply.cached,
        "output_tokens": output_tokens,
    }


def _signature(reply: Reply) -> str:
    return f"mock-signature-{reply.rid}"


class AnthropicMessages:
    name = "anthropic-messages"
    path = "/v1/messages"
    id_prefix = ""  # msg_ is the API's own
    media_type = "text/event-stream"
    reasoning = True
    ends_after_error = True

    def ask(self, body: Any, headers: Mapping[str, str]) -> Ask:
        if "anthropic-version" not in headers:
            raise BadRequest(400, "anthropic-version: header is required")
        if not isinstance(body, dict):
            raise BadRequest(400, "body must be a JSON object")
        if "max_tokens" not in body:
            raise BadRequest(400, "max_tokens: Field required")
        limit = max_tokens_of(body["max_tokens"], "max_tokens")
        try:
            messages = body["messages"]
            text = messages_text(messages)
        except (KeyError, ValueError):
            raise BadRequest(400, "messages: Field required (a list of messages)") from None
        return Ask(
            prompt=text_of(body.get("system")) + text,
            max_tokens=limit,
            stream=bool(body.get("stream")),
            last_user=last_user_text(messages),
        )

    def error_body(self, status: int, message: str, *, fault: bool) -> object:
        return {"type": "error", "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}}

    def whole(self, reply: Reply, ask: Ask, reasoning: str, text: str) -> object:
        content: list[dict[str, str]] = []
        if reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": _signature(reply)})
        if text or not reasoning:
            content.append({"type": "text", "text": text})
        return {
            "id": f"msg_{reply.rid}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": content,
            "stop_reason": "max_tokens" if reply.finish_is_length else "end_turn",
            "stop_sequence": None,
            "usage": _usage(reply, reply.n_tokens),
        }

    def writer(self, reply: Reply, ask: Ask) -> _MessageStream:
        return _MessageStream(reply)


class _MessageStream:
    __slots__ = ("_index", "_reply", "_thinking")

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._index = 0  # of the open content block
        self._thinking = reply.n_reasoning > 0  # the open block is a thinking block

    def start(self) -> bytes:
        reply = self._reply
        message: dict[str, Any] = {
            "id": f"msg_{reply.rid}",
            "type": "message",
            "role": "assistant",
            "model": reply.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(reply, 0),
        }
        block = {"type": "thinking", "thinking": ""} if self._thinking else {"type": "text", "text": ""}
        return (
            _event("message_start", {"message": message})
            + _event("content_block_start", {"index": 0, "content_block": block})
            + _event("ping", {})
        )

    def _close_thinking(self) -> bytes:
        sig = {
            "index": self._index,
            "delta": {"type": "signature_delta", "signature": _signature(self._reply)},
        }
        return _event("content_block_delta", sig) + _event("content_block_stop", {"index": self._index})

    def token(self, word: str, reasoning: bool) -> bytes:
        events = b""
        if self._thinking and not reasoning:
            events = self._close_thinking()
            self._thinking = False
            self._index += 1
            events += _event(
                "content_block_start", {"index": self._index, "content_block": {"type": "text", "text": ""}}
            )
        kind = b'"thinking_delta","thinking":"' if reasoning else b'"text_delta","text":"'
        return (
            events
            + b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":'
            % self._index
            + kind
            + word.encode()
            + b'"}}\n\n'
        )

    def end(self) -> bytes:
        reply = self._reply
        if self._thinking:
            events = self._close_thinking()
        else:
            events = _event("content_block_stop", {"index": self._index})
        stop = "max_tokens" if reply.finish_is_length else "end_turn"
        delta = {
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": reply.n_tokens},
        }
        return events + _event("message_delta", delta) + _event("message_stop", {})

    def error_event(self) -> bytes:
        return _event("error", {"error": {"type": "api_error", "message": "mock error event"}})

    def malformed(self) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":"x"\n\n'
        )

    def huge_event_start(self) -> bytes:
        return (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":"'
        )
