"""End-of-run results: vLLM-keyed dict, terminal summary, JSON and CSV files."""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.catalog import (
    CATALOG,
    LEVEL,
    PERCENTILES,
    STATS,
    TOKENS_PER_S,
    TTFT,
    Metric,
    View,
    shown_in,
    stat,
)
from llm_locust.metrics.histogram import Histogram, finite
from llm_locust.metrics.records import FAILURE_CATEGORIES
from llm_locust.reports import server as server_report
from llm_locust.reports import slo as slo_report
from llm_locust.reports import workload


def iso(wall_s: float | None) -> str | None:
    if wall_s is None:
        return None
    return dt.datetime.fromtimestamp(wall_s, tz=dt.UTC).isoformat(timespec="milliseconds")


def _metric_keys(metric: Metric, h: Histogram) -> dict[str, Any]:
    """``mean_<stem>_ms`` ... ``p99_<stem>_ms``, ``count_<stem>``; nothing for an optional metric
    without samples (a server that reports no timing leaves the results as they were)."""
    if metric.optional and not h.count:
        return {}
    s = h.summary(PERCENTILES)
    out: dict[str, Any] = {metric.key(name): finite(stat(s, name)) for name in STATS}
    out[metric.key("count")] = s.count
    return out


def has_samples(res: Mapping[str, Any], metric: Metric) -> bool:
    return bool(res.get(metric.key("count")))


def shown(res: Mapping[str, Any], view: View) -> list[Metric]:
    """The metrics ``view`` shows for these results: an optional one only where it has samples."""
    return [m for m in shown_in(view) if not m.optional or has_samples(res, m)]


