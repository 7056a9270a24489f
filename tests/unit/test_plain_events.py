"""Every flavor's plain text event is taken by the compiled reader itself (_plain_chunk.c), exactly
those for which the flavor's Python ``plain_content`` finds text, with the same text; where
``plain_content`` finds text, the flavor's ``decode`` gives ``Delta(content=text)`` and nothing else;
and a stream of such events gives the timings the Python path gives. (OpenAI chat's own scanner:
test_plain_chunk.py.)"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from test_plain_chunk import _mutated  # the same mutations as chat's scanner gets

from llm_locust._native import speedups
from llm_locust.flavors import (
    anthropic_messages,
    flavor,
    ollama_chat,
    ollama_generate,
    openai_completions,
    openai_responses,
)
from llm_locust.flavors.base import Delta
from llm_locust.metrics.records import RequestTimer

pytestmark = pytest.mark.skipif(speedups.module() is None, reason="llm_locust._native._speedups is not built")

PLAIN: dict[str, Callable[[Any], str | None]] = {
    "openai-completions": openai_completions.plain_content,
    "openai-responses": openai_responses.plain_content,
    "anthropic-messages": anthropic_messages.plain_content,
    "ollama-chat": ollama_chat.plain_content,
    "ollama-generate": ollama_generate.plain_content,
}
NDJSON = {"ollama-chat", "ollama-generate"}
#: the SSE event name each API gives its text events (OpenAI's completions none)
EVENT_NAME = {
    "openai-responses": b"response.output_text.delta",
    "anthropic-messages": b"content_block_delta",
}

# One text event of each server, as it streams a token.
REAL: list[tuple[str, bytes]] = [
    # vLLM's /v1/completions
    ("openai-completions", b'{"id":"cmpl-1","object":"text_completion","created":1732,"model":"m","choices":'
     b'[{"index":0,"text":" the","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}'),
    # llama.cpp's llama-server /v1/completions
    ("openai-completions", b'{"choices":[{"text":" the","index":0,"logprobs":null,"finish_reason":null}],'
     b'"created":1732,"model":"m","system_fingerprint":"b1-abc","object":"text_completion","id":"cmpl-x"}'),
    # OpenAI's Responses API
    ("openai-responses", b'{"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1",'
     b'"output_index":0,"content_index":0,"delta":" the","logprobs":[],"obfuscation":"a1b2"}'),
    # vLLM's /v1/responses
    ("openai-responses", b'{"content_index":0,"delta":" the","item_id":"msg_1","output_index":0,'
     b'"sequence_number":5,"type":"response.output_text.delta","logprobs":[]}'),
    # Anthropic (and vLLM's, llama.cpp's /v1/messages)
    ("anthropic-messages", b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
     b'"text":" the"}}'),
    # Ollama /api/chat and /api/generate
    ("ollama-chat", b'{"model":"qwen3:4b","created_at":"2026-12-01T10:00:00.123456789Z","message":'
     b'{"role":"assistant","content":" the"},"done":false}'),
    ("ollama-generate", b'{"model":"qwen3:4b","created_at":"2026-12-01T10:00:00.123456789Z",'
     b'"response":" the","done":false}'),
    # escapes and non-ASCII text
    ("anthropic-messages", b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
     b'"text":"\\"q\\"\\n\\t\\u00e9\\/\\\\"}}'),
    ("ollama-generate", '{"response":"日本語 ✓ 🙂","done":false}'.encode()),
]  # fmt: skip


def framed(api: str, data: bytes) -> bytes:
    if api in NDJSON:
        line = data + b"\n"
    else:
        name = EVENT_NAME.get(api)
        line = (b"event: " + name + b"\n" if name else b"") + b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(line), line)


def python_text(api: str, data: bytes) -> str | None:
    try:
        obj = orjson.loads(data.decode("utf-8", "replace"))
    except orjson.JSONDecodeError:
        return None
    return PLAIN[api](obj)


def new_body(api: str) -> Any:
    return speedups.module().Body(-1, True, api in NDJSON, api)


def compiled_text(api: str, data: bytes) -> str | None:
    """What the compiled reader took (None: it handed the event to Python)."""
    body = new_body(api)
    events = body.feed(framed(api, data), 1.0)
    n, *_rest, text = body.timing()
    if events:
        assert n == 0 and text == ""
        name = "" if api in NDJSON else EVENT_NAME.get(api, b"message").decode()
        assert events == [(name, data.decode("utf-8", "replace"), 1.0)]
        return None
    assert n == 1
    return str(text)


@pytest.mark.parametrize(("api", "data"), REAL)
def test_every_server_s_text_event_is_taken_with_its_text(api: str, data: bytes) -> None:
    text = python_text(api, data)
    assert text is not None
    assert compiled_text(api, data) == text
    assert flavor(api).decode(EVENT_NAME.get(api, b"").decode(), data.decode()) == Delta(content=text)


NOT_PLAIN: list[tuple[str, bytes]] = [
    ("openai-completions", b'{"choices":[{"text":"x","finish_reason":"length"}]}'),
    ("openai-completions", b'{"choices":[{"text":""}]}'),
    ("openai-completions", b'{"choices":[],"usage":{"completion_tokens":3}}'),
    ("openai-completions", b'{"choices":[{"text":"x"}],"usage":{"completion_tokens":1}}'),
    ("openai-completions", b'{"choices":[{"text":"x"}],"timings":{"predicted_n":1}}'),
    ("openai-completions", b'{"choices":[{"text":"x"}],"error":{"message":"boom"}}'),
    ("openai-completions", b'{"object":"error","choices":[{"text":"x"}]}'),
    ("openai-completions", b'{"choices":[{"text":"x"},{"text":"y"}]}'),
    ("openai-completions", b'{"choices":[{"delta":{"content":"x"}}]}'),  # a chat chunk
    ("openai-completions", b"[DONE]"),
    ("openai-responses", b'{"type":"response.reasoning_text.delta","delta":"hm"}'),
    ("openai-responses", b'{"type":"response.output_text.delta","delta":""}'),
    ("openai-responses", b'{"type":"response.output_text.delta","delta":7}'),
    ("openai-responses", b'{"type":"response.output_text.delta","delta":"x","type":"error"}'),
    ("openai-responses", b'{"type":"response.output_text.d\\u0065lta","delta":"x"}'),  # Python decides
    ("openai-responses", b'{"type":"response.completed","response":{"status":"completed"}}'),
    ("anthropic-messages", b'{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta",'
     b'"thinking":"hm"}}'),
    ("anthropic-messages", b'{"type":"content_block_delta","delta":{"type":"text_delta","text":""}}'),
    ("anthropic-messages", b'{"type":"content_block_delta","delta":{"text":"x"}}'),
    ("anthropic-messages", b'{"type":"message_delta","delta":{"type":"text_delta","text":"x"}}'),
    ("anthropic-messages", b'{"type":"ping"}'),
    ("ollama-chat", b'{"message":{"role":"assistant","content":" the"},"done":true}'),
    ("ollama-chat", b'{"message":{"role":"assistant","content":"x","thinking":"hm"}}'),
    ("ollama-chat", b'{"message":{"role":"assistant","content":""},"done":false}'),
    ("ollama-chat", b'{"message":{"content":"x"},"error":"boom"}'),
    ("ollama-chat", b'{"response":"x","done":false}'),  # a generate line
    ("ollama-generate", b'{"response":"x","done":true,"eval_count":3}'),
    ("ollama-generate", b'{"response":"x","thinking":"hm","done":false}'),
    ("ollama-generate", b'{"response":"x","error":{"message":"boom"}}'),
    ("ollama-generate", b'{"response":"x"} trailing'),
    ("ollama-generate", b'{"response":"\xff"}'),  # invalid UTF-8: Python replaces it
    ("ollama-generate", b'{"error":"model not found"}'),
]  # fmt: skip


@pytest.mark.parametrize(("api", "data"), NOT_PLAIN)
def test_anything_else_goes_to_python(api: str, data: bytes) -> None:
    assert compiled_text(api, data) is None


# -- generated events ------------------------------------------------------------------------------
TEXTS = [" the", "é", "日本", "🙂", '"', "\\", "\n", "\u0000", "a\u2028b"]
ODD = [None, "", 0, False, [], {}, 1, "x", True]


def _variant(api: str, rng: random.Random) -> tuple[Any, bool]:
    """An event shaped like the real ones of ``api`` with the fields that decide plainness varied;
    and whether it holds a falsy value where the compiled reader takes only null (it leaves those to
    Python on purpose)."""
    unsure = False

    def text() -> Any:
        return rng.choice(TEXTS) if rng.random() < 0.85 else rng.choice(ODD)

    def maybe(holder: dict[str, Any], key: str, values: list[Any], accepted: tuple[Any, ...] = ()) -> None:
        nonlocal unsure
        if rng.random() < 0.25:
            value = rng.choice(values)
            holder[key] = value
            falsy_not_null = value is not None and not value
            unsure |= falsy_not_null and not any(value is a or (value == a and type(value) is type(a))
                                                 for a in accepted)  # fmt: skip

    obj: dict[str, Any]
    if api == "openai-completions":
        choice: dict[str, Any] = {"index": 0, "text": text()}
        maybe(choice, "finish_reason", [None, None, "stop", "length", "", 0])
        maybe(choice, "logprobs", [None, {}, 1])
        obj = {"id": "cmpl-1", "object": "text_completion", "choices": [choice]}
        if rng.random() < 0.15:
            obj["choices"] = rng.choice([[], [choice, choice], choice, None])
        for key in ("usage", "timings", "error"):
            maybe(obj, key, [None, {}, {"completion_tokens": 3}, "", 0, False, "boom"])
        maybe(obj, "object", ["error", "text_completion", None, 1])
    elif api == "openai-responses":
        obj = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "delta": text()}
        maybe(obj, "type", ["response.output_text.delta", "response.reasoning_text.delta", None, 1, ""])
        maybe(obj, "logprobs", [[], None, {}])
    elif api == "anthropic-messages":
        delta: dict[str, Any] = {"type": "text_delta", "text": text()}
        maybe(delta, "type", ["text_delta", "thinking_delta", "input_json_delta", None, ""])
        obj = {"type": "content_block_delta", "index": 0, "delta": delta}
        maybe(obj, "type", ["content_block_delta", "message_delta", None, ""])
        if rng.random() < 0.1:
            obj["delta"] = rng.choice([None, [], "x"])
    else:
        holder: dict[str, Any]
        if api == "ollama-chat":
            holder = {"role": "assistant", "content": text()}
            obj = {"model": "m", "created_at": "2026-12-01T10:00:00Z", "message": holder}
            if rng.random() < 0.1:
                obj["message"] = rng.choice([None, [], "x"])
        else:
            obj = holder = {"model": "m", "created_at": "2026-12-01T10:00:00Z", "response": text()}
        obj["done"] = False
        maybe(holder, "thinking", [None, "", "hm", 0, False], accepted=("",))
        maybe(obj, "done", [True, False, None, 0, 1], accepted=(False,))
        unsure |= type(obj["done"]) is int  # Python takes 0 and 1 as "not done"; C only false and null
        maybe(obj, "error", [None, "", "boom", {}, 0])
    return obj, unsure


def _dumped(obj: Any, rng: random.Random) -> bytes:
    items = list(obj.items())
    rng.shuffle(items)
    sep = rng.choice([(",", ":"), (", ", ": "), (" ,\t", " :  ")])
    return json.dumps(dict(items), ensure_ascii=rng.random() < 0.5, separators=sep).encode()


@pytest.mark.parametrize("api", list(PLAIN))
def test_generated_events_agree_with_the_python_path(api: str) -> None:
    rng = random.Random(f"plain {api}")
    taken = [0, 0]  # unmutated, mutated
    decode = flavor(api).decode
    name = EVENT_NAME.get(api, b"message" if api not in NDJSON else b"").decode()
    for i in range(6000):
        obj, unsure = _variant(api, rng)
        data = _dumped(obj, rng)
        if i % 2:
            data = _mutated(rng, data)
        want = python_text(api, data)
        if want is not None:  # the Python path's own promise: decode gives that text and nothing else
            assert decode(name, data.decode("utf-8", "replace")) == Delta(content=want), data
        text = compiled_text(api, data)
        if text is not None:
            taken[i % 2] += 1
            assert text == want, data
        elif not i % 2 and not unsure and b"\\ud" not in data:
            assert want is None, data  # where nothing makes it unsure, C takes every plain event
    assert taken[0] > 500 and taken[1] > 20, taken  # about 750-1,500 and 40-150 of 3,000 each


@pytest.mark.parametrize("api", list(PLAIN))
def test_timings_equal_the_request_timer_s_and_other_events_keep_their_order(api: str) -> None:
    """Plain events recorded by the body, the others decoded in Python after each read (through
    body.text), give the same timings and text as the Python path over the same reads."""
    rng = random.Random(f"timings {api}")
    plain = next(data for a, data in REAL if a == api)
    other = next(data for a, data in NOT_PLAIN if a == api)  # a finish, a reasoning or an end event
    fl = flavor(api)
    name = EVENT_NAME.get(api, b"message" if api not in NDJSON else b"").decode()
    taken = 0
    for _ in range(200):
        events = [rng.choice([plain, plain, plain, other]) for _ in range(rng.randint(1, 30))]
        reads: list[tuple[list[bytes], float]] = []
        at, i = 100.0, 0
        while i < len(events):
            n = rng.randint(1, 4)
            at += rng.choice([0.0, 0.001, rng.random() / 50])
            reads.append((events[i : i + n], at))
            i += n
        want = RequestTimer(time.perf_counter)
        want_text = []
        for group, t in reads:
            for data in group:
                d = fl.decode(name, data.decode())
                if d.content or d.reasoning:
                    want.text(t, bool(d.content))
                    want_text.append(d.content or d.reasoning)
        body = new_body(api)
        handed = 0
        for group, t in reads:
            for ev_name, data, event_at in body.feed(b"".join(framed(api, e) for e in group), t):
                assert event_at == t
                d = fl.decode(ev_name, data)  # as _Reading.event
                if d.content or d.reasoning:
                    body.text(event_at, bool(d.content), d.content or d.reasoning)
                handed += 1
        taken += len(events) - handed
        timer = RequestTimer(time.perf_counter)
        *timing, text = body.timing()
        timer.adopt(*timing)
        assert text == "".join(want_text)
        for field in ("text_events", "first_text_at_s", "first_visible_at_s", "last_text_at_s"):
            assert getattr(timer, field) == getattr(want, field), field
        assert list(timer.itl_ms) == list(want.itl_ms)
    assert taken > 1500


def test_a_body_without_a_scanner_for_the_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no plain-event scanner for 'tgi'"):
        speedups.module().Body(-1, True, False, "tgi")
