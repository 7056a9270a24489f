"""The ``llm-locust compare --html`` page: the comparison tables and charts in one offline file.

plotly.js is inlined (:func:`llm_locust.reports.charts.page` with ``plotly_src=None``), so the file opens
from disk with no network. Charts: grouped bars of the main metrics per run; for ladder runs,
median per-stream tok/s, TTFT p50 and aggregate tok/s against users (log axis), one line per run;
TTFT and ITL distributions overlaid, as a share of each run's samples so runs of different
lengths compare.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from llm_locust.metrics.catalog import (
    E2EL,
    ITL,
    LATENCY_STATS,
    STAT_LABELS,
    TOKENS_PER_S,
    TPOT,
    TTFT,
    Metric,
    View,
    shown_in,
)
from llm_locust.reports import charts
from llm_locust.reports.compare import (
    LEVEL_COLUMNS,
    Run,
    any_api,
    api_flavor,
    differing_options,
    fmt,
    fmt_ratio,
    level_rows,
    metric_rows,
    number,
)

#: One colour per run, in order (plotly's default sequence).
RUN_COLORS: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _bars(metrics: Sequence[Metric], stats: Sequence[str]) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """A chart of the metrics' stats: (title, y axis, bars); bar labels name the metric when several
    metrics share the chart. The metrics share a unit and a better direction."""
    names = " and ".join(m.label for m in metrics)
    title = f"{names} ({metrics[0].better} is better)"
    bars = tuple(
        (f"{m.label} {STAT_LABELS[k]}" if len(metrics) > 1 else STAT_LABELS[k], m.key(k))
        for m in metrics
        for k in stats
    )
    return title, metrics[0].unit, bars


#: Grouped bar charts: (title, y axis, [(bar label, results key), ...]).
BAR_CHARTS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Tokens per second (higher is better)",
        "tok/s",
        (
            ("output, all streams", "output_throughput"),
            ("per stream, mean", TOKENS_PER_S.key("mean")),
            ("per stream, p50", TOKENS_PER_S.key("median")),
        ),
    ),
    _bars((TTFT,), LATENCY_STATS),
    _bars((TPOT, ITL), ("median", "p99")),
    _bars((E2EL,), LATENCY_STATS),
)

_EXTRA_STYLE = """
.better { color: #1a7f37; } .worse { color: #c62828; }
td.label { white-space: nowrap; } td.dir { color: #777; text-align: left; }
tr.sep td { border-top: 2px solid #bbb; }
#runs td, #runs th { text-align: left; white-space: nowrap; }
#levels th { text-align: center; } #levels td:first-child { text-align: right; }
"""


def color(i: int) -> str:
    return RUN_COLORS[i % len(RUN_COLORS)]


def _e(value: Any) -> str:
    return html.escape(str(value))


def _runs_table(runs: Sequence[Run]) -> str:
    api = any_api(runs)
    columns = ("run", "file", "host", "model", *(("api",) if api else ()), "peak users", "mode", "started")
    head = "".join(f"<th>{h}</th>" for h in columns)
    rows = []
    for i, run in enumerate(runs):
        m = run.metadata
        cells = [m.get("host", "-"), m.get("model", "-"), *([api_flavor(run)] if api else [])]
        cells += [m.get(k, "-") for k in ("users", "mode", "start_time")]
        rows.append(
            f'<tr><td><b style="color:{color(i)}">{_e(run.name)}</b></td><td>{_e(run.path)}</td>'
            + "".join(f"<td>{_e(c)}</td>" for c in cells)
            + "</tr>"
        )
    diffs = "".join(
        f"<li>option <code>{_e(key)}</code> differs: "
        + ", ".join(f"{_e(r.name)} <code>{_e(v)}</code>" for r, v in zip(runs, values, strict=True))
        + "</li>"
        for key, values in differing_options(runs)
    )
    note = f'<ul class="muted">{diffs}</ul>' if diffs else ""
    return f'<table id="runs"><tr>{head}</tr>{"".join(rows)}</table>{note}'


def _metric_table(runs: Sequence[Run]) -> str:
    names = [r.name for r in runs]
    head = "<th>metric</th><th>better</th>" + f"<th>{_e(names[0])}</th>"
    head += "".join(f"<th>{_e(n)}</th><th>{_e(n)} / {_e(names[0])}</th>" for n in names[1:])
    rows = []
    prev_group = ""
    for row in metric_rows(runs):
        m = row.metric
        sep = ' class="sep"' if prev_group and m.group != prev_group else ""
        prev_group = m.group
        cells = f'<td class="label">{_e(m.label)}</td><td class="dir">{_e(m.better)}</td>'
        cells += f"<td>{fmt(row.values[0], m.digits)}</td>"
        for i in range(1, len(runs)):
            verdict = row.verdict(i)
            cls = f' class="{verdict}"' if verdict else ""
            cells += f"<td>{fmt(row.values[i], m.digits)}</td><td{cls}>{_e(fmt_ratio(row, i))}</td>"
        rows.append(f"<tr{sep}>{cells}</tr>")
    return f'<table id="metrics"><tr>{head}</tr>{"".join(rows)}</table>'


def _level_table(runs: Sequence[Run]) -> str:
    n = len(runs)
    groups = "".join(f'<th colspan="{n}">{_e(h)}</th>' for h, _k, _d in LEVEL_COLUMNS)
    names = "".join(f"<th>{_e(r.name)}</th>" for r in runs) * len(LEVEL_COLUMNS)
    body = []
    for row in level_rows(runs):
        cells = f"<td>{_e(row.users)}</td>"
        for j, (_h, _k, digits) in enumerate(LEVEL_COLUMNS):
            cells += "".join(f"<td>{fmt(c[j], digits) if c is not None else '-'}</td>" for c in row.cells)
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<table id="levels"><tr><th rowspan="2">users</th>{groups}</tr><tr>{names}</tr>'
        f"{''.join(body)}</table>"
    )


def bar_figures(runs: Sequence[Run]) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """(div id, traces, layout) of the grouped bar charts: one bar per run in each group."""
    figs = []
    for n, (title, unit, bars) in enumerate(BAR_CHARTS):
        traces = [
            {
                "type": "bar",
                "name": run.name,
                "x": [label for label, _k in bars],
                "y": [run.number(key) for _l, key in bars],
                "marker": {"color": color(i)},
            }
            for i, run in enumerate(runs)
        ]
        layout = {"title": {"text": title}, "barmode": "group", "yaxis": {"title": {"text": unit}}}
        figs.append((f"bars-{n}", traces, layout))
    return figs


def ladder_figures(runs: Sequence[Run]) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """Each :data:`LEVEL_COLUMNS` metric against users (log axis), one line per run; [] without levels."""
    numeric = [(u, r) for r in level_rows(runs) if (u := _as_float(r.users)) is not None]
    if not numeric:
        return []
    users = [u for u, _r in numeric]
    figs = []
    for j, (heading, _k, _d) in enumerate(LEVEL_COLUMNS):
        traces = []
        for i, run in enumerate(runs):
            points = [(u, cells[j]) for u, r in numeric if (cells := r.cells[i]) is not None]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": run.name,
                    "x": [u for u, _v in points],
                    "y": [v for _u, v in points],
                    "line": {"color": color(i)},
                }
            )
        layout = {
            "title": {"text": f"{heading} vs users"},
            "xaxis": {
                "title": {"text": "users"},
                "type": "log",
                "tickvals": users,
                "ticktext": [r.users for _u, r in numeric],
            },
            "yaxis": {"title": {"text": heading}, "rangemode": "tozero"},
        }
        figs.append((f"ladder-{j}", traces, layout))
    return figs


def _as_float(label: str) -> float | None:
    try:
        value = float(label)
    except ValueError:
        return None
    return value if value > 0 else None


def histogram_figures(runs: Sequence[Run]) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """Overlaid distributions for runs whose file has ``histograms``: each run's bins as a filled
    step outline (share of its samples per bin), so a narrow spike stays visible next to a wide
    spread; the x axis turns logarithmic when the runs span more than 10x."""
    figs = []
    for n, m in enumerate(shown_in(View.COMPARE_DISTRIBUTION)):
        title, key, x_title, y_title = f"{m.label} distribution", m.bins_key, m.display, f"% of {m.per}s"
        traces = []
        lows, highs = [], []
        for i, run in enumerate(runs):
            bins = _bins(run, key)
            total = sum(b[2] for b in bins)
            if not total:
                continue
            shares = [100.0 * b[2] / total for b in bins]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": run.name,
                    "x": [bins[0][0]] + [b[0] for b in bins] + [bins[-1][1]],
                    "y": [0.0, *shares, 0.0],
                    "line": {"color": color(i), "shape": "hv", "width": 1.5},
                    "fill": "tozeroy",
                    "opacity": 0.8,
                }
            )
            lows.append(bins[0][0])
            highs.append(bins[-1][1])
        if traces:
            log = min(lows) > 0 and max(highs) / min(lows) > 10
            xaxis: dict[str, Any] = {"title": {"text": x_title + (" (log scale)" if log else "")}}
            if log:
                xaxis["type"] = "log"
            layout = {
                "title": {"text": title},
                "hovermode": "closest",
                "xaxis": xaxis,
                "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
            }
            figs.append((f"hist-{n}", traces, layout))
    return figs


def _bins(run: Run, key: str) -> list[tuple[float, float, float]]:
    """The run's ``histograms[key]`` bins ``(low, high, count)``; [] when absent or malformed."""
    hists = run.results.get("histograms")
    raw = hists.get(key) if isinstance(hists, dict) else None
    out = []
    for b in raw if isinstance(raw, list) else []:
        if isinstance(b, list) and len(b) == 3:
            low, high, count = (number(v) for v in b)
            if low is not None and high is not None and count is not None:
                out.append((low, high, count))
    return out


def build_html(runs: Sequence[Run]) -> str:
    """The complete, self-contained page."""
    names = [r.name for r in runs]
    title = "llm-locust compare: " + " vs ".join(names)
    scripts: list[str] = []

    def grid(figs: list[tuple[str, list[dict[str, Any]], dict[str, Any]]]) -> str:
        divs = []
        for div_id, traces, layout in figs:
            div, js = charts.figure(div_id, traces, {"legend": {"orientation": "h", "y": -0.2}, **layout})
            divs.append(div)
            scripts.append(js)
        return f'<div class="grid">{"".join(divs)}</div>'

    parts = [
        f"<style>{_EXTRA_STYLE}</style>",
        f"<h1>{_e(title)}</h1>",
        _runs_table(runs),
        "<h2>Metrics</h2>",
        f'<p class="muted">Ratios are each run divided by the first run ({_e(names[0])}); '
        '<span class="better">better</span> and <span class="worse">worse</span> follow the '
        "<i>better</i> column (lower for latencies and failures, higher for throughput).</p>",
        _metric_table(runs),
        grid(bar_figures(runs)),
    ]
    if level_rows(runs):
        parts += [
            "<h2>Per level</h2>",
            '<p class="muted">Requests grouped by the number of users when they were sent (open loop: '
            "the rate they were due at); "
            "- where a run has no such level. Aggregate tok/s is the level's output tokens over its "
            "measured window.</p>",
            _level_table(runs),
            grid(ladder_figures(runs)),
        ]
    hists = histogram_figures(runs)
    if hists:
        parts += ["<h2>Distributions</h2>", grid(hists)]
    return charts.page(title, "\n".join(parts), "\n".join(scripts), plotly_src=None)
