"""The over-time series behind the live charts and the HTML report, and histogram bins."""

from __future__ import annotations

import itertools
import random

import pytest
from fakes import make_record

from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.histogram import Histogram
from llm_locust.metrics.timeseries import TimeSeries


def test_bins_hold_every_sample_in_order() -> None:
    h = Histogram()
    rng = random.Random(3)
    values = [rng.uniform(10.0, 500.0) for _ in range(5000)]
    for v in values:
        h.record(v)
    bins = h.bins(40)
    assert len(bins) == 40
    assert sum(c for _lo, _hi, c in bins) == 5000
    assert bins[0][0] == pytest.approx(min(values), abs=1e-3)
    assert bins[-1][1] == pytest.approx(max(values), abs=1e-3)
    for (lo, hi, count), (lo2, _hi2, _c2) in itertools.pairwise(bins):
        assert hi == pytest.approx(lo2)
        expected = sum(lo <= v < hi for v in values)
        assert abs(count - expected) <= 0.01 * 5000  # HDR's 0.1 % value error only moves edge samples


def test_bins_of_one_value_and_of_nothing() -> None:
    h = Histogram()
    assert h.bins() == []
    for _ in range(3):
        h.record(7.0)
    assert sum(c for *_r, c in h.bins(10)) == 3


def test_points_cover_the_sliding_window() -> None:
    ts = TimeSeries(bucket_s=2.0, window_s=10.0)
    t0 = 1_000_000.0
    # 2 s buckets: 4 requests of TTFT 100 ms, then 4 of TTFT 300 ms
    for _ in range(4):
        ts.record(make_record(ttft_ms=100.0, tokens=4))
    p1 = ts.sample(t0 + 2.0, users=4, in_flight=3, level="4")
    assert p1.requests_per_s == pytest.approx(2.0)  # 4 requests over the 2 s since the start
    assert p1.output_tokens_per_s == pytest.approx(8.0)
    assert p1.ttft_p50_ms == pytest.approx(100.0, rel=1e-3)
    assert (p1.users, p1.in_flight, p1.level, p1.completed) == (4, 3, "4", 4)
    for _ in range(4):
        ts.record(make_record(ttft_ms=300.0, tokens=4))
    p2 = ts.sample(t0 + 4.0, users=4, in_flight=4)
    assert p2.requests_per_s == pytest.approx(2.0)  # 8 over 4 s
    assert p2.ttft_p95_ms == pytest.approx(300.0, rel=1e-3)
    assert p2.completed == 8
    # nothing more: after the window has passed, the old requests leave it
    for k in range(3, 8):
        p = ts.sample(t0 + 2.0 * k, users=4, in_flight=0)
    assert p.requests_per_s == 0.0
    assert p.ttft_p50_ms is None
    assert p.completed == 8
    assert len(ts.to_json()) == 7


def test_worker_deltas_feed_the_series_like_local_records() -> None:
    local, master = TimeSeries(), TimeSeries()
    worker = Aggregate()
    for ttft in (50.0, 80.0, 120.0):
        rec = make_record(ttft_ms=ttft)
        local.record(rec)
        worker.record(rec, level="2")
    master.merge_wire(worker.take_delta())
    a = local.sample(10.0, 2, 0)
    b = master.sample(10.0, 2, 0)
    assert a == b


def test_reset_forgets_points() -> None:
    ts = TimeSeries()
    ts.record(make_record())
    ts.sample(5.0, 1, 0)
    ts.reset()
    assert ts.points == []
    assert ts.sample(9.0, 1, 0).completed == 0


def test_a_long_run_keeps_a_bounded_evenly_spaced_series(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_locust.metrics import timeseries

    monkeypatch.setattr(timeseries, "MAX_POINTS", 100)
    ts = TimeSeries(bucket_s=2.0)
    for k in range(1, 1000):
        ts.sample(2.0 * k, users=k, in_flight=0)
    ts.record(make_record())
    p = ts.sample(2000.0, users=1000, in_flight=0, last=True)
    assert ts.points[-1] == p  # the end of the test is always kept
    assert len(ts.points) <= 101
    users = [q.users for q in ts.points[:-1]]
    assert users[0] == 1  # the start is kept
    steps = {b - a for a, b in itertools.pairwise(users)}
    assert len(steps) == 1  # evenly thinned
    assert p.completed == 1  # every sample still counts, kept or not
