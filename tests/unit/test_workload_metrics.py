"""What the workload asked for against what happened: per-turn aggregates that merge exactly, input
tokens against the samples', outputs short of what they asked for (AIPerf's rule), the prefix
cache's share, and percentiles flagged where they rest on too few samples."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from fakes import FakeClock, make_record

from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.catalog import FEW_SAMPLES_LEGEND, TTFT, TURN
from llm_locust.metrics.records import RequestRecord, RequestTimer
from llm_locust.reports import compare, compare_html, summary
from llm_locust.reports import html as html_report


def rec(turn: int = 1, ttft_ms: float = 200.0, **kw: Any) -> RequestRecord:
    return dataclasses.replace(make_record(ttft_ms=ttft_ms), turn=turn, **kw)


def results_of(recs: list[RequestRecord], level: str | None = None) -> dict[str, Any]:
    agg = Aggregate()
    for r in recs:
        agg.record(r, level=level)
    return summary.results(agg, {"host": "h", "model": "m"})


def conversation_records(n: int, seed: int = 3) -> list[RequestRecord]:
    """``n`` requests over turns 1-3: later turns faster and mostly served from the cache."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        turn = 1 + k % 3
        out.append(
            rec(
                turn,
                ttft_ms=rng.uniform(150, 250) / turn,
                expected_input_tokens=7 - (k % 4 == 0) * 3,
                requested_output_tokens=(4, 100)[k % 5 == 0],
                finish_reason=("stop", "length")[k % 2],
                cached_input_tokens=None if k % 7 == 0 else (0 if turn == 1 else 5),
            )
        )
    return out


# -- merging -----------------------------------------------------------------------------------
def test_per_turn_aggregates_merge_exactly_over_wire_deltas_from_two_workers() -> None:
    recs = conversation_records(120)
    whole, workers, master = Aggregate(), (Aggregate(), Aggregate()), Aggregate()
    for k, r in enumerate(recs):
        whole.record(r, level=str(1 + k % 2))
        workers[k % 2].record(r, level=str(1 + k % 2))
        if k % 25 == 24:  # a report now and then, as workers send them
            for w in workers:
                # through msgpack as Locust sends it (its default refuses map keys that are not text)
                master.merge_wire(msgpack.unpackb(msgpack.packb(w.take_delta())))
    for w in workers:
        master.merge_wire(msgpack.unpackb(msgpack.packb(w.take_delta())))
        assert w.empty and w.take_delta()["turns"] == {}  # nothing is sent twice
    assert sorted(master.turns) == sorted(whole.turns) == [1, 2, 3]
    for turn, sub in whole.turns.items():
        assert sub.metrics == TURN
        for m in TURN:
            assert master.turns[turn].hist[m.name].summary() == sub.hist[m.name].summary(), (turn, m.name)
        assert master.turns[turn].counts == sub.counts
    assert master.input_diffs == whole.input_diffs and master.short_by_finish == whole.short_by_finish
    assert summary.results(master, {}) == summary.results(whole, {})
    assert not master.turns[1].turns and not master.levels["1"].turns  # only the run's aggregate has turns


def test_reset_drops_the_turns() -> None:
    agg = Aggregate()
    agg.record(rec(turn=2))
    agg.reset()
    assert agg.empty and agg.turns == {}
    assert summary.results(agg, {})["turns"] == []


# -- the checks' counters ----------------------------------------------------------------------
def test_input_tokens_against_the_samples() -> None:
    recs = [rec(expected_input_tokens=7) for _ in range(5)]  # make_record's server counted 7
    recs += [rec(expected_input_tokens=-2) for _ in range(3)]  # a chat template's +9
    recs += [rec(expected_input_tokens=3)]  # +4
    recs += [rec(expected_input_tokens=None)]  # the sample did not say: not checked
    recs += [dataclasses.replace(rec(expected_input_tokens=0), input_tokens_source="tokenizer")]  # not usage
    res = results_of(recs)
    assert res["input_tokens_checked"] == 9 and res["input_tokens_mismatched"] == 4
    assert res["input_tokens_mean_diff"] == pytest.approx((3 * 9 + 4) / 4)
    assert res["input_tokens_common_diff"] == 9
    text = summary.format_summary(res)
    assert f"{'Input tokens vs samples:':<44}4/9 differ (mean +7.8, most often +9)" in text
    none_differ = results_of([rec(expected_input_tokens=7)])
    assert none_differ["input_tokens_mean_diff"] == 0.0 and none_differ["input_tokens_common_diff"] is None
    assert "Input tokens vs samples:                    0/1 differ\n" in summary.format_summary(none_differ)


