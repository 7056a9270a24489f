"""Ollama's native API: ``POST /api/chat`` (messages) and ``POST /api/generate`` (a prompt), NDJSON.

The request: ``messages`` (chat) or ``prompt`` and ``system`` (generate), ``stream`` (true unless
``false``), ``options: {num_predict, temperature}``. ``think`` is not obeyed: the mock's
``--reasoning-tokens`` decides whether there is thinking, as the model would. The stream
(``Content-Type: application/x-ndjson``, as ``server/routes.go`` streamResponse writes it): one
JSON object per line; chat lines ``{"model", "created_at", "message": {"role": "assistant",
"content", "thinking"}, "done": false}`` (``thinking`` only on reasoning tokens, ``content`` always),
generate lines ``{"model", "created_at", "response", "thinking", "done": false}``; the last line
has ``"done": true``, ``done_reason`` (``"length"`` at ``num_predict``, else ``"stop"``) and the
server's own timing, in nanoseconds, true to the mock's schedule: ``prompt_eval_duration`` from
when the request got its slot to its first token (a queued request's wait is in ``total_duration``
only, as Ollama's runner times prompt evaluation after it holds a slot), ``eval_duration`` from the
first to the last token, ``total_duration`` from the request's arrival to the last line,
``load_duration`` 0 (the mock loads nothing), ``prompt_eval_count`` and ``eval_count`` (reasoning
included). Every field is written even when 0 (Ollama's Go structs omit zero ones). Errors: an HTTP
status with ``{"error": "..."}``, or mid-stream one ``{"error": "..."}`` line, after which the body
ends. The non-streamed answer is the last line's object with the whole text. Ollama's API has no
cached-tokens field: the mock's prefix cache is not reported here (``prompt_eval_count`` is every
prompt token).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from llm_locust.mock.flavors.base import Ask, BadRequest, Reply, json_str, max_tokens_of
from llm_locust.mock.prompts import last_user_text, messages_text, text_of


def created_at(unix_s: float) -> str:
    """An RFC 3339 UTC timestamp with microseconds, as Go's time.Time marshals (``...Z``)."""
    whole = int(unix_s)
    micro = int((unix_s - whole) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micro:06d}Z"


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


def _metrics(reply: Reply, end_s: float) -> dict[str, Any]:
    """Ollama's Metrics of one answer, from the instants the server recorded."""
    first = reply.first_s if reply.first_s is not None else end_s
    last = reply.last_s if reply.last_s is not None else first
    return {
        "total_duration": _ns(end_s - reply.arrived_s),
        "load_duration": 0,
        "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": _ns(first - reply.start_s),
        "eval_count": reply.n_tokens,
        "eval_duration": _ns(last - first),
    }


def _options(body: Mapping[str, Any]) -> Mapping[str, Any]:
    options = body.get("options")
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise BadRequest(400, "options must be an object")
    return options


class _Ollama:
    """What /api/chat and /api/generate share; ``_text_key`` is where the text goes."""

    name = ""
    path = ""
    id_prefix = ""
    media_type = "application/x-ndjson"
    reasoning = True
    ends_after_error = True
    _chat = False

    def _prompt(self, body: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def _last_user(self, body: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def ask(self, body: Any, headers: Mapping[str, str]) -> Ask:
        if not isinstance(body, dict):
            raise BadRequest(400, "body must be a JSON object")
        return Ask(
            prompt=self._prompt(body),
            last_user=self._last_user(body),
            max_tokens=max_tokens_of(_options(body).get("num_predict"), "options.num_predict"),
            stream=body.get("stream") is not False,
        )

    def error_body(self, status: int, message: str, *, fault: bool) -> object:
        return {"error": message}

    def _head(self, reply: Reply) -> dict[str, Any]:
        return {"model": reply.model, "created_at": created_at(time.time())}

    def _text(self, reasoning: str, text: str) -> dict[str, Any]:
        """The text fields of a line or of the whole answer."""
        if self._chat:
            message = {"role": "assistant", "content": text}
            if reasoning:
                message["thinking"] = reasoning
            return {"message": message}
        return {"response": text, "thinking": reasoning} if reasoning else {"response": text}

    def last(self, reply: Reply, reasoning: str, text: str) -> dict[str, Any]:
        """The last line (or the whole answer): done, its reason, the server's timing."""
        return {
            **self._head(reply),
            **self._text(reasoning, text),
            "done": True,
            "done_reason": "length" if reply.finish_is_length else "stop",
            **_metrics(reply, time.perf_counter()),
        }

    def whole(self, reply: Reply, ask: Ask, reasoning: str, text: str) -> object:
        return self.last(reply, reasoning, text)

    def writer(self, reply: Reply, ask: Ask) -> _OllamaStream:
        return _OllamaStream(self, reply)


class OllamaChat(_Ollama):
    name = "ollama-chat"
    path = "/api/chat"
    _chat = True

    def _prompt(self, body: Mapping[str, Any]) -> str:
        try:
            return messages_text(body["messages"])
        except (KeyError, ValueError):
            raise BadRequest(400, "body must be JSON with 'messages'") from None

    def _last_user(self, body: Mapping[str, Any]) -> str:
        return last_user_text(body["messages"])


class OllamaGenerate(_Ollama):
    name = "ollama-generate"
    path = "/api/generate"

    def _prompt(self, body: Mapping[str, Any]) -> str:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise BadRequest(400, "body must be JSON with 'prompt' (a string)")
        return text_of(body.get("system")) + prompt

    def _last_user(self, body: Mapping[str, Any]) -> str:
        return str(body["prompt"])


class _OllamaStream:
    __slots__ = ("_flavor", "_model", "_reply", "_second", "_stamp", "_text", "_think")

    def __init__(self, flavor: _Ollama, reply: Reply) -> None:
        self._flavor = flavor
        self._reply = reply
        self._model = b'{"model":' + json_str(reply.model).encode() + b',"created_at":"'
        if flavor._chat:
            self._text = b'","message":{"role":"assistant","content":"'
            self._think = b'","message":{"role":"assistant","content":"","thinking":"'
        else:
            self._text = b'","response":"'
            self._think = b'","response":"","thinking":"'
        self._second = -1
        self._stamp = b""

    def _now(self) -> bytes:
        """created_at of now; the part up to the second is formatted once a second."""
        now = time.time()
        whole = int(now)
        if whole != self._second:
            self._second = whole
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode()
        return self._stamp + b".%06dZ" % int((now - whole) * 1_000_000)

    def start(self) -> bytes:
        return b""

    def token(self, word: str, reasoning: bool) -> bytes:
        close = b'"},"done":false}\n' if self._flavor._chat else b'","done":false}\n'
        return self._model + self._now() + (self._think if reasoning else self._text) + word.encode() + close

    def end(self) -> bytes:
        return orjson.dumps(self._flavor.last(self._reply, "", "")) + b"\n"

    def error_event(self) -> bytes:
        return b'{"error":"mock error event"}\n'

    def malformed(self) -> bytes:
        return self._model + self._now() + self._text + b'x"\n'

    def huge_event_start(self) -> bytes:
        return self._model + self._now() + self._text
