"""Timing models of the mock engine and the text it generates.

Every stream follows an absolute schedule (``deadline_k``), so a late wake-up never accumulates
into later tokens. Engines:

fixed
    Every stream gets exactly ``ttft`` then one token every ``itl``, whatever the load.
slots
    ``slots`` parallel slots with a FIFO queue (Ollama with ``OLLAMA_NUM_PARALLEL``): a request
    waits for a free slot, then runs at the fixed timing.
batching
    Continuous batching (vLLM): up to ``max_seqs`` sequences decode together; each decode step
    takes ``itl * n ** batch_exponent`` for ``n`` running sequences, so per-stream speed falls and
    aggregate throughput rises with concurrency. Beyond ``max_seqs`` requests queue.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import gevent
from gevent.lock import Semaphore

#: Words that are one cl100k_base token each with a leading space, and stay one token each when
#: concatenated: usage.completion_tokens equals what a cl100k_base tokenizer counts on the text.
_WORD_TEXT = """
    the of and to in is for on that with as was by at be it from this are or an not have but they his
    all which one you had were their has more can will her been there would who about when so what also
    its into some other them than only up time out these like new we most two after first water light
    model token server batch queue engine stream fast slow small large
"""
WORDS: tuple[str, ...] = tuple(" " + w for w in _WORD_TEXT.split())

ENGINES = ("batching", "slots", "fixed")


@dataclass(frozen=True)
class Timing:
    ttft_ms: float = 150.0
    itl_ms: float = 20.0
    jitter_ms: float = 0.0
    output_tokens: int | None = None  # None: honour the request's max_tokens
    default_max_tokens: int = 128


class Engine:
    """Admission and step timing; one instance per mock server."""

    def __init__(
        self,
        kind: str,
        timing: Timing,
        *,
        slots: int = 4,
        max_seqs: int = 256,
        batch_exponent: float = 0.25,
        seed: int | None = None,
    ) -> None:
        if kind not in ENGINES:
            raise ValueError(f"--engine {kind!r} is unknown; choose one of {', '.join(ENGINES)}")
        self.kind = kind
        self.timing = timing
        self.batch_exponent = batch_exponent
        self.running = 0
        self.waiting = 0
        limit = slots if kind == "slots" else max_seqs if kind == "batching" else 0
        self.capacity = limit  # requests that run at once (0: no limit)
        self._gate: Semaphore | None = Semaphore(limit) if limit > 0 else None
        self._rng = random.Random(seed)

    @contextmanager
    def admitted(self, arrived_s: float | None = None) -> Iterator[float]:
        """Hold a slot / sequence for the duration of one request (FIFO queue when full). Yields the
        instant work on it starts: ``arrived_s`` (when the request reached the socket) if a slot was
        free, else when one was freed."""
        gate = self._gate
        start = time.perf_counter() if arrived_s is None else arrived_s
        if gate is not None and not gate.acquire(blocking=False):
            self.waiting += 1
            try:
                gate.acquire()
            finally:
                self.waiting -= 1
            start = time.perf_counter()
        self.running += 1
        try:
            yield start
        finally:
            self.running -= 1
            if gate is not None:
                gate.release()

    def step_s(self) -> float:
        """Time between two tokens of one stream, given the current load."""
        itl = self.timing.itl_ms / 1000.0
        if self.kind == "batching" and self.running > 1:
            slowdown: float = float(self.running) ** self.batch_exponent
            return itl * slowdown
        return itl

    def jitter_s(self) -> float:
        j = self.timing.jitter_ms
        return float(self._rng.uniform(-j, j)) / 1000.0 if j > 0 else 0.0

    def output_tokens(self, requested: int | None) -> int:
        if self.timing.output_tokens is not None:
            return self.timing.output_tokens
        if requested is None or requested <= 0:
            return self.timing.default_max_tokens
        return requested

    def schedule(self, start_s: float) -> Iterator[float]:
        """Absolute send instants (perf_counter s) of the tokens of one stream, lazily."""
        base = start_s + self.timing.ttft_ms / 1000.0
        last = start_s
        while True:
            at = max(base + self.jitter_s(), last)
            yield at
            last = at
            base += self.step_s()


def sleep_until(at_s: float) -> None:
    delay = at_s - time.perf_counter()
    if delay > 0:
        gevent.sleep(delay)