def results(
    agg: Aggregate, metadata: dict[str, Any], timeseries: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The run's results with vLLM's keys where vLLM has the metric, plus the distributions
    (``histograms``: equal-width bins ``[low, high, count]``) and the over-time ``timeseries``."""
    d = agg.duration_s
    c = agg.counts
    completed = c["completed"]
    out_tokens = c["total_output_tokens"]
    in_tokens = c["total_input_tokens"]
    res: dict[str, Any] = {
        "completed": completed,
        "failed": agg.failed,
        "failures": {k: agg.failures[k] for k in FAILURE_CATEGORIES if agg.failures[k]},
        "cancelled": c["cancelled"],
        "not_streamed": c["not_streamed"],
        "duration": d,
        "total_input_tokens": in_tokens,
        "total_output_tokens": out_tokens,
        "request_throughput": completed / d if d else 0.0,
        "output_throughput": out_tokens / d if d else 0.0,
        "total_token_throughput": (in_tokens + out_tokens) / d if d else 0.0,
        "concurrency": agg.busy_s / d if d else 0.0,
        "text_events": c["text_events"],
        "warmup_excluded": c["warmup_excluded"],
    }
    for metric in CATALOG:
        res.update(_metric_keys(metric, agg.hist[metric.name]))
    res["few_sample_percentiles"] = workload.few_sample_keys(agg, CATALOG, STATS)
    compared = c["usage_compared"]
    res["output_tokens_source"] = dict(agg.output_sources)
    res["input_tokens_source"] = dict(agg.input_sources)
    res["usage_vs_tokenizer"] = {
        "compared": compared,
        "disagreed": c["usage_disagreed"],
        "disagreement_rate": c["usage_disagreed"] / compared if compared else 0.0,
        "mean_abs_diff_tokens": c["usage_abs_diff"] / compared if compared else 0.0,
    }
    res.update(workload.check_results(agg))
    res.update(goodput_keys(agg))
    levels = sorted(agg.levels.items(), key=_level_key)
    res["levels"] = [_level_row(label, sub) for label, sub in levels if not sub.empty]
    res["turns"] = workload.turn_rows(agg)
    res["histograms"] = {m.bins_key: [list(b) for b in agg.hist[m.name].bins()] for m in shown_in(View.BINS)}
    res["timeseries"] = timeseries or []
    res["metadata"] = metadata
    return res


def goodput_keys(agg: Aggregate) -> dict[str, Any]:
    """vLLM's ``request_goodput`` (good requests / duration) and the share of finished requests that
    were good, where --goodput was given."""
    judged = agg.counts["goodput_judged"]
    if not judged:
        return {}
    d = agg.duration_s
    good = agg.counts["good"]
    return {"good_requests": good, "request_goodput": good / d if d else 0.0, "goodput_share": good / judged}


def level_number(label: str) -> float | None:
    """A level's size: its users ("32"), its rate ("4 req/s"), a ramp's last rate ("2-4 req/s")."""
    head = str(label).split(" ", 1)[0].rsplit("-", 1)[-1]
    try:
        return float(head)
    except ValueError:
        return None


def levels_by(levels: Sequence[Mapping[str, Any]]) -> str:
    """What the levels count: "users" (a ladder of users) or "rate" (open-loop rates)."""
    return "rate" if any(str(r["users"]).endswith("req/s") for r in levels) else "users"


def _level_key(item: tuple[str, Aggregate]) -> tuple[float, str]:
    n = level_number(item[0])
    return (math.inf if n is None else n, item[0])


def _level_row(label: str, agg: Aggregate) -> dict[str, Any]:
    d = agg.duration_s
    out_tokens = agg.counts["total_output_tokens"]
    row: dict[str, Any] = {
        "users": label,
        "completed": agg.counts["completed"],
        "failed": agg.failed,
        "cancelled": agg.counts["cancelled"],
        "duration": d,
    }
    for metric in LEVEL:
        # every statistic (an --slo judged per level may name any); the tables show level_stats
        s = agg.hist[metric.name].summary(PERCENTILES)
        row.update((metric.key(name), finite(stat(s, name))) for name in STATS)
        row[metric.key("count")] = s.count
    row["total_output_tokens"] = out_tokens
    row["output_throughput"] = out_tokens / d if d else 0.0
    row.update(workload.cache_keys(agg.counts))
    row.update(goodput_keys(agg))
    row["few_sample_percentiles"] = workload.few_sample_keys(
        agg, LEVEL, (s for m in LEVEL for s in m.level_stats)
    )
    return row


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def format_summary(res: dict[str, Any]) -> str:
    meta = res.get("metadata", {})
    w = 44
    lines = [
        "=" * 26 + " llm-locust results " + "=" * 26,
        f"{'Host / model:':<{w}}{meta.get('host')}  {meta.get('model')}",
        *_api_line(meta, w),
        f"{'Peak users:':<{w}}{meta.get('users')}",
        *(
            [f"{'Workers lost (reports up to then kept):':<{w}}{', '.join(meta['workers_lost'])}"]
            if meta.get("workers_lost")
            else []
        ),
        f"{'Successful requests:':<{w}}{res['completed']}",
        *_not_streamed_line(res, w),
        f"{'Failed requests:':<{w}}{res['failed']}",
    ]
    lines += [f"{'  ' + cat + ':':<{w}}{n}" for cat, n in res["failures"].items()]
    lines += [
        f"{'Cancelled by the end of the test:':<{w}}{res['cancelled']}",
        f"{'Duration (s):':<{w}}{res['duration']:.2f}",
        f"{'Total input tokens:':<{w}}{res['total_input_tokens']}",
        f"{'Total output tokens:':<{w}}{res['total_output_tokens']}",
        f"{'Request throughput (req/s):':<{w}}{res['request_throughput']:.2f}",
        f"{'Output token throughput (tok/s):':<{w}}{res['output_throughput']:.2f}",
        f"{'Total token throughput (tok/s):':<{w}}{res['total_token_throughput']:.2f}",
        f"{'Concurrency (mean requests in flight):':<{w}}{res['concurrency']:.2f}",
        *_load_lines(res, w),
        *_client_lines(res.get("client"), w),
        *reader_lines(meta.get("reader"), w),
        f"{'Output tokens counted by:':<{w}}"
        + (", ".join(f"{k} {v}" for k, v in res["output_tokens_source"].items()) or "-"),
    ]
    uvt = res["usage_vs_tokenizer"]
    if uvt["compared"]:
        lines.append(
            f"{'Usage vs tokenizer disagreed:':<{w}}{uvt['disagreed']}/{uvt['compared']} requests"
            f" (mean |diff| {uvt['mean_abs_diff_tokens']:.1f} tokens)"
        )
    lines += workload.check_lines(res, w)
    if res.get("not_streamed"):
        lines.append(
            f"WARNING: {res['not_streamed']} successful requests were answered with one JSON body, not a "
            'stream (the server ignored "stream": true): their TTFT equals their E2E latency and '
            "they have no ITL or TPOT"
        )
    lines += [f"NOTE: {note}" for note in meta.get("notes", [])]
    if meta.get("options", {}).get("insecure"):
        lines.append("WARNING: TLS certificates were not verified (--insecure)")
    lines += ["-" * 72, *_metric_table(res)]
    if res["levels"]:
        lines += ["", format_levels(res["levels"])]
    if workload.several_turns(res.get("turns")):
        lines += ["", workload.format_turns(res["turns"])]
    lines += workload.legend_lines(res)
    lines += slo_report.lines(res)
    lines += server_report.lines(res, w)
    lines.append("=" * 72)
    return "\n".join(lines)


_TABLE_STATS = ("mean", "median", "p90", "p95", "p99", "min", "max")


def _metric_table(res: dict[str, Any]) -> list[str]:
    """The summary's table: one row per metric with samples. The label column is 20 wide, as it
    always was; the server's figures, when there are any, widen it to fit their longer labels."""
    rows = [m for m in shown_in(View.SUMMARY) if has_samples(res, m)]
    w = max([20] + [len(m.display) + 2 for m in rows if m.optional])
    head = f"{'metric':<{w}}" + "".join(f"{k:>10}" for k in _TABLE_STATS)
    flagged = set(res.get("few_sample_percentiles") or ())
    return [head] + [
        f"{m.display:<{w}}"
        + "".join(workload.marked(_fmt(res[m.key(k)]), 10, m.key(k) in flagged) for k in _TABLE_STATS)
        for m in rows
    ]


def _api_line(meta: dict[str, Any], w: int) -> list[str]:
    """Which API flavor the run used and how it was chosen (results files before flavors: none)."""
    api = meta.get("api")
    if not api:
        return []
    by = meta.get("api_detected_by")
    return [f"{'API flavor:':<{w}}{api}" + (f" (from {by})" if by else "")]


def _not_streamed_line(res: dict[str, Any], w: int) -> list[str]:
    n = res.get("not_streamed")
    return [f"{'  of which not streamed (one JSON body):':<{w}}{n}"] if n else []


#: Open loop: a schedule lag p99 above this means the client did not keep the schedule (the
#: latencies from the send then hide part of what an arrival waited: coordinated omission).
SCHEDULE_LAG_WARN_MS = 10.0


def _load_lines(res: dict[str, Any], w: int) -> list[str]:
    """The open loop's schedule (its rates, how well it was kept) and what --warmup left out."""
    options = res.get("metadata", {}).get("options", {})
    lines = []
    if options.get("load") == "open":
        rates = ", ".join(options.get("request_rate_levels") or [])
        burst = options.get("burstiness")
        cap = options.get("max_concurrency")
        text = f"{rates} (burstiness {burst:g}" + (f", at most {cap} in flight)" if cap else ")")
        lines.append(f"{'Open loop, arrivals at:':<{w}}{text}")
        lag = res.get("p99_schedule_lag_ms")
        if lag is not None and lag > SCHEDULE_LAG_WARN_MS:
            lines.append(
                f"WARNING: the client did not keep the schedule: schedule lag p99 {lag:.1f} ms (> "
                f"{SCHEDULE_LAG_WARN_MS:g}); see 'TTFT from schedule' for what arrivals waited in all"
                + (" (--max-concurrency holds due arrivals)" if cap else "")
            )
    if res.get("warmup_excluded"):
        lines.append(f"{'Warm-up, left out of the statistics:':<{w}}{res['warmup_excluded']} requests")
    return lines


def _client_lines(client: dict[str, Any] | None, w: int) -> list[str]:
    """The load generator's own health (see llm_locust.locust.health), and a warning when it was busy."""
    if not client:
        return []
    lag = client["loop_lag_ms"]
    lines = []
    if lag["count"]:
        lines.append(f"{'Client event-loop lag p50/p99/max (ms):':<{w}}{lag['p50']:.2f} / {lag['p99']:.2f} / "
                     f"{lag['max']:.2f}")  # fmt: skip
    if client["cpu_share_max"] is not None:
        lines.append(f"{'Client CPU (busiest process, of a core):':<{w}}{client['cpu_share_max']:.0%}")
    readers = client.get("readers")
    if readers:
        text = " · ".join(f"{name} {n:,}" for name, n in readers.items())
        lines.append(f"{'Responses read by (reader, count):':<{w}}{text}")
    note = warning(client)
    return [*lines, note] if note else lines


_READER_KINDS = {
    "compiled": "C, llm_locust._native",
    "reactor": "Python",
    "greenlet": "Python, a greenlet per stream",
}


def reader_lines(reader: dict[str, Any] | None, w: int) -> list[str]:
    """Which stream reader the run used (``metadata.reader``), and a warning when not the compiled one."""
    if not reader:  # a results file from before the key existed
        return []
    used = reader["in_use"]
    n, without = reader.get("processes", 1), reader.get("without_compiled", 0)
    where = f" in {without} of {n} processes" if n > 1 and used != "compiled" else ""
    lines = [f"{'Stream reader:':<{w}}{used} ({_READER_KINDS.get(used, '?')}){where}"]
    if used == "compiled":
        return lines
    if not reader["compiled_built"]:
        why = "is not built (no C compiler when llm-locust was installed; reinstall with gcc present)"
    else:
        why = f"was not used (LLM_LOCUST_READER={reader['requested']})"
    return [*lines, f"WARNING: the compiled stream reader {why}: fewer streams per client core"]


def format_levels(levels: list[dict[str, Any]]) -> str:
    """The seed benchmark's comparison: one row per number of users (or request rate)."""
    by = levels_by(levels)
    width = max([6, *(len(str(r["users"])) + 1 for r in levels)])
    head = (
        f"{by:>{width}}{'ok':>7}{'fail':>6}{'cut':>5}  {'per-stream tok/s min/median/max':<32}"
        f"{'TTFT p50':>10}{'TTFT p99':>10}{'aggregate tok/s':>17}"
    )
    grouped = "the number of users when they were sent" if by == "users" else "the rate they were due at"
    lines = [f"Per level (requests grouped by {grouped})", head]
    for r in levels:
        flagged = set(r.get("few_sample_percentiles") or ())
        tps = " / ".join(_fmt(r[TOKENS_PER_S.key(k)], 1) for k in ("min", "median", "max"))
        ttft = "".join(
            workload.marked(_fmt(r[TTFT.key(k)], 1), 10, TTFT.key(k) in flagged) for k in ("median", "p99")
        )
        lines.append(
            f"{r['users']:>{width}}{r['completed']:>7}{r['failed']:>6}{r['cancelled']:>5}  {tps:<32}"
            f"{ttft}{_fmt(r['output_throughput'], 1):>17}"
        )
    return "\n".join(lines)


def write_json(path: str, res: dict[str, Any]) -> None:
    _ensure_dir(path)
    with open(path, "wb") as f:
        f.write(orjson.dumps(res, option=orjson.OPT_INDENT_2))


def write_csv(path: str, res: dict[str, Any]) -> None:
    """One row per metric: count, mean, median, std, min, max, p90, p95, p99."""
    _ensure_dir(path)
    cols = ("count", "mean", "median", "std", "min", "max", "p90", "p95", "p99")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("metric", "unit", *cols))
        for m in shown(res, View.CSV):
            row = [res[m.key(k)] for k in cols]
            writer.writerow((m.stem, m.unit, *("" if v is None else v for v in row)))


def _ensure_dir(path: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)


#: The client-health thresholds of the summary's warning (llm_locust.locust.health measures).
LAG_P99_WARN_MS = 10.0
CPU_SHARE_WARN = 0.85


def warning(client: dict[str, Any]) -> str | None:
    """One line when the client may have measured itself, else None."""
    lag = client.get("loop_lag_ms", {}).get("p99")
    cpu = client.get("cpu_share_max")
    reasons = []
    if lag is not None and lag > LAG_P99_WARN_MS:
        reasons.append(f"event-loop lag p99 {lag:.1f} ms > {LAG_P99_WARN_MS:g} ms")
    if cpu is not None and cpu > CPU_SHARE_WARN:
        reasons.append(f"a process used {cpu:.0%} of a core")
    if not reasons:
        return None
    return (
        "WARNING: the load generator was busy (" + "; ".join(reasons) + "): latencies include its own "
        "delay. Add worker processes (--processes) or hosts."
    )
