"""The ``plain_flavors`` target: the compiled reader's plain-event scanners of every flavor but OpenAI
chat (``_plain_chunk.c``; chat's is the ``plain`` target) against the flavor's ``plain_content``.

It may only take an event that Python finds plain, with the same text and timing; where Python finds
text, the flavor's ``decode`` must give ``Delta(content=text)`` and nothing else. ``flags``: bit 0:
the payload is built into an event shaped like a real one (else it is the event's data as is);
bits 1-3: which flavor.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import orjson

from llm_locust.flavors import (
    anthropic_messages,
    flavor,
    ollama_chat,
    ollama_generate,
    openai_completions,
    openai_responses,
)
from llm_locust.flavors.base import Delta

PLAIN = {
    "openai-completions": openai_completions.plain_content,
    "openai-responses": openai_responses.plain_content,
    "anthropic-messages": anthropic_messages.plain_content,
    "ollama-chat": ollama_chat.plain_content,
    "ollama-generate": ollama_generate.plain_content,
}
APIS = tuple(PLAIN)
NDJSON = ("ollama-chat", "ollama-generate")
NAMES = {"openai-responses": "response.output_text.delta", "anthropic-messages": "content_block_delta"}
#: one real text event of each flavor, and the path of its text
REAL: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {
    "openai-completions": (
        {
            "id": "c",
            "object": "text_completion",
            "choices": [{"index": 0, "text": "x", "finish_reason": None}],
        },
        ("choices", 0, "text"),
    ),
    "openai-responses": ({"type": "response.output_text.delta", "item_id": "m", "delta": "x"}, ("delta",)),
    "anthropic-messages": (
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
        ("delta", "text"),
    ),
    "ollama-chat": (
        {"model": "m", "message": {"role": "assistant", "content": "x"}, "done": False},
        ("message", "content"),
    ),
    "ollama-generate": ({"model": "m", "response": "x", "done": False}, ("response",)),
}
#: the members that decide plainness, per flavor: (path of the holder, key)
DECISIVE: dict[str, tuple[tuple[tuple[Any, ...], str], ...]] = {
    "openai-completions": (
        (("choices", 0), "finish_reason"),
        ((), "usage"),
        ((), "timings"),
        ((), "error"),
        ((), "object"),
        ((), "choices"),
    ),
    "openai-responses": (((), "type"), ((), "delta")),
    "anthropic-messages": (((), "type"), (("delta",), "type"), ((), "delta")),
    "ollama-chat": ((("message",), "thinking"), ((), "done"), ((), "error"), ((), "message")),
    "ollama-generate": (((), "thinking"), ((), "done"), ((), "error"), ((), "response")),
}
VALUES: list[Any] = [None, "", "x", 0, 1, False, True, [], {}, "stop", "text_delta", "content_block_delta",
                     "response.output_text.delta", {"completion_tokens": 2}]  # fmt: skip


def _at(obj: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


def _event_of(s: Any, api: str) -> bytes:
    obj, text_path = copy.deepcopy(REAL[api][0]), REAL[api][1]
    rng, pick = s.rng, s.splits
    holder = _at(obj, text_path[:-1])
    holder[text_path[-1]] = s.payload.decode("utf-8", "replace") if pick & 1 else rng.choice(VALUES)
    for i, (path, key) in enumerate(DECISIVE[api]):
        if pick & (2 << i % 6) and rng.random() < 0.5:
            with contextlib.suppress(KeyError, IndexError, TypeError):  # an earlier change removed it
                _at(obj, path)[key] = rng.choice(VALUES)
    items = list(obj.items())
    rng.shuffle(items)
    dumped = orjson.dumps(dict(items))
    if pick & 128:  # a duplicate key: orjson keeps the last one
        key = text_path[-1].encode()
        dumped = dumped.replace(b'"%s"' % key, b'"%s":1,"%s"' % (key, key), 1)
    return dumped


def plain_flavors_target(data: bytes) -> None:
    from fuzz.targets import Divergence, Script, creader  # fuzz.targets imports this module

    if creader is None:
        return
    s = Script(data)
    api = APIS[(s.flags >> 1 & 7) % len(APIS)]
    payload = _event_of(s, api) if s.flags & 1 else s.payload
    payload = payload.replace(b"\n", b" ").replace(b"\r", b" ")
    ndjson = api in NDJSON
    name = NAMES.get(api, "" if ndjson else "message")
    try:
        want = PLAIN[api](orjson.loads(payload.decode("utf-8", "replace")))
    except orjson.JSONDecodeError:
        want = None
    if want is not None:
        delta = flavor(api).decode(name, payload.decode("utf-8", "replace"))
        if delta != Delta(content=want):
            raise Divergence(f"plain_flavors: {api} plain_content {want!r} but decode {delta!r}")
    body = creader.Body(-1, True, ndjson, api)
    line = payload + b"\n" if ndjson else (b"event: %s\n" % name.encode() if api in NAMES else b"")
    if not ndjson:
        line += b"data: " + payload + b"\n\n"
    handed = body.feed(b"%x\r\n%s\r\n" % (len(line), line), 1.0)
    n, first, visible, last, itl, text = body.timing()
    if handed:
        blank = not payload.strip(b" \t\x0b\x0c")
        expected = [] if ndjson and blank else [(name, payload.decode("utf-8", "replace"), 1.0)]
        if n != 0 or text != "" or handed != expected:
            raise Divergence(f"plain_flavors: {api} handed over and recorded {n} {text!r} {handed!r}")
        return
    if ndjson and n == 0 and not payload.strip(b" \t\x0b\x0c"):
        return  # a blank line is no event
    if want is None or text != want or (n, first, visible, last, itl) != (1, 1.0, 1.0, 1.0, b""):
        raise Divergence(f"plain_flavors: {api} C took {text!r} of {payload[:200]!r}; Python: {want!r}")
