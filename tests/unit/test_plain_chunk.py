"""The compiled reader takes the plain text chunks itself (llm_locust/_native/_plain_chunk.c): exactly those
for which the Python path (orjson + openai_chat.plain_content) finds text, with the same text and
the same timings as llm_locust.metrics.records.RequestTimer, and the other events in order."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import orjson
import pytest

from llm_locust._native import speedups
from llm_locust.flavors import openai_chat
from llm_locust.metrics.records import RequestTimer

pytestmark = pytest.mark.skipif(speedups.module() is None, reason="llm_locust._native._speedups is not built")

# One chunk of each server we load-test, as they stream a token of text.
REAL_CHUNKS = [
    # vLLM
    b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732,"model":"m","choices":[{"index":0,'
    b'"delta":{"content":" the"},"logprobs":null,"finish_reason":null}]}',
    # SGLang
    b'{"id":"1","object":"chat.completion.chunk","created":1732,"model":"m","choices":[{"index":0,"delta":'
    b'{"role":null,"content":" the","reasoning_content":null,"tool_calls":null},"logprobs":null,'
    b'"finish_reason":null,"matched_stop":null}],"usage":null}',
    # llama.cpp's llama-server
    b'{"choices":[{"finish_reason":null,"index":0,"delta":{"content":" the"}}],"created":1732,'
    b'"id":"chatcmpl-x","model":"m","system_fingerprint":"b1-abc","object":"chat.completion.chunk"}',
    # Ollama
    b'{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732,"model":"m",'
    b'"system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":" the"},'
    b'"finish_reason":null}]}',
    # TGI
    b'{"object":"chat.completion.chunk","id":"","created":1732,"model":"m","system_fingerprint":"3.0",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":" the"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null}',
    # our mock, and whitespace, escapes and non-ASCII text
    b'{"id": "c", "choices": [ {"index": 0, "delta": {"content": "\\"q\\"\\n\\t\\u00e9\\/\\\\"}} ] }',
    '{"choices":[{"delta":{"content":"日本語 ✓ 🙂"}}]}'.encode(),
]


def framed(data: bytes, name: bytes | None = None) -> bytes:
    event = (b"event: " + name + b"\n" if name else b"") + b"data: " + data + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def python_text(data: bytes) -> str | None:
    """What the Python path finds: the text of a plain chunk, else None."""
    try:
        obj = orjson.loads(data.decode("utf-8", "replace"))
    except orjson.JSONDecodeError:
        return None
    return openai_chat.plain_content(obj)


def compiled_text(data: bytes) -> str | None:
    """What the compiled reader took (None: it handed the event to Python)."""
    body = speedups.module().Body(-1, True)
    events = body.feed(framed(data), 1.0)
    n, *_rest, text = body.timing()
    if events:
        assert n == 0 and text == ""  # handed over, nothing recorded
        assert events == [("message", data.decode("utf-8", "replace"), 1.0)]
        return None
    assert n == 1
    return str(text)


@pytest.mark.parametrize("data", REAL_CHUNKS)
def test_every_server_s_text_chunk_is_taken_with_its_text(data: bytes) -> None:
    text = python_text(data)
    assert text is not None
    assert compiled_text(data) == text


NOT_PLAIN = [
    b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}',  # role only
    b'{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}',
    b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}}',
    b'{"choices":[{"delta":{"content":"x"}}],"usage":{"completion_tokens":1}}',
    b'{"choices":[{"delta":{"content":"x"}}],"timings":{"predicted_n":1}}',
    b'{"choices":[{"delta":{"content":"x","reasoning_content":"think"}}]}',
    b'{"choices":[{"delta":{"reasoning_content":"think"}}]}',
    b'{"choices":[{"delta":{"content":"x"}}],"error":{"message":"boom"}}',
    b'{"object":"error","message":"boom","choices":[{"delta":{"content":"x"}}]}',
    b'{"choices":[{"delta":{"content":"x"}},{"delta":{"content":"y"}}]}',
    b'{"choices":[{"delta":{"content":"x"}}]} trailing',
    b'{"choices":[{"delta":{"content":"x"}}],}',
    b'{"choices":[{"delta":{"content":"x"}}],"choices":[]}',  # Python keeps the last
    b'{"choices":[{"delta":{"content":"x","content":"y"}}]}',
    b'{"choices":[{"delta":{"c\\u006fntent":"x"}}]}',
    b'{"choices":[{"delta":{"content":"\\ud83d\\ude42"}}]}',  # surrogate pair escapes: Python decides
    b'{"choices":[{"delta":{"content":"x"}}],"created":1e9}',
    b'{"choices":[{"delta":{"content":"\xff"}}]}',  # invalid UTF-8: Python replaces it
    b'{"choices":[{"delta":{"content":7}}]}',
    b"[DONE]",
    b"",
]


@pytest.mark.parametrize("data", NOT_PLAIN)
def test_anything_else_goes_to_python(data: bytes) -> None:
    assert compiled_text(data) is None


def _variant(rng: random.Random) -> tuple[bytes, bool]:
    """A chunk shaped like the real ones, with the fields that decide plainness varied; and whether
    it holds something the compiled reader leaves to Python on purpose (a falsy value other than
    null, or "" where only null is plain)."""
    obj: dict[str, Any] = {"id": f"chatcmpl-{rng.randint(0, 9)}", "object": "chat.completion.chunk"}
    delta: dict[str, Any] = {}
    texts = ["", " the", "é", "日本", "🙂", '"', "\\", "\n", "\u0000", "a\u2028b"]
    if rng.random() < 0.9:
        delta["content"] = rng.choice(texts[1:]) if rng.random() < 0.85 else rng.choice(["", None, 0, [], {}])
    unsure = False
    for key in ("reasoning_content", "reasoning", "role"):
        if rng.random() < 0.2:
            delta[key] = rng.choice([None, "", "x", False, 0, "assistant"])
            unsure |= key != "role" and delta[key] in (False, 0) and delta[key] is not None
    odd_delta = rng.choice([None, [], "x"])
    choice: dict[str, Any] = {"index": 0, "delta": delta if rng.random() < 0.9 else odd_delta}
    if rng.random() < 0.5:
        choice["finish_reason"] = rng.choice([None, None, "stop", "length", "", 0])
        unsure |= choice["finish_reason"] in ("", 0)
    choices: Any = [choice] if rng.random() < 0.85 else rng.choice([[], [choice, choice], choice, None])
    obj["choices"] = choices
    for key in ("usage", "timings", "error"):
        if rng.random() < 0.1:
            obj[key] = rng.choice([None, {}, {"completion_tokens": 3}, "", 0, False, "boom"])
            unsure |= key == "error" and obj[key] in ("", 0, {})
    if rng.random() < 0.1:
        obj["object"] = rng.choice(["error", "chat.completion.chunk", None, 1])
    items = list(obj.items())
    rng.shuffle(items)
    ensure_ascii = rng.random() < 0.5
    sep = rng.choice([(",", ":"), (", ", ": "), (" ,\t", " :  ")])
    return json.dumps(dict(items), ensure_ascii=ensure_ascii, separators=sep).encode(), unsure


def _mutated(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(b) + 1)
        op = rng.random()
        if op < 0.4 and i < len(b):
            del b[i]
        elif op < 0.7:
            b.insert(i, rng.choice(b'{}[]":,\\ue0-1.9tfnl\t \x00\xc3\xa9\xff'))
        elif i < len(b):
            b[i] = rng.randrange(256)
    return bytes(b).replace(b"\n", b" ").replace(b"\r", b" ")


def test_generated_chunks_agree_with_the_python_path() -> None:
    rng = random.Random(20261127)
    taken = [0, 0]  # unmutated, mutated
    for i in range(20000):
        data, unsure = _variant(rng)
        if i % 2:
            data = _mutated(rng, data)
        text = compiled_text(data)
        if text is not None:
            taken[i % 2] += 1
            assert text == python_text(data), data
        elif not i % 2 and not unsure and b"\\ud" not in data:
            # where nothing makes it unsure, the compiled reader takes every plain chunk
            assert python_text(data) is None, data
    assert taken[0] > 1500 and taken[1] > 300  # the checks above are about many chunks, not a handful


def test_timings_equal_the_request_timer_s_and_other_events_keep_their_order() -> None:
    """Plain chunks recorded by the body, the others handled in Python after each read (through
    body.text), give the same timings and text as the Python path over the same reads."""
    rng = random.Random(7)
    plain = REAL_CHUNKS[0]
    finish = b'{"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}]}'
    reasoning = b'{"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}'
    role = b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
    taken = 0
    for _ in range(300):
        events = [role] + [rng.choice([plain, plain, plain, reasoning]) for _ in range(rng.randint(0, 30))]
        events += [finish, b"[DONE]"]
        reads: list[tuple[list[bytes], float]] = []  # the events each read brought, and its stamp
        at, i = 100.0, 0
        while i < len(events):
            n = rng.randint(1, 4)
            at += rng.choice([0.0, 0.001, rng.random() / 50])
            reads.append((events[i : i + n], at))
            i += n

        want = RequestTimer(time.perf_counter)  # the Python path
        want_text = []
        for group, t in reads:
            for data in group:
                d = openai_chat.parse_chunk(data.decode()) if data != b"[DONE]" else None
                if d is not None and (d.content or d.reasoning):
                    want.text(t, bool(d.content))
                    want_text.append(d.content or d.reasoning)

        body = speedups.module().Body(-1, True)
        handed = []
        for group, t in reads:
            for _name, data, event_at in body.feed(b"".join(framed(e) for e in group), t):
                assert event_at == t
                d = openai_chat.parse_chunk(data) if data != "[DONE]" else None  # as _Reading.event
                if d is not None and (d.content or d.reasoning):
                    body.text(event_at, bool(d.content), d.content or d.reasoning)
                handed.append(data)
        assert handed[0] == role.decode() and handed[-1] == "[DONE]"
        taken += len(events) - len(handed)
        timer = RequestTimer(time.perf_counter)
        *timing, text = body.timing()
        timer.adopt(*timing)
        assert text == "".join(want_text)
        for field in ("text_events", "first_text_at_s", "first_visible_at_s", "last_text_at_s"):
            assert getattr(timer, field) == getattr(want, field), field
        assert list(timer.itl_ms) == list(want.itl_ms)
    assert taken > 2000  # most plain chunks were taken by the body


def test_a_named_event_and_a_body_not_recording_hand_everything_over() -> None:
    body = speedups.module().Body(-1, True)
    assert body.feed(framed(REAL_CHUNKS[0], b"message"), 1.0) != []  # named: Python decides
    body.record = False
    assert body.feed(framed(REAL_CHUNKS[0]), 2.0) == [("message", REAL_CHUNKS[0].decode(), 2.0)]
    assert body.timing()[0] == 0
