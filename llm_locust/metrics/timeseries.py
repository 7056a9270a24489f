"""The run over time: a point every few seconds, computed from our merged histograms.

Finished requests go into the current bucket (in a single process as they finish; on the master
as the workers' deltas arrive). Each :meth:`TimeSeries.sample` closes the bucket and computes a
point over the last ``window_s`` seconds of buckets, the way Locust's own charts show "current"
percentiles over a sliding window. Token throughput counts the output tokens of the requests that
finished in the window, divided by the window's length.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.catalog import WINDOW
from llm_locust.metrics.histogram import finite
from llm_locust.metrics.records import RequestRecord

DEFAULT_BUCKET_S = 2.0
DEFAULT_WINDOW_S = 10.0
#: Points kept at most: a longer run keeps every 2nd point, then every 4th... (a day at 2 s would
#: otherwise be 43k points in memory, in the JSON and in every chart).
MAX_POINTS = 4000


@dataclass(frozen=True, slots=True)
class Point:
    """The run at one instant; latencies over the preceding window, None where nothing finished.

    The latency fields are the ``window`` fields of the catalog's :data:`~catalog.WINDOW` metrics
    (per bucket: no ITL, whose one sample per token would cost per event)."""

    time_s: float  # Unix time
    users: int
    in_flight: int
    requests_per_s: float
    failures_per_s: float
    output_tokens_per_s: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    tpot_p50_ms: float | None
    tpot_p95_ms: float | None
    e2el_p50_ms: float | None
    e2el_p95_ms: float | None
    stream_tokens_per_s_p50: float | None
    completed: int  # cumulative
    failed: int  # cumulative
    level: str | None
    #: open loop: the p99 of send - scheduled over the window, and the rate the schedule asks for
    schedule_lag_p99_ms: float | None = None
    target_rate_per_s: float | None = None
    #: within --warmup: shown here, left out of every statistic
    warmup: bool = False
    #: the server's own gauges at its latest poll (--server-metrics; None where it has none)
    server_running: float | None = None
    server_waiting: float | None = None
    server_kv_cache_usage: float | None = None  # 0-1


class TimeSeries:
    """Buckets of finished requests and the points sampled from them."""

    def __init__(self, bucket_s: float = DEFAULT_BUCKET_S, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.bucket_s = bucket_s
        self.window_s = window_s
        self.points: list[Point] = []
        self._stride = 1  # keep one sample in this many
        self._samples = 0
        self._current = Aggregate(WINDOW, with_levels=False)
        self._buckets: deque[tuple[float, Aggregate]] = deque()  # (closed at, bucket)
        # Aggregates are reused, not reallocated: each HDR histogram is a 264 KiB array, and a fresh
        # set every 2 s fragmented the heap (RSS grew with the run's length).
        self._spare: list[Aggregate] = []
        self._window = Aggregate(WINDOW, with_levels=False)
        self._started_s: float | None = None
        self._completed = 0
        self._failed = 0

    def record(self, rec: RequestRecord) -> None:
        self._current.record(rec)

    def merge_wire(self, wire: dict[str, Any]) -> None:
        self._current.merge_wire(wire)

    def reset(self) -> None:
        """Locust's stats reset: forget the points and start over."""
        self.points.clear()
        self._stride = 1
        self._samples = 0
        while self._buckets:
            self._recycle(self._buckets.popleft()[1])
        self._current.reset()
        self._started_s = None
        self._completed = 0
        self._failed = 0

    def sample(
        self,
        now_s: float,
        users: int,
        in_flight: int,
        level: str | None = None,
        *,
        last: bool = False,
        target_rate_per_s: float | None = None,
        warmup: bool = False,
        server: tuple[float | None, float | None, float | None] = (None, None, None),
    ) -> Point:
        """Close the current bucket at ``now_s`` (Unix time) and return the window's point, kept in
        :attr:`points` (thinned beyond :data:`MAX_POINTS`; the ``last`` point of a test always);
        ``server``: the server's running, waiting and KV-cache use at its latest poll."""
        if self._started_s is None:
            self._started_s = now_s - self.bucket_s
        bucket = self._current
        self._current = self._spare.pop() if self._spare else Aggregate(WINDOW, with_levels=False)
        self._completed += bucket.counts["completed"]
        self._failed += bucket.failed
        self._buckets.append((now_s, bucket))
        while self._buckets and self._buckets[0][0] <= now_s - self.window_s:
            self._recycle(self._buckets.popleft()[1])
        window = self._window
        window.reset()
        for _closed, b in self._buckets:
            window.merge(b)
        span_s = max(min(self.window_s, now_s - self._started_s), 1e-9)
        fields: dict[str, Any] = {
            "time_s": now_s,
            "users": users,
            "in_flight": in_flight,
            "requests_per_s": window.counts["completed"] / span_s,
            "failures_per_s": window.failed / span_s,
            "output_tokens_per_s": window.counts["total_output_tokens"] / span_s,
            "completed": self._completed,
            "failed": self._failed,
            "level": level,
            "target_rate_per_s": target_rate_per_s,
            "warmup": warmup,
            "server_running": server[0],
            "server_waiting": server[1],
            "server_kv_cache_usage": server[2],
        }
        for metric in WINDOW:
            got = window.hist[metric.name].percentiles([p for p, _field in metric.window])
            fields.update((name, finite(got[p])) for p, name in metric.window)
        point = Point(**fields)
        self._keep(point, last)
        return point

    def _keep(self, point: Point, last: bool) -> None:
        self._samples += 1
        if (self._samples - 1) % self._stride and not last:
            return
        self.points.append(point)
        if len(self.points) > MAX_POINTS:
            del self.points[1::2]
            self._stride *= 2

    def _recycle(self, bucket: Aggregate) -> None:
        bucket.reset()
        self._spare.append(bucket)

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.points]
