"""Run-wide counters and histograms: recorded per request, shipped as deltas, merged exactly.

A worker records into its :class:`Aggregate`, and every report to the master carries
:meth:`Aggregate.take_delta` (what was recorded since the last report, then cleared), so no
sample is ever sent twice. The master adds each delta with :meth:`Aggregate.merge_wire`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from llm_locust.metrics import catalog
from llm_locust.metrics.catalog import Metric
from llm_locust.metrics.histogram import Histogram
from llm_locust.metrics.records import CANCELLED, OK, RequestRecord
from llm_locust.metrics.slo import is_good

_COUNTERS: tuple[str, ...] = (
    "completed",
    "not_streamed",
    "cancelled",
    "total_input_tokens",
    "total_output_tokens",
    "text_events",
    "usage_compared",
    "usage_disagreed",
    "usage_abs_diff",
    # what the workload asked for, checked (see RequestRecord.input_tokens_diff, .short_output)
    "input_checked",
    "input_mismatched",
    "input_diff_sum",
    "output_checked",
    "short_outputs",
    # the prefix cache, over the successful requests whose server reported it
    "cache_reported",
    "cached_input_tokens",
    "cache_reported_input_tokens",
)

_PERF_TO_WALL: list[float] = []


def wall_time(perf_s: float) -> float:
    """Convert a ``perf_counter`` instant of this process to Unix time (for cross-process windows)."""
    if not _PERF_TO_WALL:
        _PERF_TO_WALL.append(time.time() - time.perf_counter())
    return perf_s + _PERF_TO_WALL[0]


def clock_offset_s() -> float:
    """What :func:`wall_time` adds to a ``perf_counter`` instant of this process (fixed per process)."""
    wall_time(0.0)
    return _PERF_TO_WALL[0]


@contextmanager
def foreign_clock() -> Iterator[Callable[[float], None]]:
    """For records of other processes (read back from ``--llm-requests``): within the block, the
    function it gives sets the clock offset :func:`wall_time` uses, so a record is converted with
    its own process's offset, exactly as that process converted it."""
    saved = clock_offset_s()

    def use(offset_s: float) -> None:
        _PERF_TO_WALL[0] = offset_s

    try:
        yield use
    finally:
        _PERF_TO_WALL[0] = saved


