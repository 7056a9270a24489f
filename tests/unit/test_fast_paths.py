"""Batched recording gives exactly what recording one value at a time gives."""

from __future__ import annotations

import random
import time
from array import array

import pytest
from locust.stats import RequestStats

from llm_locust.locust.state import log_many
from llm_locust.metrics.histogram import Histogram

EDGES = [0.0, -1.0, 0.0004, 1.9, 2.049, 20.0, 1e6, 4e9]


def same(a: Histogram, b: Histogram) -> None:
    assert a._hdr.encode() == b._hdr.encode()  # same HDR counts, min, max, total
    assert (a._hdr.min_value, a._hdr.max_value) == (b._hdr.min_value, b._hdr.max_value)
    assert (a.count, a.total, a.total_sq, a.min, a.max) == (b.count, b.total, b.total_sq, b.min, b.max)
    assert a.summary() == b.summary()


def test_the_compiled_recorder_is_in_use() -> None:
    assert Histogram()._fast is not None, (
        "llm_locust._native._speedups was not built: is a C compiler installed?"
    )
    assert Histogram(compiled=False)._fast is None


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("seed", range(10))
def test_record_many_equals_record(seed: int, compiled: bool) -> None:
    """The reference is hdrh's own record_value, one value at a time (the Python path)."""
    rng = random.Random(seed)
    values = [rng.choice([*EDGES, rng.expovariate(0.05), rng.uniform(0, 3)]) for _ in range(500)]
    one, many, single = Histogram(compiled=False), Histogram(compiled), Histogram(compiled)
    for v in values:
        one.record(v)
        single.record(v)
    many.record_many(values[:250])
    many.record_many(array("d", values[250:]))  # a stream's ITL gaps come as array('d')
    same(many, one)
    same(single, one)


def test_huge_squares_and_the_top_of_the_range_stay_exact() -> None:
    values = [3.6e9, 3.6e9, 1e12, 5e9, 0.0005, 0.0004999]  # beyond the range: clamped to it
    ref, fast = Histogram(compiled=False), Histogram()
    for v in values[:3]:
        ref.record(v)  # hdrh raises beyond its range; the Python path clamps first as well
    fast.record_many(values[:3])
    same(fast, ref)
    assert fast.total_sq == 3 * 3_600_000_000_000**2 > 2**64


@pytest.mark.parametrize("seed", range(10))
def test_log_many_equals_locust_log(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.choice([0.0, 0.4, 17.2, 99.6, 150.0, 1234.5, 88888.0, rng.expovariate(0.05)])
              for _ in range(rng.randint(1, 300))]  # fmt: skip
    for _attempt in range(3):  # both must log within one wall-clock second
        second = int(time.time())
        one = RequestStats(use_response_times_cache=True).get("ITL", "LLM")
        many = RequestStats(use_response_times_cache=True).get("ITL", "LLM")
        for v in values:
            one.log(v, 0)
        log_many(many, values)
        if int(time.time()) == second:
            break
    a, b = one.serialize(), many.serialize()
    for key in ("start_time", "last_request_timestamp"):
        a.pop(key), b.pop(key)
    assert a.pop("total_response_time") == pytest.approx(b.pop("total_response_time"), rel=1e-12)
    assert a == b


def _hdrh_percentile(h: Histogram, p: float) -> float:
    """What hdrh's own (slow) walk gives, clamped as Histogram.percentile clamps."""
    return min(max(h._hdr.get_value_at_percentile(p) / 1000.0, h.min), h.max)


@pytest.mark.parametrize("seed", range(8))
def test_percentiles_equal_hdrh_after_record_merge_and_reset(seed: int) -> None:
    rng = random.Random(seed)
    ps = (0.0, 0.1, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0)
    worker, master = Histogram(), Histogram()
    for _round in range(3):  # deltas shipped and the worker's histogram reset and reused
        values = [rng.choice([*EDGES, rng.expovariate(0.01), rng.uniform(0, 5)]) for _ in range(300)]
        worker.record_many(values)
        for v in values[:20]:
            worker.record(v)
        wire = worker.to_wire()
        worker.reset()
        assert worker.count == 0 and worker._hdr.total_count == 0 and not any(worker._hdr.counts)
        master.merge_wire(wire)
    for h in (master, worker):
        if h.count:
            got = h.percentiles(ps)
            assert got == {p: _hdrh_percentile(h, p) for p in ps}
    fresh = Histogram()
    fresh.record(12.5)
    assert fresh.percentiles(ps) == {p: _hdrh_percentile(fresh, p) for p in ps}
