"""Run-wide counters and histograms: recorded per request, shipped as deltas, merged exactly.

A worker records into its :class:`Aggregate`, and every report to the master carries
:meth:`Aggregate.take_delta` (what was recorded since the last report, then cleared), so no
sample is ever sent twice. The master adds each delta with :meth:`Aggregate.merge_wire`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from llm_locust.metrics import catalog
from llm_locust.metrics.catalog import Metric
from llm_locust.metrics.histogram import Histogram
from llm_locust.metrics.records import CANCELLED, OK, RequestRecord

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
)

_PERF_TO_WALL: list[float] = []


def wall_time(perf_s: float) -> float:
    """Convert a ``perf_counter`` instant of this process to Unix time (for cross-process windows)."""
    if not _PERF_TO_WALL:
        _PERF_TO_WALL.append(time.time() - time.perf_counter())
    return perf_s + _PERF_TO_WALL[0]


class Aggregate:
    """Counters and histograms over a set of requests: one histogram per metric of ``metrics``
    (the whole catalog for a run; :data:`catalog.LEVEL` per ladder level), in display units."""

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
        self.first_sent_wall_s = math.inf
        self.last_end_wall_s = -math.inf
        self.busy_s = 0.0  # sum of request durations, for average concurrency
        self._with_levels = with_levels
        self.levels: dict[str, Aggregate] = {}

    # -- recording -------------------------------------------------------------------------
    def record(self, rec: RequestRecord, level: str | None = None) -> None:
        if rec.outcome == CANCELLED:
            self.counts["cancelled"] += 1
        else:
            self._record_finished(rec)
        if level is not None and self._with_levels:
            sub = self.levels.get(level)
            if sub is None:
                sub = self.levels[level] = Aggregate(catalog.LEVEL, with_levels=False)
            sub.record(rec)

    def _record_finished(self, rec: RequestRecord) -> None:
        sent = wall_time(rec.sent_at_s)
        ended = wall_time(rec.ended_at_s)
        self.first_sent_wall_s = min(self.first_sent_wall_s, sent)
        self.last_end_wall_s = max(self.last_end_wall_s, ended)
        self.busy_s += rec.ended_at_s - rec.sent_at_s
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
        for h, read in self._one:
            value = read(rec)
            if value is not None:
                h.record(value)
        for h, read in self._many:
            h.record_many(read(rec))

    # -- merging ---------------------------------------------------------------------------
    def reset(self) -> None:
        for h in self.hist.values():
            h.reset()
        self.counts.clear()
        self.failures.clear()
        self.output_sources.clear()
        self.input_sources.clear()
        self.first_sent_wall_s = math.inf
        self.last_end_wall_s = -math.inf
        self.busy_s = 0.0
        self.levels.clear()

    @property
    def empty(self) -> bool:
        return not (self.counts or self.failures or self.levels)

    def to_wire(self) -> dict[str, Any]:
        return {
            "hist": {name: h.to_wire() for name, h in self.hist.items() if h.count},
            "counts": dict(self.counts),
            "failures": dict(self.failures),
            "out_src": dict(self.output_sources),
            "in_src": dict(self.input_sources),
            "first": self.first_sent_wall_s,
            "last": self.last_end_wall_s,
            "busy": self.busy_s,
            "levels": {k: v.to_wire() for k, v in self.levels.items()},
        }

    def take_delta(self) -> dict[str, Any]:
        """What was recorded since the last call, as wire data; clears this aggregate."""
        wire = self.to_wire()
        self.reset()
        return wire

    def merge(self, other: Aggregate) -> None:
        """Add another aggregate of this process (its histograms and counters; not its levels)."""
        for name, h in self.hist.items():
            oh = other.hist.get(name)
            if oh is not None:
                h.merge(oh)
        self.counts.update(other.counts)
        self.failures.update(other.failures)
        self.output_sources.update(other.output_sources)
        self.input_sources.update(other.input_sources)
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
