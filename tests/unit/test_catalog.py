"""The metric catalog: every metric shows in each view it claims and in no other, the server's own
timings only when it reported them (and the open loop's only in an open-loop run), and their
histograms merge exactly like ours."""

from __future__ import annotations

import dataclasses
import html
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from llm_locust.locust import webui
from llm_locust.locust.state import LLMState
from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.catalog import (
    CATALOG,
    STATS,
    TOKENS_PER_S,
    TTFT,
    Metric,
    View,
    shown_in,
)
from llm_locust.metrics.records import RequestRecord, RequestTimer, ServerTimings
from llm_locust.metrics.timeseries import Point, TimeSeries
from llm_locust.reports import compare, compare_html, summary
from llm_locust.reports import html as html_report

OPTIONAL = [m for m in CATALOG if m.optional]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def record(rng: random.Random, start_s: float, server: bool, tokens: int = 12) -> RequestRecord:
    """A streamed request timed on a fake clock; with ``server``, every optional metric's source
    too: the server's own timings and an open-loop schedule (the request sent after its due time)."""
    clock = Clock(start_s)
    timer = RequestTimer(clock)
    timer.headers(start_s + 0.002)
    ttft_ms = rng.uniform(40.0, 120.0)
    at = start_s + ttft_ms / 1000
    for i in range(tokens):
        timer.text(at, visible=i > 0)
        at += rng.uniform(8.0, 12.0) / 1000
    clock.t = at
    rec = timer.finish("ok", output_tokens=tokens, output_tokens_source="usage", input_tokens=9)
    if not server:
        return rec
    timings = ServerTimings(
        prefill_ms=ttft_ms * rng.uniform(0.5, 0.9), decode_ms=(tokens - 1) * 9.0, decode_tokens=tokens - 1
    )
    return dataclasses.replace(rec, server=timings, scheduled_at_s=start_s - rng.uniform(0.0, 0.003))


def aggregate(server: bool, n: int = 30, seed: int = 1, levels: tuple[str, ...] = ("1", "4")) -> Aggregate:
    rng = random.Random(seed)
    agg = Aggregate()
    for k in range(n):
        agg.record(record(rng, 1000.0 + k * 0.1, server), level=levels[k % len(levels)])
    return agg


def meta(**kw: Any) -> dict[str, Any]:
    base = {"host": "http://gpu:8080", "model": "m", "users": 4, "mode": "local", "options": {}}
    return {**base, "start_time": None, "end_time": None, **kw}


def results(server: bool, **kw: Any) -> dict[str, Any]:
    agg = aggregate(server)
    ts = TimeSeries()
    rng = random.Random(5)
    for k in range(3):
        ts.record(record(rng, 2000.0 + k, server))
        ts.sample(1_700_000_000.0 + 2 * k, users=4, in_flight=1)
    return summary.results(agg, meta(**kw), ts.to_json())


