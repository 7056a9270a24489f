"""The ``--llm-html`` report: one self-contained HTML file rendered from the results dict.

The input is what ``--llm-json`` writes, so a saved ``results.json`` renders the same page later
(``llm-locust report``). plotly.js is inlined: the file opens from disk with no network. Text goes
through :func:`html.escape`, chart data through :func:`charts.to_script_json`; a chart with no values
is replaced by a "no data" note rather than drawn empty.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from llm_locust.metrics.catalog import ITL, TOKENS_PER_S, TTFT, Metric, View, shown_in
from llm_locust.metrics.records import FAILURE_MEANINGS
from llm_locust.metrics.timeseries import DEFAULT_WINDOW_S
from llm_locust.reports import charts, html_workload
from llm_locust.reports import server as server_report
from llm_locust.reports.html_parts import e as _e
from llm_locust.reports.html_parts import fmt as _fmt
from llm_locust.reports.html_parts import legend, mark
from llm_locust.reports.html_parts import no_data as _no_data
from llm_locust.reports.html_parts import table as _table
from llm_locust.reports.summary import has_samples, levels_by

_STATS = ("mean", "median", "p90", "p95", "p99", "min", "max")


#: Option names whose string values are never shown, whatever produced the results file.
_SECRET_NAME = re.compile(r"(^|_)(api_?key|secret|password|authorization|bearer)$", re.IGNORECASE)

_EXTRA_STYLE = """
header .host { color: #555; margin: 0 0 8px; }
nav { font-size: 0.9em; margin: 6px 0 12px; } nav a { margin-right: 12px; color: #1f77b4; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card .v { font-size: 1.35em; font-weight: 600; } .card .l { color: #666; font-size: 0.8em; }
.bad { color: #c62828; } .ok { color: #2e7d32; }
.meta td:first-child { color: #555; } .meta td { text-align: left; }
.nodata { border: 1px dashed #bbb; border-radius: 6px; padding: 24px; color: #777;
          text-align: center; background: #fafafa; }
table.summary td:last-child, table.summary th:last-child { text-align: left; color: #666; }
table.failures td:last-child, table.failures th:last-child, .meta th { text-align: left; }
.few { color: #b26a00; font-weight: 600; } .checks { margin: 6px 0 10px; padding-left: 20px; }
.grid3 { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 8px; }
"""


def render(results: Mapping[str, Any]) -> str:
    """The whole report page for one results dict (as written by ``--llm-json``)."""
    meta: Mapping[str, Any] = results.get("metadata") or {}
    scripts: list[str] = []
    sections = [
        _header(results, meta),
        _summary_section(results),
        _over_time_section(results.get("timeseries") or [], meta, scripts),
        server_report.html_section(results),
        _histogram_section(results, scripts),
        _failures_section(results, scripts),
        _ladder_section(results.get("levels") or [], scripts),
        html_workload.turns_section(results),
        _options_section(meta),
    ]
    title = f"llm-locust report: {meta.get('model') or '?'} @ {meta.get('host') or '?'}"
    body = f"<style>{_EXTRA_STYLE}</style>\n" + "\n".join(sections)
    return charts.page(title, body, "\n".join(scripts), plotly_src=None)


def write_html(path: str, results: Mapping[str, Any]) -> None:
    """Write :func:`render`'s page to ``path`` (UTF-8), creating its directory if needed."""
    page = render(results)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)


# -- formatting --------------------------------------------------------------------------------
def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _show_time(text: Any) -> str:
    t = _parse_time(text)
    if t is None:
        return "–"
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _chart(
    scripts: list[str], div_id: str, traces: list[dict[str, Any]], layout: dict[str, Any], empty: str
) -> str:
    """The chart's div (its JS appended to ``scripts``), or a note when no trace has a value."""
    if not any(v is not None for t in traces for v in t.get("y", ())):
        return _no_data(empty)
    base = {
        "title": {"text": layout.pop("title", ""), "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    }
    div, js = charts.figure(div_id, traces, {**base, **layout})
    scripts.append(js)
    return div


def _axis(title: str, **kw: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "zeroline": False, **kw}


# -- sections ----------------------------------------------------------------------------------
def _header(res: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    start, end = _parse_time(meta.get("start_time")), _parse_time(meta.get("end_time"))
    wall = f"{(end - start).total_seconds():,.1f} s" if start and end else "–"
    measured = res.get("duration")
    workers = meta.get("workers")
    lost = meta.get("workers_lost") or []
    rows = [
        ("Host", _e(meta.get("host", "–"))),
        ("Model", _e(meta.get("model", "–"))),
        *_api_row(meta),
        ("Start", _e(_show_time(meta.get("start_time")))),
        ("End", _e(_show_time(meta.get("end_time")))),
        ("Duration", f"{wall} (requests measured over {_fmt(measured)} s: first send → last end)"),
        ("Peak users", _fmt(meta.get("users"))),
        ("Workers", _fmt(workers) if workers is not None else f"none ({_e(meta.get('mode', 'local'))} run)"),
    ]
    if lost:
        rows.append(("Workers lost", f'<span class="bad">{_e(", ".join(map(str, lost)))}</span>'))
    failed = int(res.get("failed") or 0)
    cards = [
        ("Requests OK", _fmt(res.get("completed", 0)), "ok"),
        ("Failed", _fmt(failed), "bad" if failed else ""),
        ("Cancelled at the end", _fmt(res.get("cancelled", 0)), ""),
        ("Request throughput", f"{_fmt(res.get('request_throughput'))} req/s", ""),
        ("Output throughput", f"{_fmt(res.get('output_throughput'), 1)} tok/s", ""),
        *((f"{m.label} p50 / p99", _p50_p99(res, m), "") for m in (TTFT, ITL)),
        ("Mean requests in flight", _fmt(res.get("concurrency")), ""),
    ]
    if res.get("not_streamed"):
        cards.insert(3, ("Not streamed (one JSON body)", _fmt(res["not_streamed"]), "bad"))
    card_html = "".join(
        f'<div class="card"><div class="v {cls}">{v}</div><div class="l">{_e(label)}</div></div>'
        for label, v, cls in cards
    )
    nav = [("summary", "Summary"), ("over-time", "Over time")]
    nav += [("server-metrics", "Server metrics")] if res.get("server_metrics") else []
    nav += [("distributions", "Distributions")]
    nav += [("failures", "Failures")]
    if res.get("levels"):
        nav.append(("levels", "Per level"))
    if html_workload.several_turns(res.get("turns")):
        nav.append(("turns", "Per turn"))
    nav.append(("options", "Options"))
    links = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in nav)
    return (
        f"<header><h1>llm-locust report: {_e(meta.get('model') or '?')}</h1>"
        f'<p class="host">{_e(meta.get("host") or "")}</p></header>'
        f"<nav>{links}</nav>"
        f'<div class="cards">{card_html}</div>' + _table(("Run", ""), [(k, v) for k, v in rows], cls="meta")
    )


def _p50_p99(res: Mapping[str, Any], m: Metric) -> str:
    return f"{_fmt(res.get(m.key('median')))} / {_fmt(res.get(m.key('p99')))} {m.unit}"


def _api_row(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The API flavor and how it was chosen; results files from before flavors have none."""
    api, by = meta.get("api"), meta.get("api_detected_by")
    return [("API flavor", _e(api) + (f" (from {_e(by)})" if by else ""))] if api else []


def _summary_section(res: Mapping[str, Any]) -> str:
    rows = []
    flagged = set(res.get("few_sample_percentiles") or ())
    for m in shown_in(View.SUMMARY):
        if has_samples(res, m):
            stats = [mark(_fmt(res.get(m.key(k))), m.key(k) in flagged) for k in _STATS]
            rows.append((_e(m.label), _e(m.unit), _fmt(res.get(m.key("count"))), *stats, _e(m.definition)))
    head = ("Metric", "Unit", "Samples", *_STATS, "Definition")
    body = (
        _table(head, rows, cls="summary")
        if rows
        else _no_data("No request completed: there are no latencies to show.")
    )
    checks = html_workload.checks_html(res)
    return f'<h2 id="summary">Summary</h2>{checks}{body}{legend(bool(rows and flagged))}'


#: Over-time charts: (div id, title, y unit, [(trace name, Point field, colour in charts.COLORS)]).
_OVER_TIME: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    *(
        (
            f"ts-{m.stem}",
            f"{m.label} ({m.unit}, over the last {DEFAULT_WINDOW_S:g} s)",
            m.unit,
            charts.window_traces(m),
        )
        for m in shown_in(View.OVER_TIME)
    ),
    ("ts-tokens", "Aggregate output tok/s", "tok/s", (("output tok/s", "output_tokens_per_s", "tokens"),)),
    (
        "ts-users",
        "Users and requests in flight",
        "count",
        (("in flight", "in_flight", "in_flight"), ("users", "users", "users")),
    ),
)
#: The server's own gauges over time (--server-metrics), drawn only when the series carries them.
_SERVER_OVER_TIME = (
    (
        "ts-server-requests",
        "Server: running / waiting requests",
        "count",
        (("running", "server_running", "server_running"), ("waiting", "server_waiting", "server_waiting")),
    ),
    (
        "ts-server-kv",
        "Server: KV-cache use",
        "fraction",
        (("KV cache", "server_kv_cache_usage", "kv"),),
    ),
)


def _over_time_section(points: Sequence[Mapping[str, Any]], meta: Mapping[str, Any], out: list[str]) -> str:
    head = '<h2 id="over-time">Over time</h2>'
    if not points:
        return head + _no_data("No over-time data: the run ended before its first sample (every 2 s).")
    start = _parse_time(meta.get("start_time"))
    first = float(points[0]["time_s"])
    t0 = min(start.timestamp(), first) if start is not None else first
    x = [round(float(p["time_s"]) - t0, 3) for p in points]
    marks = _level_marks(points, x)

    def line(name: str, key: str, color: str) -> dict[str, Any]:
        y = [p.get(key) for p in points]
        trace = _scatter(name, x, y, charts.COLORS[color], marker={"size": 4})
        if key == "users":  # a dashed step on top: it often equals in-flight and would hide under it
            trace["line"] |= {"dash": "dash", "shape": "hv", "width": 2}
        return trace

    divs = []
    server = _SERVER_OVER_TIME if server_report.has_series(list(points)) else ()
    for div_id, title, unit, series in (*_OVER_TIME, *server):
        traces = [line(*s) for s in series]
        x_axis = _axis("time since start (s)", rangemode="tozero")
        layout = {"title": title, "xaxis": x_axis, "yaxis": _axis(unit, rangemode="tozero"), **marks}
        divs.append(_chart(out, div_id, traces, layout, f"{title.split(' (')[0]}: no request finished."))
    note = '<p class="muted">Dotted lines: ladder level changes.</p>' if marks["shapes"] else ""
    return head + note + '<div class="grid">' + "".join(divs) + "</div>"


def _scatter(name: str, x: Sequence[Any], y: Sequence[Any], color: str, **kw: Any) -> dict[str, Any]:
    trace = {"type": "scatter", "mode": "lines+markers", "name": name, "x": list(x), "y": list(y)}
    return {**trace, "line": {"color": color}, **kw}


def _vline(x: float, color: str, dash: str, text: str, xanchor: str, above: bool) -> tuple[Any, Any]:
    """A vertical line across the plot and its label (at the top, inside or just above the plot)."""
    line = {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1}
    note = {"x": x, "xref": "x", "y": 1, "yref": "paper", "xanchor": xanchor, "showarrow": False}
    note |= {"yanchor": "bottom" if above else "top", "text": html.escape(text)}
    note["font"] = {"size": 10, "color": color}
    return {**line, "line": {"color": color, "width": 1, "dash": dash}}, note


def _level_marks(points: Sequence[Mapping[str, Any]], x: Sequence[float]) -> dict[str, Any]:
    """A dotted line where the ladder level changed (halfway between the samples around the change)."""
    shapes, notes = [], []
    previous: Any = None
    for i, p in enumerate(points):
        level = p.get("level")
        if level is None or level == previous:
            continue
        previous = level
        text = f"{level} user{'' if level == '1' else 's'}" if str(level).isdigit() else str(level)
        shape, note = _vline(0.0 if i == 0 else (x[i - 1] + x[i]) / 2, "#777", "dot", text, "left", False)
        if i:
            shapes.append(shape)
        notes.append(note)
    return {"shapes": shapes, "annotations": notes}


def _histogram_section(res: Mapping[str, Any], out: list[str]) -> str:
    hists: Mapping[str, Any] = res.get("histograms") or {}
    divs = []
    for m in shown_in(View.REPORT_DISTRIBUTION):
        bins = hists.get(m.bins_key) or []
        title, unit, counted = m.label, m.unit, f"{m.per}s"
        trace = {
            "type": "bar",
            "x": [(lo + hi) / 2 for lo, hi, _n in bins],
            "width": [max(hi - lo, 1e-9) for lo, hi, _n in bins],
            "y": [n for _lo, _hi, n in bins],
            "customdata": [[lo, hi] for lo, hi, _n in bins],
            "marker": {"color": charts.COLORS["p50"], "line": {"color": "#fff", "width": 0.5}},
            "hovertemplate": f"%{{customdata[0]:.2f}}–%{{customdata[1]:.2f}} {unit}: %{{y}} {counted}"
            "<extra></extra>",
        }
        marks = [
            _vline(v, charts.COLORS[color], "dash", name, anchor, True)
            for name, key, color, anchor in (("p50", "median", "p50", "right"), ("p99", "p99", "p95", "left"))
            if bins and (v := res.get(m.key(key))) is not None
        ]
        layout = {
            "title": f"{title} distribution ({_fmt(sum(trace['y']))} {counted})",
            "xaxis": _axis(unit),
            "yaxis": _axis(counted, rangemode="tozero"),
            "bargap": 0,
            "hovermode": "closest",
            "showlegend": False,
            "shapes": [m[0] for m in marks],
            "annotations": [m[1] for m in marks],
        }
        divs.append(_chart(out, f"hist-{m.stem}", [trace], layout, f"{title}: no samples."))
    return '<h2 id="distributions">Distributions</h2><div class="grid3">' + "".join(divs) + "</div>"


def _failures_section(res: Mapping[str, Any], out: list[str]) -> str:
    head = '<h2 id="failures">Failures</h2>'
    failures = sorted(
        ((k, int(v)) for k, v in (res.get("failures") or {}).items() if v), key=lambda kv: -kv[1]
    )
    cancelled = int(res.get("cancelled") or 0)
    cut = (
        f'<p class="muted">{_fmt(cancelled)} stream(s) were cut by the end of the test (cancelled: neither'
        " a success nor a failure; --stop-timeout lets them finish).</p>"
    ) if cancelled else ""  # fmt: skip
    if not failures:
        return f'{head}<p class="ok"><strong>No failures</strong>: every finished request succeeded.</p>{cut}'
    total = sum(n for _k, n in failures)
    finished = int(res.get("completed") or 0) + total
    rows = [
        (_e(cat), _fmt(n), f"{100.0 * n / finished:.1f} %", _e(FAILURE_MEANINGS.get(cat, "")))
        for cat, n in failures
    ]
    rows.append(("<strong>total</strong>", f"<strong>{_fmt(total)}</strong>", "", ""))
    table = _table(("Category", "Requests", "Share of finished", "Meaning"), rows, cls="failures")
    trace = {
        "type": "bar",
        "x": [k for k, _n in failures],
        "y": [n for _k, n in failures],
        "marker": {"color": "#c62828"},
        "hovertemplate": "%{x}: %{y} requests<extra></extra>",
    }
    layout = {
        "title": "Failed requests by category",
        "bargap": 0.5 if len(failures) > 1 else 0.7,
        "xaxis": _axis("", type="category"),
        "yaxis": _axis("requests", rangemode="tozero"),
        "hovermode": "closest",
        "showlegend": False,
    }
    chart = _chart(out, "failures-chart", [trace], layout, "No failures.")
    summary = f'<p class="bad"><strong>{_fmt(total)} failed request(s)</strong></p>{cut}'
    return f'{head}{summary}<div class="grid"><div>{table}</div>{chart}</div>'


#: Per-level table: (heading, key in the level row, digits or None for the default); per-stream
#: tok/s (min / median / max) has a column of its own before these.
_LEVEL_COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("OK", "completed", None),
    ("Failed", "failed", None),
    ("Cancelled", "cancelled", None),
    *((m.stat_label(k), m.key(k), None) for m in (TTFT, ITL) for k in ("median", "p99")),
    ("Output tokens", "total_output_tokens", None),
    ("Aggregate tok/s", "output_throughput", 1),
)
_BAND = TOKENS_PER_S  # the per-level metric drawn as its median in a min-max band


def _ladder_section(levels: Sequence[Mapping[str, Any]], out: list[str]) -> str:
    if not levels:
        return ""
    lo, mid, hi = (_BAND.key(k) for k in ("min", "median", "max"))
    by = levels_by(levels)  # "users", or "rate" for an open loop's levels
    head = (by.capitalize(), f"{_BAND.label} min / median / max", *(h for h, _k, _d in _LEVEL_COLUMNS))
    rows = [
        (
            _e(r.get("users")),
            " / ".join(_fmt(r.get(k), 1) for k in (lo, mid, hi)),
            *(
                mark(_fmt(r.get(k), d), k in (r.get("few_sample_percentiles") or ()))
                for _h, k, d in _LEVEL_COLUMNS
            ),
        )
        for r in levels
    ]
    flagged = any(r.get("few_sample_percentiles") for r in levels)
    labels = [str(r.get("users")) for r in levels]
    numeric = all(re.fullmatch(r"\d+(\.\d+)?", s) and float(s) > 0 for s in labels)
    x: list[Any] = [float(s) for s in labels] if numeric else labels
    x_axis = (
        _axis("users (log scale)", type="log", tickvals=x, ticktext=labels)
        if numeric
        else _axis("level", type="category")
    )

    def col(key: str) -> list[Any]:
        return [r.get(key) for r in levels]

    blue = charts.COLORS["p50"]
    band = {"mode": "lines", "hoverinfo": "skip", "showlegend": False, "line": {"width": 0}}
    stream_traces = [
        {**_scatter("max", x, col(hi), blue), **band},
        {**_scatter("min–max", x, col(lo), blue), **band, "showlegend": True},
        _scatter(
            "median",
            x,
            col(mid),
            blue,
            customdata=[[r.get(lo), r.get(hi)] for r in levels],
            hovertemplate="median %{y:.1f} tok/s (min %{customdata[0]:.1f}, max %{customdata[1]:.1f})"
            "<extra></extra>",
        ),
    ]
    stream_traces[1] |= {"fill": "tonexty", "fillcolor": "rgba(31,119,180,0.18)"}
    aggregate = _scatter(
        "aggregate tok/s",
        x,
        col("output_throughput"),
        charts.COLORS["tokens"],
        hovertemplate="%{y:.1f} tok/s<extra></extra>",
    )
    common = {"xaxis": x_axis, "hovermode": "closest"}
    stream_layout = {
        "title": "Per-stream tok/s vs users",
        "yaxis": _axis("tok/s per stream", rangemode="tozero"),
    }
    agg_layout = {"title": "Aggregate output tok/s vs users", "yaxis": _axis("tok/s", rangemode="tozero")}
    charts_html = _chart(
        out, "levels-stream", stream_traces, {**stream_layout, **common}, "Per-stream tok/s: no data."
    ) + _chart(out, "levels-aggregate", [aggregate], {**agg_layout, **common}, "Aggregate tok/s: no data.")
    return (
        '<h2 id="levels">Per level</h2>'
        '<p class="muted">Requests are grouped by the number of users when they were sent (open loop: by the '
        "rate they were due at). Per-stream "
        "tok/s: output tokens / end-to-end time of each request (TTFT included); aggregate tok/s: all "
        "output tokens of the level over its duration.</p>"
        f'{_table(head, rows)}{legend(flagged)}<div class="grid">{charts_html}</div>'
    )


def _option_value(name: str, value: Any) -> str:
    if isinstance(value, str) and value and _SECRET_NAME.search(name):
        return "(hidden)"
    if value is None or isinstance(value, (bool, int, float, str)):
        return _fmt(value) if value is None or isinstance(value, bool) else _e(value)
    return _e(orjson.dumps(value, default=str).decode("utf-8"))


def _options_section(meta: Mapping[str, Any]) -> str:
    options: Mapping[str, Any] = meta.get("options") or {}
    rows = [(_e(k), _option_value(str(k), v)) for k, v in options.items()]
    opts = _table(("Option", "Value"), rows, cls="meta") if rows else _no_data("No options recorded.")
    software = _table(
        ("Software", ""),
        [
            ("Mode", _e(meta.get("mode", "–"))),
            ("User classes", _e(", ".join(map(str, meta.get("user_classes") or [])) or "–")),
            ("llm-locust", _e(meta.get("llm_locust_version", "–"))),
            ("Locust", _e(meta.get("locust_version", "–"))),
        ],
        cls="meta",
    )
    return (
        '<h2 id="options">Options</h2><p class="muted">Secrets (the API key) are never written; '
        "<code>api_key_set</code> only says whether one was given.</p>"
        f'<div class="grid"><div>{opts}</div><div>{software}</div></div>'
    )