@pytest.mark.parametrize(
    ("requested", "output", "short"),
    [
        (100, 94, True),  # 6 > min(5, 50)
        (100, 95, False),  # 5 is not more than 5
        (100, 100, False),
        (10, 9, True),  # 1 > 0.5
        (2000, 1949, True),  # 51 > min(100, 50)
        (2000, 1950, False),
        (None, 0, False),  # asked for no number
    ],
)
def test_short_outputs_by_aiperfs_rule_at_its_edges(requested: int | None, output: int, short: bool) -> None:
    r = rec(requested_output_tokens=requested, finish_reason="stop")
    r = dataclasses.replace(r, output_tokens=output)
    assert r.short_output is short
    res = results_of([r])
    assert res["short_outputs"] == int(short)
    assert res["output_tokens_checked"] == int(requested is not None)
    assert res["short_outputs_by_finish"] == ({"stop": 1} if short else {})


def test_short_outputs_counted_by_finish_reason_and_warned() -> None:
    recs = [rec(requested_output_tokens=100, finish_reason="stop") for _ in range(3)]
    recs += [rec(requested_output_tokens=100), rec(requested_output_tokens=4, finish_reason="length")]
    failed = RequestTimer(FakeClock()).finish("http_5xx", "HTTP 500")
    recs.append(dataclasses.replace(failed, requested_output_tokens=100))  # a failure is never short
    res = results_of(recs)
    assert res["short_outputs"] == 4 and res["output_tokens_checked"] == 5
    assert res["short_outputs_by_finish"] == {"stop": 3, "none": 1}
    assert (
        "WARNING: 4 of 5 requests ended more than min(5 %, 50) tokens short of what they asked for "
        "(finish: stop 3, none 1): throughput figures compare unlike work; use --ignore-eos or --min-tokens"
    ) in summary.format_summary(res)
    page = html_report.render(res)
    assert 'class="bad short-outputs"' in page and "4 of 5 requests ended more than min(5 %, 50)" in page


def test_prefix_cache_share_overall_per_turn_and_per_level() -> None:
    recs = [rec(1, cached_input_tokens=0), rec(2, cached_input_tokens=7), rec(2, cached_input_tokens=None)]
    res = results_of(recs, level="4")
    # cached / input tokens of the requests that reported it: 7 / (7 + 7)
    assert res["cached_input_tokens"] == 7 and res["cache_reported"] == 2
    assert res["cached_share"] == pytest.approx(0.5)
    assert [t["cached_share"] for t in res["turns"]] == [0.0, pytest.approx(1.0)]
    assert res["levels"][0]["cached_share"] == pytest.approx(0.5)
    text = summary.format_summary(res)
    assert f"{'Prefix cache:':<44}50.0 % of prompt tokens cached (servers that report it)" in text
    nothing = results_of([rec(2)], level="4")
    assert nothing["cached_input_tokens"] is None and nothing["cached_share"] is None
    assert nothing["turns"][0]["cached_share"] is None and nothing["levels"][0]["cached_share"] is None


# -- few-sample percentiles --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "p95", "p99"), [(19, True, True), (20, False, True), (99, False, True), (100, False, False)]
)
def test_percentiles_flagged_exactly_below_their_thresholds(n: int, p95: bool, p99: bool) -> None:
    res = results_of([rec(1 + k % 2, ttft_ms=100.0 + k) for k in range(n)], level="1")
    flagged = set(res["few_sample_percentiles"])
    assert ("p95_ttft_ms" in flagged, "p99_ttft_ms" in flagged) == (p95, p99)
    assert "p90_ttft_ms" not in flagged and "median_ttft_ms" not in flagged
    assert ("p99_itl_ms" in flagged) == (3 * n < 100)  # ITL counts gaps: 3 a request
    assert ("p99_ttft_ms" in res["levels"][0]["few_sample_percentiles"]) == p99
    for turn in res["turns"]:  # each turn has half the requests
        count = turn["count_ttft"]
        assert ("p99_ttft_ms" in turn["few_sample_percentiles"]) == (count < 100)
        assert ("p95_ttft_ms" in turn["few_sample_percentiles"]) == (count < 20)
    text = summary.format_summary(res)
    ttft_row = next(ln for ln in text.splitlines() if ln.startswith("TTFT (ms)"))
    cells = [ttft_row[20 + 10 * i : 30 + 10 * i] for i in range(7)]  # mean median p90 p95 p99 min max
    assert [c.endswith("*") for c in cells] == [False, False, False, p95, p99, False, False]
    assert FEW_SAMPLES_LEGEND in text  # p99 of the turns' TTFT at least: each has half the requests
    page = html_report.render(res)
    assert FEW_SAMPLES_LEGEND in page and page.count('class="few"') >= int(p95) + int(p99)


