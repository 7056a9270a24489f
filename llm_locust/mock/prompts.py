"""Prompt token counts (cl100k_base, as the mock's usage reports them) and the text of a request's
messages in each API's shapes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import gevent


class PromptCounter:
    """cl100k_base counts of prompts, loaded in a thread when constructed and cached per prompt."""

    def __init__(self) -> None:
        self._encode: Callable[[str], int] | None = None
        self._ready = threading.Event()
        self._cache: dict[str, int] = {}
        threading.Thread(target=self._load, daemon=True).start()

    def _load(self) -> None:
        try:
            from llm_locust.workload.tokenizer import load_tokenizer

            self._encode = load_tokenizer("cl100k_base").count
        finally:
            self._ready.set()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        self._ready.wait(timeout_s)

    def count(self, text: str) -> int:
        n = self._cache.get(text)
        if n is None:
            while not self._ready.is_set():
                gevent.sleep(0.01)
            n = self._encode(text) if self._encode else len(text.split())
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[text] = n
        return n


def text_of(content: object) -> str:
    """The text of one message's content: a string, or a list of parts whose ``text`` is joined
    (OpenAI's ``{"type": "text"|"input_text", "text": ...}``, Anthropic's text blocks); else ""."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def messages_text(messages: object) -> str:
    """The text of a list of messages (each a dict with ``content``), joined; ValueError when
    ``messages`` is not a list of objects."""
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("must be a list of message objects")
    return "".join(text_of(m.get("content")) for m in messages)