def summary_table(text: str) -> list[str]:
    """The labels of the summary's metric table (each row: the label, then 7 columns of 10)."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("metric "))
    rows = []
    for ln in lines[start + 1 :]:
        if not ln.strip() or ln.startswith("="):
            break
        rows.append(ln[:-70].strip())
    return rows


def web_rows(agg: Aggregate) -> list[str]:
    state = LLMState(None)
    state.aggregate = agg
    return [r.label for r in webui.table_rows(state)]


def compare_runs(tmp_path: Path, *res: dict[str, Any]) -> list[compare.Run]:
    paths = []
    for i, r in enumerate(res):
        path = tmp_path / f"run{i}.json"
        path.write_bytes(orjson.dumps(r))
        paths.append(str(path))
    return compare.load_runs(paths)


def claimed(view: View, server: bool) -> list[Metric]:
    return [m for m in shown_in(view) if server or not m.optional]


# -- the catalog itself ----------------------------------------------------------------------
def test_names_keys_and_accessors_are_unique_and_valid() -> None:
    assert len({m.name for m in CATALOG}) == len({m.stem for m in CATALOG}) == len(CATALOG)
    assert {m.stem for m in CATALOG} >= {"ttft", "tpot", "itl", "e2el"}  # vLLM's stems
    rec = record(random.Random(0), 10.0, server=True)
    for m in CATALOG:
        assert m.unit in ("ms", "tok/s") and m.better in ("lower", "higher") and m.definition
        values = m.values(rec)
        assert len(values) >= 1 and all(isinstance(v, float) for v in values), m.name
    assert len(next(m for m in CATALOG if m.pooled).values(rec)) == 11  # ITL: one per gap


def test_a_metric_that_claims_a_view_without_its_details_is_refused() -> None:
    with pytest.raises(ValueError, match=r"View\.LEVEL in views"):
        dataclasses.replace(TTFT, level_stats=())
    with pytest.raises(ValueError, match="no attribute 'ttft_s'"):
        dataclasses.replace(TTFT, accessor="ttft_s")


def test_window_fields_are_the_points_latency_fields() -> None:
    fields = {f.name for f in dataclasses.fields(Point)}
    window = {name for m in shown_in(View.WINDOW) for _p, name in m.window}
    fixed = {"time_s", "users", "in_flight", "requests_per_s", "failures_per_s", "output_tokens_per_s"}
    server = {"server_running", "server_waiting", "server_kv_cache_usage"}  # --server-metrics
    assert fields == window | fixed | server | {"completed", "failed", "level", "target_rate_per_s", "warmup"}


# -- every view shows what the catalog says, and nothing else --------------------------------
@pytest.mark.parametrize("server", [False, True], ids=["no-server-timings", "server-timings"])
def test_each_view_shows_exactly_the_metrics_that_claim_it(server: bool, tmp_path: Path) -> None:
    res = results(server)
    # JSON: every statistic of every metric (an optional one only with samples)
    for m in CATALOG:
        keys = [m.key(s) for s in (*STATS, "count")]
        assert all(k in res for k in keys) == (server or not m.optional), m.name
        assert any(k in res for k in keys) == (server or not m.optional), m.name
    # the terminal summary's table (and the HTML report's) and the CSV
    assert summary_table(summary.format_summary(res)) == [m.display for m in claimed(View.SUMMARY, server)]
    page = html_report.render(res)
    for m in CATALOG:
        assert (f"<td>{html.escape(m.definition)}</td>" in page) == (m in claimed(View.SUMMARY, server)), (
            m.name
        )
    csv_path = tmp_path / "llm.csv"
    summary.write_csv(str(csv_path), res)
    rows = csv_path.read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [m.stem for m in claimed(View.CSV, server)]
    # per level (every statistic of a level metric, for --slo-per-level; the tables show its
    # level_stats), over time, distributions
    for level in res["levels"]:
        stats = {m.key(s) for m in CATALOG for s in STATS}
        expected = {m.key(s) for m in shown_in(View.LEVEL) for s in STATS}
        assert set(level) & stats == expected
    assert set(res["timeseries"][0]) >= {name for m in shown_in(View.WINDOW) for _p, name in m.window}
    assert list(res["histograms"]) == [m.bins_key for m in shown_in(View.BINS)]
    for m in CATALOG:
        assert (f'id="hist-{m.stem}"' in page) == m.shown_in(View.REPORT_DISTRIBUTION), m.name
        assert (f'id="ts-{m.stem}"' in page) == m.shown_in(View.OVER_TIME), m.name
        assert (f'"chart-{m.stem}"' in webui.charts_html("m")) == m.shown_in(View.OVER_TIME), m.name
    # the web UI's LLM tab: the catalog's rows first, in its order
    agg = aggregate(server)
    labels = web_rows(agg)
    web = [f"{m.web_name} ({m.unit})" for m in claimed(View.WEB, server)]
    assert (
        labels[: len(web)] == web and labels[len(web)] == "Output throughput, all streams, last 10 s (tok/s)"
    )
    # compare: a row per compare statistic, and the overlaid distributions
    runs = compare_runs(tmp_path, res, results(server))
    labels = [row.metric.label for row in compare.metric_rows(runs)]
    expected_rows = [m.stat_label(s) for m in claimed(View.COMPARE, server) for s in m.compare_stats]
    assert labels[len(compare.RUN_MEASURES) :] == expected_rows
    text = compare.format_text(runs)
    assert all(f"\n{label}  " in text for label in expected_rows)
    titles = [layout["title"]["text"] for _id, _t, layout in compare_html.histogram_figures(runs)]
    assert titles == [f"{m.label} distribution" for m in shown_in(View.COMPARE_DISTRIBUTION)]


def test_no_server_timings_leave_every_report_as_it_was() -> None:
    """A server that reports nothing: no key, row or column width changes for the server's figures."""
    res = results(server=False)
    assert not any(k.endswith(("server_prefill_ms", "_share_ms", "server_decode_tokens_per_s")) for k in res)
    text = summary.format_summary(res)
    assert "server" not in text.lower()
    head = next(ln for ln in text.splitlines() if ln.startswith("metric "))
    assert head == f"{'metric':<20}" + "".join(
        f"{k:>10}" for k in ("mean", "median", "p90", "p95", "p99", "min", "max")
    )
    assert "TTFT (ms)           " in text  # the label column is 20 wide, as it always was
    assert not any("server" in label for label in web_rows(aggregate(server=False)))


