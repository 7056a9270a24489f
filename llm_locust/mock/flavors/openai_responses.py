"""``POST /v1/responses`` (OpenAI Responses API, as vLLM serves it): typed SSE events, each an
``event: <type>`` line and JSON data carrying ``type`` and ``sequence_number`` (0, 1, ...).

The request: ``input`` (a string, or a list of messages whose ``content`` is a string or a list of
``input_text`` parts), ``instructions``, ``max_output_tokens``, ``stream``, ``temperature``.
The stream (as vLLM's simple streaming path writes it): ``response.created``,
``response.in_progress``; for reasoning tokens a ``reasoning`` output item
(``response.output_item.added``, ``response.content_part.added`` with a ``reasoning_text`` part,
``response.reasoning_text.delta`` per token, ``response.reasoning_text.done``,
``response.content_part.done``, ``response.output_item.done``); then a ``message`` item the same way
with an ``output_text`` part and ``response.output_text.delta`` / ``response.output_text.done``; then
``response.completed`` with the whole response and its usage (``input_tokens``,
``input_tokens_details.cached_tokens`` (the mock's prefix cache's; 0 without one), ``output_tokens``
(reasoning included),
``output_tokens_details.reasoning_tokens``, ``total_tokens``). An item is added with its first
token, so an empty answer has no items. No ``[DONE]``: ``response.completed`` is the end.
Like vLLM, an answer that used its whole ``max_output_tokens`` ends with ``response.completed``
whose response has ``status: "incomplete"`` and ``incomplete_details.reason:
"max_output_tokens"`` (OpenAI itself sends a ``response.incomplete`` event then).
In-stream errors are an ``error`` event (``{"type": "error", "code", "message", "param"}``), after
which the body ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llm_locust.mock.flavors.base import Ask, BadRequest, Reply, max_tokens_of
from llm_locust.mock.flavors.openai_chat import openai_error
from llm_locust.mock.prompts import last_user_text, text_of


def _input_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return "".join(text_of(item.get("content")) for item in value)
    raise BadRequest(400, "body must be JSON with 'input' (a string or a list of messages)")


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": reply.cached},
        "output_tokens": reply.n_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.n_reasoning},
        "total_tokens": reply.prompt_tokens + reply.n_tokens,
    }


def _reasoning_item(item_id: str, text: str | None) -> dict[str, Any]:
    if text is None:
        return {"id": item_id, "type": "reasoning", "summary": [], "status": "in_progress"}
    content = [{"type": "reasoning_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": "completed"}


def _message_item(item_id: str, text: str | None) -> dict[str, Any]:
    if text is None:
        return {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": item_id, "type": "message", "role": "assistant", "status": "completed", "content": content}


def _response(reply: Reply, ask: Ask, *, done: bool, output: list[dict[str, Any]]) -> dict[str, Any]:
    """The response object: in progress (``done`` False: no output, no usage) or finished."""
    status = "in_progress"
    incomplete = None
    if done:
        status = "incomplete" if reply.finish_is_length else "completed"
        incomplete = {"reason": "max_output_tokens"} if reply.finish_is_length else None
    return {
        "id": f"resp_{reply.rid}",
        "object": "response",
        "created_at": reply.created,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": ask.echo.get("instructions"),
        "max_output_tokens": ask.echo.get("max_output_tokens"),
        "model": reply.model,
        "output": output,
        "parallel_tool_calls": True,
        "temperature": ask.echo.get("temperature"),
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage(reply) if done else None,
    }


class OpenAIResponses:
    name = "openai-responses"
    path = "/v1/responses"
    id_prefix = ""  # resp_, rs_ and msg_ are the API's own prefixes
    media_type = "text/event-stream"
    reasoning = True
    ends_after_error = True

    def ask(self, body: Any, headers: Mapping[str, str]) -> Ask:
        if not isinstance(body, dict):
            raise BadRequest(400, "body must be a JSON object")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise BadRequest(400, "instructions must be a string")
        limit = max_tokens_of(body.get("max_output_tokens"), "max_output_tokens")
        given = body.get("input")
        return Ask(
            prompt=(instructions or "") + _input_text(given),
            last_user=given if isinstance(given, str) else last_user_text(given),
            max_tokens=limit,
            stream=bool(body.get("stream")),
            echo={
                "instructions": instructions,
                "max_output_tokens": limit,
                "temperature": body.get("temperature"),
            },
        )

    def error_body(self, status: int, message: str, *, fault: bool) -> object:
        return openai_error(status, message, fault=fault)

    def whole(self, reply: Reply, ask: Ask, reasoning: str, text: str) -> object:
        output = []
        if reasoning:
            output.append(_reasoning_item(f"rs_{reply.rid}", reasoning))
        if text:
            output.append(_message_item(f"msg_{reply.rid}", text))
        return _response(reply, ask, done=True, output=output)

    def writer(self, reply: Reply, ask: Ask) -> _ResponsesStream:
        return _ResponsesStream(reply, ask)


class _ResponsesStream:
    """Sequence numbers, open items and their text, as the stream goes."""

    __slots__ = ("_ask", "_delta", "_done", "_item", "_kind", "_out", "_reply", "_seq", "_words")

    def __init__(self, reply: Reply, ask: Ask) -> None:
        self._reply = reply
        self._ask = ask
        self._seq = 0
        self._kind = ""  # the open item: "", "reasoning" or "message"
        self._item = ""  # its id
        self._words: list[str] = []  # its text so far
        self._delta = b""  # the head of its delta events, up to the sequence number
        self._done: list[dict[str, Any]] = []  # finished items, for response.completed
        self._out = 0  # output_index of the open item

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        obj = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"

    def start(self) -> bytes:
        created = _response(self._reply, self._ask, done=False, output=[])
        return self._event("response.created", {"response": created}) + self._event(
            "response.in_progress", {"response": created}
        )

    def _open(self, kind: str) -> bytes:
        self._kind = kind
        self._out = len(self._done)
        self._words = []
        if kind == "reasoning":
            self._item = f"rs_{self._reply.rid}"
            item = _reasoning_item(self._item, None)
            part: dict[str, Any] = {"type": "reasoning_text", "text": ""}
            delta_type = "response.reasoning_text.delta"
        else:
            self._item = f"msg_{self._reply.rid}"
            item = _message_item(self._item, None)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            delta_type = "response.output_text.delta"
        self._delta = f'event: {delta_type}\ndata: {{"type":"{delta_type}","sequence_number":'.encode()
        at = {"output_index": self._out}
        return self._event("response.output_item.added", {**at, "item": item}) + self._event(
            "response.content_part.added", {"item_id": self._item, **at, "content_index": 0, "part": part}
        )

    def _close(self) -> bytes:
        text = "".join(self._words)
        at = {"item_id": self._item, "output_index": self._out, "content_index": 0}
        if self._kind == "reasoning":
            item = _reasoning_item(self._item, text)
            events = self._event("response.reasoning_text.done", {**at, "text": text})
            part: dict[str, Any] = {"type": "reasoning_text", "text": text}
        else:
            item = _message_item(self._item, text)
            events = self._event("response.output_text.done", {**at, "text": text, "logprobs": []})
            part = {"type": "output_text", "text": text, "annotations": []}
        events += self._event("response.content_part.done", {**at, "part": part})
        events += self._event("response.output_item.done", {"output_index": self._out, "item": item})
        self._done.append(item)
        self._kind = ""
        return events

    def token(self, word: str, reasoning: bool) -> bytes:
        kind = "reasoning" if reasoning else "message"
        events = b""
        if kind != self._kind:
            if self._kind:
                events = self._close()
            events += self._open(kind)
        self._words.append(word)
        seq = self._seq
        self._seq += 1
        tail = b'","logprobs":[]}\n\n' if not reasoning else b'"}\n\n'
        return (
            events
            + self._delta
            + b'%d,"item_id":"%s","output_index":%d,"content_index":0,"delta":"'
            % (seq, self._item.encode(), self._out)
            + word.encode()
            + tail
        )

    def end(self) -> bytes:
        events = self._close() if self._kind else b""
        final = _response(self._reply, self._ask, done=True, output=self._done)
        return events + self._event("response.completed", {"response": final})

    def error_event(self) -> bytes:
        fields = {"code": "server_error", "message": "mock error event", "param": None}
        return self._event("error", fields)

    def malformed(self) -> bytes:
        return (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"x"\n\n'
        )

    def huge_event_start(self) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"'
