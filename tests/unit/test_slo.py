"""--slo objectives and --goodput bounds: parsing (every form and every error), verdicts on a
results dict, the goodput rule per request, and the capacity answer of a ladder."""

from __future__ import annotations

import dataclasses

import pytest
from fakes import make_record

from llm_locust.errors import ConfigError
from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.slo import evaluate, is_good, parse_goodput, parse_objective
from llm_locust.reports import slo as slo_report
from llm_locust.reports.summary import results


@pytest.mark.parametrize(
    ("text", "key", "op", "bound"),
    [
        ("ttft_p95<=500ms", "p95_ttft_ms", "<=", 500.0),
        ("tpot_p50 < 40ms", "median_tpot_ms", "<", 40.0),
        ("e2el_mean<=2s", "mean_e2el_ms", "<=", 2000.0),
        ("itl_p99<=30", "p99_itl_ms", "<=", 30.0),
        ("tokens_per_s_min>=20", "min_tokens_per_s", ">=", 20.0),
        ("error_rate<=1%", "error_rate", "<=", 0.01),
        ("error_rate<=0.01", "error_rate", "<=", 0.01),
        ("output_throughput>=2000", "output_throughput", ">=", 2000.0),
        ("goodput_share>=99%", "goodput_share", ">=", 0.99),
        ("short_outputs<=0", "short_outputs", "<=", 0.0),
        ("TTFT_P99<=1S", "p99_ttft_ms", "<=", 1000.0),
    ],
)
def test_every_form_parses(text: str, key: str, op: str, bound: float) -> None:
    o = parse_objective(text)
    assert (o.key, o.op, o.bound) == (key, op, pytest.approx(bound))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ttft<=500ms", "unknown value; use METRIC_STAT (e.g. ttft_p95"),
        ("latency_p99<=5", "unknown value"),
        ("ttft_p95 = 500", "write NAME OP VALUE"),
        ("ttft_p95<=fast", "write NAME OP VALUE"),
        ("output_throughput>=2000ms", "is not a duration"),
        ("ttft_p95<=5%", "only error_rate, goodput_share, cached_share take %"),
    ],
)
def test_bad_objectives_are_one_line_errors(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="--slo") as err:
        parse_objective(text)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_goodput_bounds_and_their_errors() -> None:
    assert parse_goodput(["ttft:500", "tpot:40ms"]) == {"ttft_ms": 500.0, "tpot_ms": 40.0}
    assert parse_goodput(["ttft:500 e2el:9000"]) == {"ttft_ms": 500.0, "e2e_ms": 9000.0}
    for bad in (["ttf:5"], ["ttft:x"], ["ttft:0"]):
        with pytest.raises(ConfigError, match="--goodput"):
            parse_goodput(bad)


def test_a_request_is_good_when_it_succeeded_and_met_every_bound() -> None:
    rec = make_record(ttft_ms=200.0, gaps_ms=(20.0, 20.0), tokens=3)  # TPOT 20, E2E 240
    assert rec.ttft_ms and rec.tpot_ms and rec.e2e_ms
    assert rec.tpot_ms == pytest.approx(20.0) and rec.e2e_ms == pytest.approx(240.0)
    assert is_good(
        rec, {"ttft_ms": rec.ttft_ms, "tpot_ms": rec.tpot_ms, "e2e_ms": rec.e2e_ms}
    )  # at the bounds
    assert not is_good(rec, {"ttft_ms": 199.9})
    assert not is_good(rec, {"tpot_ms": 19.9})
    assert not is_good(rec, {"e2e_ms": 239.9})
    assert not is_good(dataclasses.replace(rec, outcome="http_5xx"), {"ttft_ms": 1e9})
    assert not is_good(make_record(gaps_ms=(), tokens=1), {"tpot_ms": 1e9})  # no TPOT: not met


def _aggregate(ttfts: list[float], bounds: dict[str, float], level: str = "1") -> Aggregate:
    agg = Aggregate()
    agg.goodput_bounds = bounds
    for t in ttfts:
        agg.record(make_record(ttft_ms=t), level)
    return agg


def test_verdicts_and_goodput_on_the_results() -> None:
    res = results(_aggregate([100.0] * 30 + [900.0] * 10, {"ttft_ms": 500.0}), {})
    assert res["good_requests"] == 30 and res["goodput_share"] == pytest.approx(0.75)
    assert res["request_goodput"] == pytest.approx(30 / res["duration"])
    texts = ("ttft_p50<=500ms", "ttft_p99<=500ms", "goodput_share>=75%", "error_rate<=0%")
    verdicts = evaluate([parse_objective(t) for t in texts], res)
    assert [v.passed for v in verdicts] == [True, False, True, True]
    assert verdicts[1].measured == pytest.approx(900.0, rel=1e-3)
    assert evaluate([parse_objective("server_prefill_p50<=1ms")], res)[0].measured is None  # no data: missed


def test_per_level_verdicts_give_the_highest_level_that_met_every_objective() -> None:
    agg = Aggregate()
    for level, ttft in (("1", 100.0), ("8", 200.0), ("32", 900.0), ("ramp", 50.0)):
        for _ in range(5):
            agg.record(make_record(ttft_ms=ttft), level)
    res = results(agg, {})
    missed = slo_report.attach(res, [parse_objective("ttft_p50<=500ms")], per_level=True)
    assert missed is False and res["slo"]["passed"] is True  # the run as a whole: p50 200 ms
    assert [lv["passed"] for lv in res["slo"]["levels"]] == [True, True, False, True]
    assert res["slo"]["capacity"] == "8"  # "ramp" is not a number of users
    text = "\n".join(slo_report.lines(res))
    assert "highest level meeting every objective: 8 users" in text


def test_goodput_and_verdicts_in_the_web_tab_the_html_report_and_compare(tmp_path) -> None:
    import orjson

    from llm_locust.locust import webui
    from llm_locust.locust.state import LLMState
    from llm_locust.reports import compare, html_workload

    agg = _aggregate([100.0] * 3 + [900.0], {"ttft_ms": 500.0})
    state = LLMState(None)
    state.aggregate = agg
    rows = {r.label: r.value for r in webui.table_rows(state)}
    assert rows["Good requests (--goodput)"] == 3 and rows["Goodput share (%)"] == 75.0
    assert "Good requests (--goodput)" not in {r.label for r in webui.table_rows(LLMState(None))}

    res = results(agg, {})
    slo_report.attach(res, [parse_objective("ttft_p99<=500ms"), parse_objective("goodput_share>=50%")], False)
    page = html_workload.checks_html(res)
    assert "Goodput: " in page and "75.0% of finished requests" in page
    assert '<li class="bad slo"><strong>FAIL</strong> ttft_p99&lt;=500ms' in page
    assert '<li class="slo"><strong>PASS</strong> goodput_share&gt;=50%' in page

    path = tmp_path / "a.json"
    path.write_bytes(orjson.dumps(res))
    runs = compare.load_runs([str(path), str(path)])
    labels = [m.label for m in compare.measures(runs)]
    assert "Goodput (good req/s)" in labels and "Goodput share" in labels
    plain = tmp_path / "b.json"
    plain.write_bytes(orjson.dumps(results(_aggregate([100.0], {}), {})))
    assert "Goodput share" not in [m.label for m in compare.measures(compare.load_runs([str(plain)] * 2))]