# -- reports show the new lines only when relevant ---------------------------------------------
def test_a_plain_run_shows_none_of_it() -> None:
    res = results_of([rec() for _ in range(120)], level="2")
    assert res["few_sample_percentiles"] == [] and res["levels"][0]["few_sample_percentiles"] == []
    assert [t["turn"] for t in res["turns"]] == [1] and res["turns"][0]["completed"] == 120
    assert res["input_tokens_checked"] == res["short_outputs"] == res["cache_reported"] == 0
    assert res["input_tokens_mean_diff"] is None and res["cached_share"] is None
    text = summary.format_summary(res)
    for absent in ("Input tokens vs samples", "Prefix cache", "WARNING", "Per turn", "*"):
        assert absent not in text, absent
    page = html_report.render(res)
    for absent in ('class="checks"', 'id="turns"', 'class="few"', FEW_SAMPLES_LEGEND):
        assert absent not in page, absent


def test_turns_table_in_the_summary_and_the_html_report() -> None:
    res = results_of(conversation_records(300))
    assert [t["turn"] for t in res["turns"]] == [1, 2, 3]
    assert sum(t["completed"] for t in res["turns"]) == 300
    assert res["turns"][0]["median_ttft_ms"] > res["turns"][2]["median_ttft_ms"]
    lines = summary.format_summary(res).splitlines()
    start = lines.index("Per turn (requests grouped by the conversation turn they sent)")
    assert lines[start + 1].split() == [
        "turn",
        "ok",
        "fail",
        "TTFT",
        "p50",
        "TTFT",
        "p99",
        "TPOT",
        "p50",
        "cached",
    ]
    row = lines[start + 2].split()
    assert row[:3] == ["1", "100", "0"] and row[-2:] == ["0.0", "%"]
    assert lines[start + 3].split()[-2:] == ["71.4", "%"]  # 5 of 7 prompt tokens cached
    page = html_report.render(res)
    assert '<h2 id="turns">Per turn</h2>' in page and '<a href="#turns">Per turn</a>' in page
    assert "<th>Prompt tokens cached</th>" in page and "<td>71.4 %</td>" in page
    # results files from before turns render as they did
    old = {k: v for k, v in res.items() if k != "turns"}
    assert "Per turn" not in summary.format_summary(old) and 'id="turns"' not in html_report.render(old)


# -- compare ------------------------------------------------------------------------------------
def write(tmp_path: Path, name: str, res: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_bytes(orjson.dumps(res))
    return str(path)


def test_compare_has_a_ttft_row_per_turn_when_every_run_has_turns(tmp_path: Path) -> None:
    cached = results_of(conversation_records(60))
    uncached = results_of([dataclasses.replace(r, ttft_ms=200.0) for r in conversation_records(60)])
    runs = compare.load_runs([write(tmp_path, "cold", uncached), write(tmp_path, "warm", cached)])
    rows = [r for r in compare.metric_rows(runs) if r.metric.group == "turns"]
    assert [r.metric.label for r in rows] == [f"TTFT p50, turn {i} (ms)" for i in (1, 2, 3)]
    assert rows[2].values == (
        uncached["turns"][2][TTFT.key("median")],
        cached["turns"][2][TTFT.key("median")],
    )
    assert rows[2].verdict(1) == "better"
    text = compare.format_text(runs)
    assert re.search(r"\nTTFT p50, turn 3 \(ms\) +lower ", text)
    assert "TTFT p50, turn 3 (ms)" in compare_html.build_html(runs)
    single = results_of([rec() for _ in range(5)])
    old = {k: v for k, v in cached.items() if k != "turns"}
    for other in (single, old):  # one turn each, or a file from before turns: no turn rows
        runs = compare.load_runs([write(tmp_path, "a", other), write(tmp_path, "b", single)])
        assert "turn 1" not in compare.format_text(runs)
    runs = compare.load_runs([write(tmp_path, "a", old), write(tmp_path, "b", cached)])
    assert "turn 1" not in compare.format_text(runs)