def test_server_timings_fill_their_rows() -> None:
    res = results(server=True)
    text = summary.format_summary(res)
    rows = summary_table(text)
    assert rows[-7:] == [
        "Server prefill (ms)",
        "Server decode tok/s (tok/s)",
        "TTFT − server prefill (ms)",
        "Server time per token (ms)",
        "Schedule lag (ms)",
        "TTFT from schedule (ms)",
        "E2E from schedule (ms)",
    ]
    assert res["count_server_prefill"] == res["count_ttft"] == 30
    assert res["mean_server_decode_tokens_per_s"] == pytest.approx(1000 / 9.0, rel=1e-3)
    # TTFT minus prefill is what remains of our TTFT: between 10 % and 50 % of it here
    assert 0.1 * res["mean_ttft_ms"] < res["mean_client_ttft_share_ms"] < 0.5 * res["mean_ttft_ms"]
    assert res["mean_server_tpot_ms"] == pytest.approx(9.0, abs=0.01)
    # sent 0-3 ms after its due time: the lag, and TTFT / E2E counted from the due time
    assert res["count_schedule_lag"] == 30 and 0 < res["mean_schedule_lag_ms"] < 3
    lag = res["mean_schedule_lag_ms"]
    assert res["mean_ttft_from_schedule_ms"] == pytest.approx(res["mean_ttft_ms"] + lag, rel=1e-3)
    assert res["mean_e2el_from_schedule_ms"] == pytest.approx(res["mean_e2el_ms"] + lag, rel=1e-3)
    # the table widens to the longest label, every row alike
    lengths = {len(ln) for ln in text.splitlines()[-100:] if ln[:-70].strip() in rows}
    assert len(lengths) == 1


def test_only_runs_with_samples_bring_the_server_rows_to_compare(tmp_path: Path) -> None:
    runs = compare_runs(tmp_path, results(server=False), results(server=True))
    text = compare.format_text(runs)
    row = next(ln for ln in text.splitlines() if ln.startswith("Server prefill mean (ms)"))
    assert row.split()[5] == "-"  # the first run (no server timings) has no value there
    runs = compare_runs(tmp_path, results(server=False), results(server=False))
    assert "Server prefill" not in compare.format_text(runs)


# -- merging -----------------------------------------------------------------------------------
def test_merged_aggregates_equal_one_aggregate_of_every_record() -> None:
    rng = random.Random(7)
    recs = [record(rng, 1000.0 + 0.05 * k, server=k % 3 != 0) for k in range(60)]
    whole, part_a, part_b, master, local = Aggregate(), Aggregate(), Aggregate(), Aggregate(), Aggregate()
    for k, rec in enumerate(recs):
        whole.record(rec, level=str(k % 2))
        (part_a if k % 4 else part_b).record(rec, level=str(k % 2))
    local.merge(part_a)
    local.merge(part_b)
    master.merge_wire(part_a.take_delta())
    master.merge_wire(part_b.take_delta())
    for m in CATALOG:
        assert master.hist[m.name].count == whole.hist[m.name].count > 0, m.name
        assert master.hist[m.name].summary() == whole.hist[m.name].summary(), m.name
        assert local.hist[m.name].summary() == whole.hist[m.name].summary(), m.name
    assert summary.results(master, meta()) == summary.results(whole, meta())
    assert whole.hist["server_prefill"].count == 40  # two in three requests had server timings


# -- the API flavor in the reports' run information --------------------------------------------
def test_api_flavor_is_shown_where_the_results_have_it(tmp_path: Path) -> None:
    with_api = results(False, api="ollama-chat", api_detected_by="GET /api/tags")
    text = summary.format_summary(with_api)
    lines = text.splitlines()
    host = next(i for i, ln in enumerate(lines) if ln.startswith("Host / model:"))
    assert lines[host + 1] == f"{'API flavor:':<44}ollama-chat (from GET /api/tags)"
    assert "<td>API flavor</td><td>ollama-chat (from GET /api/tags)</td>" in html_report.render(with_api)
    old = results(False)
    assert "API flavor" not in summary.format_summary(old) and "API flavor" not in html_report.render(old)
    runs = compare_runs(tmp_path, old, with_api)
    header, first, second = compare.run_lines(runs)[:3]
    assert header.split()[:5] == ["run", "file", "host", "model", "api"]
    assert "ollama-chat (from GET /api/tags)" in second and " - " in first
    assert "<th>api</th>" in compare_html.build_html(runs)
    runs = compare_runs(tmp_path, old, results(False))
    assert " api " not in compare.run_lines(runs)[0] and "<th>api</th>" not in compare_html.build_html(runs)


def test_level_rows_hold_the_level_stats_of_the_catalog() -> None:
    res = results(server=True)
    assert [r["users"] for r in res["levels"]] == ["1", "4"]
    for r in res["levels"]:
        assert r[TOKENS_PER_S.key("min")] <= r[TOKENS_PER_S.key("median")] <= r[TOKENS_PER_S.key("max")]
        assert r[TTFT.key("median")] <= r[TTFT.key("p99")]
        assert not any("server" in key for key in r)
