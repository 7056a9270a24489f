"""Prompt tokens (cl100k_base, as the mock's usage reports them) and the text of a request's messages
in each API's shapes.

A request's prompt is its input text with no chat template: the texts of its system prompt and of its
messages in order (each message's text parts concatenated), joined with nothing between them. Its
prompt tokens are the cl100k_base count of that text, so a single-turn request of one user message of
exactly N tokens and no system prompt gets ``prompt_tokens`` N from every flavor; a system prompt or
more messages add their own tokens (and a word split over two messages may merge into one token).
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections.abc import Callable, Sequence

import gevent

#: texts at least this long are tokenized in gevent's thread pool (tiktoken releases the GIL), so
#: the mock's loop keeps sending other streams' tokens on time; shorter ones are cheaper in place
_OFF_LOOP_CHARS = 256
_CACHED_COUNTS = 256


class PromptCounter:
    """cl100k_base tokens of prompts: the tokenizer is loaded in a thread when constructed; counts are
    cached per prompt."""

    def __init__(self) -> None:
        self._encode: Callable[[str], Sequence[int]] | None = None
        self._ready = threading.Event()
        self._cache: dict[str, int] = {}
        threading.Thread(target=self._load, daemon=True).start()

    def _load(self) -> None:
        try:
            from llm_locust.workload import cl100k

            # the file shipped with the package (no download), as workload.tokenizer loads it
            self._encode = cl100k.encoding().encode_ordinary
        except Exception:  # no tokenizer (none bundled, no download): prompts are counted in words
            self._encode = None
        finally:
            self._ready.set()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        self._ready.wait(timeout_s)

    def encode(self, text: str) -> Sequence[int]:
        """The token ids of ``text`` (whitespace-separated words' CRC-32s where no tokenizer loaded),
        long texts off the event loop; not cached (see :meth:`count`)."""
        while not self._ready.is_set():
            gevent.sleep(0.01)
        encode = self._encode
        if encode is None:
            return [zlib.crc32(word.encode()) for word in text.split()]
        if len(text) < _OFF_LOOP_CHARS:
            return encode(text)
        tokens: Sequence[int] = gevent.get_hub().threadpool.apply(encode, (text,))
        return tokens

    def count(self, text: str) -> int:
        """``len(encode(text))``, cached for the last few hundred prompts."""
        n = self._cache.get(text)
        if n is None:
            n = self.remember(text, self.encode(text))
        return n

    def remember(self, text: str, tokens: Sequence[int]) -> int:
        """Cache the count of ``text`` whose tokens the caller encoded; return it."""
        if len(self._cache) > _CACHED_COUNTS:
            self._cache.clear()
        n = self._cache[text] = len(tokens)
        return n


def digest(text: str) -> str:
    """The key of a prompt in ``/mock/stats`` ``prompts``: the first 16 hex digits of the SHA-256 of
    its UTF-8 text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def last_user_text(messages: object) -> str:
    """The text of the last message whose ``role`` is ``"user"`` in a list of message objects (a
    message item without a role counts as the user's, as in the Responses API's ``input``); "" when
    none."""
    if isinstance(messages, list):
        for m in reversed(messages):
            if not isinstance(m, dict):
                continue
            role = m.get("role", "user" if m.get("type", "message") == "message" else None)
            if role == "user":
                return text_of(m.get("content"))
    return ""
