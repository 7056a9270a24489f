"""The open loop's arrival schedule, as a pure function: vLLM's Gamma process at a constant rate,
the same global sequence however it is split over processes or joined mid-way, and rate plans
(ladders, ramps, a rate changed mid-run) whose expected arrivals are the integral of their rate."""

from __future__ import annotations

import itertools
import math
import statistics
from types import SimpleNamespace
from typing import Any

import pytest

from llm_locust.errors import ConfigError
from llm_locust.load import arrivals as A
from llm_locust.locust.load_options import load_from_options, parse_warmup
from llm_locust.reports.summary import level_number


def times(
    plan: A.RatePlan, seed: int = 0, share: A.Share | None = None, limit: int | None = None
) -> list[float]:
    return [a.at_s for a in A.arrivals(plan, seed, share or A.Share(0, 1), limit=limit)]


@pytest.mark.parametrize("burstiness", [0.5, 1.0, 4.0])
def test_constant_rate_gaps_are_gamma_with_vllm_s_shape_and_scale(burstiness: float) -> None:
    t = times(A.constant(50.0, burstiness), seed=3, limit=40_000)
    gaps = [b - a for a, b in itertools.pairwise(t)]
    assert t[0] == 0.0  # the first request at the start, as vllm bench serve sends it
    assert statistics.mean(gaps) == pytest.approx(1 / 50.0, rel=0.02)
    cv = statistics.pstdev(gaps) / statistics.mean(gaps)
    assert cv == pytest.approx(1 / math.sqrt(burstiness), rel=0.04)
    assert all(g >= 0 for g in gaps)


def test_shares_of_any_split_together_are_the_one_sequence() -> None:
    plan = A.constant(100.0, 2.0)
    whole = [(a.k, a.at_s) for a in A.arrivals(plan, 9, A.Share(0, 1), limit=2000)]
    for count in (2, 3, 16):
        parts = [
            (a.k, a.at_s) for i in range(count) for a in A.arrivals(plan, 9, A.Share(i, count), limit=2000)
        ]
        assert sorted(parts) == whole
    # another seed is another sequence
    assert [a.at_s for a in A.arrivals(plan, 10, A.Share(0, 1), limit=5)] != [t for _, t in whole[:5]]


@pytest.mark.parametrize("after_s", [0.0, 0.3, 0.64, 0.65, 7.77])
def test_a_process_joining_at_a_checkpoint_agrees_on_every_instant(after_s: float) -> None:
    # checkpoints inside a block of 64, at its boundary and past several blocks
    plan = A.constant(100.0, 1.0)
    whole = [(a.k, a.at_s) for a in A.arrivals(plan, 5, A.Share(0, 1), limit=1500)]
    at = A.checkpoint_after(plan, 5, after_s)
    assert whole[at.k][1] >= after_s and (at.k == 0 or whole[at.k - 1][1] < after_s)
    joined = [(a.k, a.at_s) for a in A.arrivals(plan, 5, A.Share(0, 1), at=at, limit=1500)]
    assert joined == whole[at.k :]  # the same floats, not just close ones