class Aggregate:
    """Counters and histograms over a set of requests: one histogram per metric of ``metrics``
    (the whole catalog for a run; :data:`catalog.LEVEL` per ladder level, :data:`catalog.TURN` per
    conversation turn), in display units.

    With ``with_levels`` (the run's aggregate), each request is also recorded into the sub-aggregate
    of its ladder level (:attr:`levels`, keyed by the level's label) and of its turn (:attr:`turns`,
    keyed by :attr:`RequestRecord.turn`).
    """

    def __init__(self, metrics: tuple[Metric, ...] = catalog.CATALOG, with_levels: bool = True) -> None:
        self.metrics = metrics
        self.hist: dict[str, Histogram] = {m.name: Histogram() for m in metrics}
        # (histogram, accessor) per metric, read once per successful request
        self._one = [(self.hist[m.name], m.read) for m in metrics if not m.pooled]
        self._many = [(self.hist[m.name], m.read) for m in metrics if m.pooled]
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.output_sources: Counter[str] = Counter()
        self.input_sources: Counter[str] = Counter()
        self.input_diffs: Counter[int] = Counter()  # server's input tokens - the sample's, where they differ
        self.short_by_finish: Counter[str] = Counter()  # short outputs by finish reason ("none": not given)
        self.first_sent_wall_s = math.inf
        self.last_end_wall_s = -math.inf
        self.busy_s = 0.0  # sum of request durations, for average concurrency
        self._with_levels = with_levels
        self.levels: dict[str, Aggregate] = {}
        self.turns: dict[int, Aggregate] = {}
        #: --goodput's bounds (ms by record accessor): each finished request is judged good or not
        self.goodput_bounds: Mapping[str, float] = {}

    # -- recording -------------------------------------------------------------------------
    def record(self, rec: RequestRecord, level: str | None = None) -> None:
        if rec.outcome == CANCELLED:
            self.counts["cancelled"] += 1
        else:
            self._record_finished(rec)
        if not self._with_levels:
            return
        if level is not None:
            sub = self.levels.get(level)
            if sub is None:
                sub = self.levels[level] = Aggregate(catalog.LEVEL, with_levels=False)
                sub.goodput_bounds = self.goodput_bounds
            sub.record(rec)
        turn = self.turns.get(rec.turn)
        if turn is None:
            turn = self.turns[rec.turn] = Aggregate(catalog.TURN, with_levels=False)
        turn.record(rec)

    def _record_finished(self, rec: RequestRecord) -> None:
        sent = wall_time(rec.sent_at_s)
        ended = wall_time(rec.ended_at_s)
        self.first_sent_wall_s = min(self.first_sent_wall_s, sent)
        self.last_end_wall_s = max(self.last_end_wall_s, ended)
        self.busy_s += rec.ended_at_s - rec.sent_at_s
        if self.goodput_bounds:
            self.counts["goodput_judged"] += 1
            if is_good(rec, self.goodput_bounds):
                self.counts["good"] += 1
        if rec.outcome != OK:
            self.failures[rec.outcome] += 1
            return
        counts = self.counts
        counts["completed"] += 1
        if not rec.streamed:
            counts["not_streamed"] += 1
        counts["total_output_tokens"] += rec.output_tokens
        counts["total_input_tokens"] += rec.input_tokens
        counts["text_events"] += rec.text_events
        self.output_sources[rec.output_tokens_source] += 1
        self.input_sources[rec.input_tokens_source] += 1
        if rec.output_tokens_source == "usage" and rec.tokenizer_output_tokens is not None:
            counts["usage_compared"] += 1
            diff = abs(rec.tokenizer_output_tokens - rec.output_tokens)
            if diff:
                counts["usage_disagreed"] += 1
                counts["usage_abs_diff"] += diff
        if rec.expected_input_tokens is not None or rec.requested_output_tokens is not None:
            self._record_lengths(rec)
        if rec.cached_input_tokens is not None:
            counts["cache_reported"] += 1
            counts["cached_input_tokens"] += rec.cached_input_tokens
            counts["cache_reported_input_tokens"] += rec.input_tokens
        for h, read in self._one:
            value = read(rec)
            if value is not None:
                h.record(value)
        for h, read in self._many:
            h.record_many(read(rec))

    def _record_lengths(self, rec: RequestRecord) -> None:
        """The lengths the workload asked for against those served (a successful request)."""
        counts = self.counts
        diff = rec.input_tokens_diff
        if diff is not None:
            counts["input_checked"] += 1
            if diff:
                counts["input_mismatched"] += 1
                counts["input_diff_sum"] += diff
                self.input_diffs[diff] += 1
        if rec.requested_output_tokens is not None:
            counts["output_checked"] += 1
            if rec.short_output:
                counts["short_outputs"] += 1
                self.short_by_finish[rec.finish_reason or "none"] += 1

    # -- merging ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything recorded, the levels and turns too."""
        self._clear()
        self.levels.clear()
        self.turns.clear()

    def _clear(self) -> None:
        """Empty this aggregate; its sub-aggregates are emptied but kept, to be reused (each
        histogram is a large array: reallocating them at every report fragments the heap)."""
        for sub in (*self.levels.values(), *self.turns.values()):
            sub._clear()
        for h in self.hist.values():
            h.reset()
        self.counts.clear()
        self.failures.clear()
        self.output_sources.clear()
        self.input_sources.clear()
        self.input_diffs.clear()
        self.short_by_finish.clear()
        self.first_sent_wall_s = math.inf
        self.last_end_wall_s = -math.inf
        self.busy_s = 0.0

    @property
    def empty(self) -> bool:
        if self.counts or self.failures:
            return False
        return all(sub.empty for sub in (*self.levels.values(), *self.turns.values()))

    def to_wire(self) -> dict[str, Any]:
        return {
            "hist": {name: h.to_wire() for name, h in self.hist.items() if h.count},
            "counts": dict(self.counts),
            "failures": dict(self.failures),
            "out_src": dict(self.output_sources),
            "in_src": dict(self.input_sources),
            # msgpack refuses map keys other than strings by default: integers travel as text
            "in_diff": {str(k): v for k, v in self.input_diffs.items()},
            "short_fin": dict(self.short_by_finish),
            "first": self.first_sent_wall_s,
            "last": self.last_end_wall_s,
            "busy": self.busy_s,
            "levels": {k: v.to_wire() for k, v in self.levels.items() if not v.empty},
            "turns": {str(k): v.to_wire() for k, v in self.turns.items() if not v.empty},
        }

    def take_delta(self) -> dict[str, Any]:
        """What was recorded since the last call, as wire data; clears this aggregate."""
        wire = self.to_wire()
        self._clear()
        return wire

    def merge(self, other: Aggregate) -> None:
        """Add another aggregate of this process (its histograms and counters; not its levels or
        turns)."""
        for name, h in self.hist.items():
            oh = other.hist.get(name)
            if oh is not None:
                h.merge(oh)
        self.counts.update(other.counts)
        self.failures.update(other.failures)
        self.output_sources.update(other.output_sources)
        self.input_sources.update(other.input_sources)
        self.input_diffs.update(other.input_diffs)
        self.short_by_finish.update(other.short_by_finish)
        self.first_sent_wall_s = min(self.first_sent_wall_s, other.first_sent_wall_s)
        self.last_end_wall_s = max(self.last_end_wall_s, other.last_end_wall_s)
        self.busy_s += other.busy_s

    def merge_wire(self, wire: dict[str, Any]) -> None:
        for name, hw in wire["hist"].items():
            h = self.hist.get(name)
            if h is not None:
                h.merge_wire(hw)
        self.counts.update(wire["counts"])
        self.failures.update(wire["failures"])
        self.output_sources.update(wire["out_src"])
        self.input_sources.update(wire["in_src"])
        self.input_diffs.update({int(k): v for k, v in wire.get("in_diff", {}).items()})
        self.short_by_finish.update(wire.get("short_fin", {}))
        self.first_sent_wall_s = min(self.first_sent_wall_s, wire["first"])
        self.last_end_wall_s = max(self.last_end_wall_s, wire["last"])
        self.busy_s += wire["busy"]
        if not self._with_levels:
            return
        for key, lw in wire["levels"].items():
            sub = self.levels.get(key)
            if sub is None:
                sub = self.levels[key] = Aggregate(catalog.LEVEL, with_levels=False)
            sub.merge_wire(lw)
        for text, tw in wire.get("turns", {}).items():
            turn = int(text)
            sub = self.turns.get(turn)
            if sub is None:
                sub = self.turns[turn] = Aggregate(catalog.TURN, with_levels=False)
            sub.merge_wire(tw)

    # -- derived ---------------------------------------------------------------------------
    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def duration_s(self) -> float:
        """First measured send to last measured end; 0 when nothing finished."""
        if self.last_end_wall_s < self.first_sent_wall_s:
            return 0.0
        return self.last_end_wall_s - self.first_sent_wall_s
