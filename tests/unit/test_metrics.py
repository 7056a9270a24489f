"""Per-request metrics from a fake clock, and histograms that merge exactly."""

from __future__ import annotations

import math
import random

import pytest
from fakes import FakeClock, make_record

from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.histogram import Histogram
from llm_locust.metrics.records import RequestTimer


def test_definitions_match_metrics_md() -> None:
    rec = make_record()
    assert rec.ttfb_ms == pytest.approx(5.0)
    assert rec.ttft_ms == pytest.approx(200.0)
    assert list(rec.itl_ms) == pytest.approx([20.0, 30.0, 10.0])
    assert rec.e2e_ms == pytest.approx(260.0)
    assert rec.done_ms == pytest.approx(260.5)
    assert rec.tpot_ms == pytest.approx((260.0 - 200.0) / 3)
    assert rec.tokens_per_s == pytest.approx(4 / 0.260)
    assert rec.decode_tokens_per_s == pytest.approx(1000 / 20.0)


def test_ttfvt_skips_reasoning_events() -> None:
    rec = make_record(reasoning_first=2)
    assert rec.ttft_ms == pytest.approx(200.0)
    assert rec.ttfvt_ms == pytest.approx(250.0)


def test_tpot_undefined_for_one_token() -> None:
    rec = make_record(gaps_ms=(), tokens=1)
    assert rec.tpot_ms is None and rec.decode_tokens_per_s is None
    assert rec.tokens_per_s == pytest.approx(1 / 0.2)


def test_tpot_uses_token_count_not_event_count() -> None:
    """One event may carry several tokens: TPOT divides by tokens - 1."""
    rec = make_record(gaps_ms=(60.0,), tokens=7)
    assert rec.tpot_ms == pytest.approx(60.0 / 6)


def test_histogram_exact_moments_and_percentiles_within_0_1_percent() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(3, 1) for _ in range(20000)] + [0.0005, 123456.0]
    h = Histogram()
    for v in values:
        h.record(v)
    s = h.summary((50.0, 90.0, 99.0))
    values.sort()
    n = len(values)
    assert s.count == n
    # mean and std come from integer sums of thousandths: exact to half a thousandth
    assert s.mean == pytest.approx(sum(values) / n, abs=5e-4)
    assert s.std == pytest.approx(math.sqrt(sum((v - s.mean) ** 2 for v in values) / n), abs=1e-3)
    assert (s.min, s.max) == (values[0], values[-1])
    for p in (50.0, 90.0, 99.0):
        true = values[math.ceil(p / 100 * n) - 1]
        assert s.percentiles[p] == pytest.approx(true, rel=1e-3, abs=1e-3)


def test_histogram_merge_over_the_wire_equals_one_histogram() -> None:
    rng = random.Random(2)
    values = [rng.uniform(0, 500) for _ in range(5000)]
    whole, a, b = Histogram(), Histogram(), Histogram()
    for i, v in enumerate(values):
        whole.record(v)
        (a if i % 3 else b).record(v)
    merged = Histogram()
    merged.merge_wire(a.to_wire())
    merged.merge_wire(b.to_wire())
    assert merged.summary() == whole.summary()


def test_deltas_never_count_a_sample_twice() -> None:
    worker, master = Aggregate(), Aggregate()
    for round_ in range(3):
        for _ in range(round_ + 1):
            worker.record(make_record(), level="8")
        master.merge_wire(worker.take_delta())
    master.merge_wire(worker.take_delta())  # an empty final delta changes nothing
    assert master.counts["completed"] == 6
    assert master.hist["itl"].count == 18
    assert master.counts["total_output_tokens"] == 24
    assert master.levels["8"].counts["completed"] == 6


def test_failures_and_cancelled_are_counted_apart_from_successes() -> None:
    agg = Aggregate()
    clock = FakeClock()
    agg.record(RequestTimer(clock).finish("http_5xx", "HTTP 500"))
    agg.record(RequestTimer(clock).finish("cancelled"))
    agg.record(make_record())
    assert agg.counts["completed"] == 1 and agg.failed == 1 and agg.counts["cancelled"] == 1
    assert agg.hist["ttft"].count == 1  # latencies come from successful requests only


def test_reset_clears_everything() -> None:
    agg = Aggregate()
    agg.record(make_record(), level="1")
    agg.reset()
    assert agg.empty and agg.hist["ttft"].count == 0 and agg.duration_s == 0.0