def test_a_ladder_of_rates_has_each_level_s_expected_arrivals_then_ends() -> None:
    plan = A.ladder([10.0, 40.0], 5.0)
    assert plan.end_s == 10.0 and [s.label for s in plan.segments] == ["10 req/s", "40 req/s"]
    counts = [[0, 0] for _ in range(200)]
    for seed in range(200):
        for t in times(plan, seed):
            assert 0 <= t < 10.0
            counts[seed][int(t // 5)] += 1
    # 1 + 50 and 200 expected (the first arrival at 0 comes on top of the process)
    assert statistics.mean(c[0] for c in counts) == pytest.approx(51, rel=0.03)
    assert statistics.mean(c[1] for c in counts) == pytest.approx(200, rel=0.02)
    assert plan.label_at(2.0) == "10 req/s" and plan.label_at(7.0) == "40 req/s"


@pytest.mark.parametrize(
    ("curve", "expected"),
    [("linear", 1 + (10 + 50) / 2 * 8), ("exponential", 1 + (50 - 10) / math.log(5) * 8)],
)
def test_a_ramp_s_arrivals_are_the_integral_of_its_rate(curve: Any, expected: float) -> None:
    plan = A.ramp(10.0, 50.0, 8.0, curve, 4.0)
    assert plan.end_s == 8.0 and len(plan.segments) == 2
    assert plan.rate_at(0.0) == pytest.approx(10) and plan.rate_at(8.0 - 1e-9) == pytest.approx(50)
    assert plan.segments[0].label == ("10-30 req/s" if curve == "linear" else "10-22.4 req/s")
    n = [len(times(plan, seed)) for seed in range(300)]
    assert statistics.mean(n) == pytest.approx(expected, rel=0.02)
    # rising: the second half of the ramp has more arrivals than the first
    t = times(plan, 1)
    assert sum(x >= 4 for x in t) > sum(x < 4 for x in t)


def test_a_rate_changed_mid_run_keeps_what_was_due_before_it() -> None:
    before = A.constant(10.0)
    after = before.changed_at(3.0, 100.0)
    old = times(before, 2, limit=3000)
    new = times(after, 2, limit=3000)
    assert [t for t in new if t < 3.0] == [t for t in old if t < 3.0]
    later = [t for t in new if 3.0 <= t < 13.0]
    assert len(later) == pytest.approx(1000, rel=0.08)
    assert after.label_at(5.0) == "100 req/s"
    # changing a ramp part-way keeps its first part and its curve
    ramped = A.ramp(10.0, 50.0, 8.0, "exponential", 8.0).changed_at(2.0, 5.0)
    assert ramped.segments[0].end_s == 2.0 and ramped.segments[0].curve == "exponential"
    assert ramped.rate_at(1.0) == pytest.approx(10 * 5 ** (1 / 8))
    assert ramped.rate_at(2.5) == 5.0 and math.isinf(ramped.end_s)


def test_inf_sends_everything_at_the_start() -> None:
    plan = A.constant(math.inf)
    assert plan.burst and times(plan, limit=50) == [0.0] * 50
    with pytest.raises(ConfigError, match="cannot change"):
        plan.changed_at(1.0, 5.0)


def test_plans_travel_to_workers_unchanged() -> None:
    for plan in (
        A.constant(7.5, 3.0),
        A.ladder([1, 2], 4.0),
        A.ramp(0, 9, 6, "linear", 2),
        A.constant(math.inf),
    ):
        assert A.RatePlan.from_wire(plan.to_wire()) == plan


def options(**kw: Any) -> SimpleNamespace:
    base = {
        "request_rate": "",
        "burstiness": 1.0,
        "rates": "",
        "level_duration": 60.0,
        "ramp_up_strategy": "",
        "ramp_up_start_rps": None,
        "ramp_up_end_rps": None,
        "ramp_up_duration": None,
        "max_concurrency": None,
        "max_requests": None,
        "warmup": "",
        "run_time": None,
    }
    return SimpleNamespace(**{**base, **kw})


def test_options_build_each_plan() -> None:
    assert load_from_options(options()).plan is None  # a closed loop of users
    c = load_from_options(options(request_rate="12.5", burstiness=2.0, max_concurrency=8, max_requests=100))
    assert c.open_loop and c.plan == A.constant(12.5, 2.0) and (c.max_concurrency, c.max_requests) == (8, 100)
    assert load_from_options(options(rates="1, 2,4", level_duration=5)).plan == A.ladder([1, 2, 4], 5)
    ramp = load_from_options(
        options(ramp_up_strategy="linear", ramp_up_start_rps=1, ramp_up_end_rps=9, run_time=30)
    )
    assert ramp.plan is not None and ramp.plan.end_s == 30
    assert load_from_options(options(request_rate="inf", max_requests=10)).plan == A.constant(math.inf)
    assert parse_warmup("30") == (30.0, 0) and parse_warmup("2m") == (120.0, 0)
    assert parse_warmup("100req") == (0.0, 100) and parse_warmup("5 requests") == (0.0, 5)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"request_rate": "fast"}, "--request-rate 'fast' is not a number"),
        ({"request_rate": "0"}, "--request-rate 0 must be a number of requests/s > 0"),
        ({"request_rate": "-3"}, "--request-rate -3 must be"),
        ({"request_rate": "5", "rates": "1,2"}, "--request-rate and --rates are exclusive"),
        ({"request_rate": "5", "burstiness": 0}, "--burstiness 0 must be a number > 0"),
        ({"rates": "1,x"}, "--rates '1,x' must be comma-separated requests/s"),
        ({"rates": "1,0"}, "--rates: each rate 0 must be"),
        (
            {"request_rate": "inf"},
            "--request-rate inf sends all at once: give --max-requests or --max-concurrency",
        ),
        (
            {"ramp_up_strategy": "linear", "ramp_up_start_rps": 1},
            "needs --ramp-up-start-rps and --ramp-up-end-rps",
        ),
        ({"ramp_up_strategy": "linear", "ramp_up_start_rps": 1, "ramp_up_end_rps": 5}, "--ramp-up-duration"),
        (
            {"ramp_up_strategy": "exponential", "ramp_up_start_rps": 0, "ramp_up_end_rps": 5, "run_time": 9},
            "--ramp-up-start-rps 0 must be a number of requests/s > 0",
        ),
        ({"max_concurrency": 4}, "--max-concurrency caps an open loop"),
        ({"request_rate": "5", "max_concurrency": 0}, "--max-concurrency 0 must be >= 1"),
        ({"max_requests": "many"}, "--max-requests 'many' is not a whole number"),
        ({"warmup": "soon"}, "--warmup 'soon' must be seconds (30, 30s, 2m) or requests (100req)"),
        ({"warmup": "10req", "max_requests": 10}, "--warmup 10req leaves none of --max-requests 10"),
    ],
)
def test_bad_load_options_are_one_line_naming_the_option(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_from_options(options(**kw))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_levels_are_ordered_by_their_users_or_rate() -> None:
    assert [level_number(x) for x in ("32", "4 req/s", "2.5-4 req/s", "?")] == [32, 4, 4, None]
