"""A mergeable histogram: exact count, sum, min and max, percentiles within 0.1 %.

Values are recorded in their display unit (ms, tokens/s) and stored as integer thousandths in an
HDR histogram with 3 significant digits, so any percentile is within 0.1 % of the true sample
(and exact to 0.001 units below 2.048 units). Count, min and max are exact; mean and std come from
integer sums of the thousandths (exact to 0.0005 units). Everything merges by integer addition, so
merging worker deltas on the master gives bit-for-bit the histogram of one process.
"""

from __future__ import annotations

import ctypes
import math
import sys
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from hdrh.histogram import HdrHistogram

from llm_locust._native import speedups

_SCALE = 1000.0  # stored unit = 1/1000 of the display unit
_HIGHEST = 3_600_000_000_000  # 3.6e12 thousandths: one hour in ms, or 3.6e9 tokens/s
_DIGITS = 3

DEFAULT_PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)


@dataclass(frozen=True, slots=True)
class Summary:
    """Statistics of one metric, in its display unit; percentiles keyed by e.g. ``99.0``."""

    count: int
    mean: float
    std: float
    min: float
    max: float
    percentiles: dict[float, float]

    @property
    def median(self) -> float:
        return self.percentiles.get(50.0, math.nan)


class Histogram:
    """Mergeable histogram of non-negative values (negative values are clamped to 0)."""

    __slots__ = ("_counts", "_fast", "_geometry", "_hdr", "count", "max", "min", "total", "total_sq")

    def __init__(self, compiled: bool = True) -> None:
        self._hdr = hdr = HdrHistogram(1, _HIGHEST, _DIGITS)
        self.count = 0
        self.total = 0  # sum of values in thousandths (exact integer)
        self.total_sq = 0
        self.min = math.inf
        self.max = -math.inf
        # llm_locust._native._speedups.hdr_record where it is built (compiled=False: the Python code below)
        module = speedups.module() if compiled else None
        self._fast = None if module is None else module.hdr_record
        # a view of hdr's counts (never replaced): taking a buffer from it is cheap, from ctypes' array not
        self._counts = memoryview(hdr.counts).cast("B").cast("Q")
        self._geometry = (hdr.unit_magnitude, hdr.sub_bucket_half_count_magnitude, hdr.sub_bucket_mask,
                          hdr.sub_bucket_half_count, _HIGHEST, _SCALE)  # fmt: skip

    def _add_recorded(self, done: tuple[int, int, int, int, int, float, float]) -> None:
        """Fold in what ``hdr_record`` counted: (n, lo, hi, sum, sum_sq) in thousandths, and the
        smallest and largest value clamped at 0."""
        n, lo, hi, total, total_sq, vmin, vmax = done
        if not n:
            return
        hdr = self._hdr
        hdr.total_count += n
        hdr.min_value = min(hdr.min_value, lo)
        hdr.max_value = max(hdr.max_value, hi)
        self.count += n
        self.total += total
        self.total_sq += total_sq
        if vmin < self.min:
            self.min = vmin
        if vmax > self.max:
            self.max = vmax

    def record(self, value: float) -> None:
        fast = self._fast
        if fast is not None:
            self._add_recorded(fast(self._counts, (value,), self._geometry))
            return
        if value < 0.0:
            value = 0.0
        units = min(int(value * _SCALE + 0.5), _HIGHEST)
        self._hdr.record_value(units)
        self.count += 1
        self.total += units
        self.total_sq += units * units
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def record_many(self, values: Sequence[float]) -> None:
        """Record every value (e.g. one stream's ITL gaps) at a fraction of :meth:`record`'s cost:
        the HDR counts index is computed inline, as ``HdrHistogram.record_value`` computes it."""
        if not values:
            return
        fast = self._fast
        if fast is not None:
            self._add_recorded(fast(self._counts, values, self._geometry))
            return
        hdr = self._hdr
        counts = hdr.counts
        mask = hdr.sub_bucket_mask
        unit = hdr.unit_magnitude
        shift = hdr.sub_bucket_half_count_magnitude
        base = unit + shift + 1
        half = hdr.sub_bucket_half_count
        units_list = [min(int(v * _SCALE + 0.5), _HIGHEST) if v > 0.0 else 0 for v in values]
        for units in units_list:
            bucket = (units | mask).bit_length() - base
            counts[((bucket + 1) << shift) + (units >> (bucket + unit)) - half] += 1
        lo, hi = min(units_list), max(units_list)
        hdr.total_count += len(units_list)
        hdr.min_value = min(hdr.min_value, lo)
        hdr.max_value = max(hdr.max_value, hi)
        self.count += len(units_list)
        self.total += sum(units_list)
        self.total_sq += sum(u * u for u in units_list)
        vmin, vmax = max(min(values), 0.0), max(max(values), 0.0)
        if vmin < self.min:
            self.min = vmin
        if vmax > self.max:
            self.max = vmax

    def reset(self) -> None:
        if self.count:
            _reset_hdr(self._hdr)
        self.count = 0
        self.total = 0
        self.total_sq = 0
        self.min = math.inf
        self.max = -math.inf

    def merge(self, other: Histogram) -> None:
        if not other.count:
            return
        self._hdr.add(other._hdr)
        self._merge_moments(other.count, other.total, other.total_sq, other.min, other.max)

    def _merge_moments(self, count: int, total: int, total_sq: int, lo: float, hi: float) -> None:
        self.count += count
        self.total += total
        self.total_sq += total_sq
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)

    def to_wire(self) -> dict[str, Any]:
        """A msgpack-friendly dict; :meth:`merge_wire` adds it into another histogram."""
        return {
            "hdr": self._hdr.encode().decode("ascii"),
            "n": self.count,
            "sum": str(self.total),  # str: msgpack ints stop at 64 bits
            "sq": str(self.total_sq),
            "min": self.min,
            "max": self.max,
        }

    def merge_wire(self, wire: dict[str, Any]) -> None:
        if not wire["n"]:
            return
        self._hdr.decode_and_add(wire["hdr"].encode("ascii"))
        self._merge_moments(int(wire["n"]), int(wire["sum"]), int(wire["sq"]), wire["min"], wire["max"])

    def percentile(self, p: float) -> float:
        return self.percentiles((p,))[p]

    def percentiles(self, ps: Sequence[float]) -> dict[float, float]:
        """Several percentiles in one pass over the counts, each exactly what
        ``HdrHistogram.get_value_at_percentile`` returns (clamped to the exact min and max).
        hdrh's own walks the 33,792 counts in Python per call (1.4 ms), on the event loop."""
        if not self.count:
            return {p: math.nan for p in ps}
        hdr = self._hdr
        counts = memoryview(hdr.counts).cast("B").cast("Q")
        end = min(hdr._counts_index_for(hdr.max_value) + 1, hdr.counts_len) if hdr.max_value else 0
        cumulative = list(accumulate(counts[:end]))
        if not cumulative or cumulative[-1] < hdr.total_count:  # max_value not tracked: walk them all
            cumulative = list(accumulate(counts))
        out = {}
        for p in ps:
            index = bisect_left(cumulative, hdr.get_target_count_at_percentile(p))
            if index >= len(cumulative):
                units = 0
            else:
                at = hdr.get_value_from_index(index)
                units = hdr.get_highest_equivalent_value(at) if p else hdr.get_lowest_equivalent_value(at)
            out[p] = min(max(float(units) / _SCALE, self.min), self.max)
        return out

    def counts_at_or_below(self, bounds: Sequence[float]) -> list[int]:
        """How many values are at or below each of ``bounds`` (display unit, ascending): the cumulative
        counts of a Prometheus histogram's buckets. A bound inside an HDR sub-bucket counts that whole
        sub-bucket as below it, so a value within the resolution (0.1 %; exact below 2.048 units) above
        a bound may count as at it. Sums slices of the counts in C: no Python loop over them."""
        if not self.count:
            return [0] * len(bounds)
        hdr = self._hdr
        counts = self._counts
        # past the largest value every count is 0: the walk stops there
        top = hdr._counts_index_for(min(int(self.max * _SCALE + 0.5), _HIGHEST)) + 1
        out: list[int] = []
        running = start = 0
        for bound in bounds:
            units = min(int(max(bound, 0.0) * _SCALE + 0.5), _HIGHEST)
            end = min(hdr._counts_index_for(units) + 1, top)
            if end > start:
                running += sum(counts[start:end])
                start = end
            out.append(running)
        return out

    def bins(self, n: int = 40) -> list[tuple[float, float, int]]:
        """The distribution as ``n`` equal-width bins ``(low, high, count)`` from min to max, in the
        display unit; the counts add up to :attr:`count` (for histogram charts)."""
        if not self.count:
            return []
        lo, hi = self.min, self.max
        width = (hi - lo) / n if hi > lo else 1.0
        counts = [0] * n
        for item in self._hdr.get_recorded_iterator():
            value = min(max(item.value_iterated_to / _SCALE, lo), hi)
            i = min(int((value - lo) / width), n - 1)
            counts[i] += item.count_at_value_iterated_to
        return [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]

    def summary(self, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> Summary:
        if not self.count:
            nan = math.nan
            return Summary(0, nan, nan, nan, nan, {p: nan for p in percentiles})
        n = self.count
        mean_units = self.total / n
        var_units = max((self.total_sq * n - self.total * self.total) / (n * n), 0)
        return Summary(
            count=n,
            mean=mean_units / _SCALE,
            std=math.sqrt(var_units) / _SCALE,
            min=self.min,
            max=self.max,
            percentiles=self.percentiles(percentiles),
        )


def _reset_hdr(hdr: HdrHistogram) -> None:
    """``HdrHistogram.reset`` without its Python loop over every count (3 ms on the event loop)."""
    ctypes.memset(hdr.counts, 0, ctypes.sizeof(hdr.counts))
    hdr.total_count = 0
    hdr.min_value = sys.maxsize
    hdr.max_value = 0
    hdr.start_time_stamp_msec = sys.maxsize
    hdr.end_time_stamp_msec = 0


def finite(x: float) -> float | None:
    """``x``, or None for NaN and infinities (what an empty histogram gives), as JSON wants."""
    return None if math.isnan(x) or math.isinf(x) else x
