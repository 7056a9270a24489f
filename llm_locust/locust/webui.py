"""Locust's web UI: an "LLM" tab with a live table, its CSV, and a live charts page.

:func:`install` is called from the plugin's ``init`` listener when Locust has a web UI (a single
process or a distributed master). Every number comes from the plugin's merged histograms
(``state.aggregate``) and over-time points (``state.timeseries``), never from Locust's rounded
response-time buckets.

What it adds (``<base>`` is ``--web-base-path``, usually empty):

- The **LLM tab**: Locust 2.47's React UI renders ``template_args["extended_tabs"]`` as tabs and
  ``["extended_tables"]`` as their tables; the rows come from ``extended_stats`` in the
  ``/stats/requests`` JSON, which the UI polls every 2 s. An ``after_request`` hook adds them.
- ``<base>/llm/stats/csv``: that table as CSV, listed in the "Download Data" tab
  (``["extended_csv_files"]``), with ``<base>/llm/results.json`` and ``<base>/llm/report.html``: the
  current run's results and HTML report, as ``--llm-json`` and ``--llm-html`` would write them now
  (made in memory: nothing is read or written on the machines).
- ``<base>/llm/charts``: TTFT p50/p95, TPOT p50/p95, output tok/s of all streams, users and requests
  in flight over time; the page polls ``<base>/llm/timeseries?since=T`` (the points after Unix time
  ``T``) every 2 s and extends its plots. plotly.js comes from ``<base>/llm/plotly.min.js`` (the copy
  the ``plotly`` package ships), so nothing is fetched from the internet.

How the charts page is reached from the web UI: Locust's extension points cannot render a link in
a tab (a table cell's content is rendered as text), and the only links they render are the
"Download Data" entries. So the charts page is listed there (Locust's supported mechanism, which
keeps working if Locust changes its page), and, since that tab is easy to miss, an ``after_request``
hook also appends a small fixed "LLM live charts" link to Locust's index page, outside the React
root so the app never re-renders it away. If Locust's page ever lacks ``</body>``, the link is simply
not added; the "Download Data" entry remains.

Every URL in the pages is relative, so it works under ``--web-base-path``. Nothing here shows an
option's value, so no secret can appear.
"""

from __future__ import annotations

import csv
import html
import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson
from flask import Blueprint, Flask, Response, jsonify, request

from llm_locust.errors import ConfigError
from llm_locust.metrics.catalog import PERCENTILES, View, shown_in
from llm_locust.metrics.histogram import Histogram
from llm_locust.metrics.records import FAILURE_CATEGORIES
from llm_locust.reports import charts

if TYPE_CHECKING:
    from llm_locust.locust.state import LLMState

_View = Callable[[], Response]

TAB_KEY = "llm"
POLL_MS = 2000
#: (column key, title) of the LLM tab; the same columns, in this order, make the CSV.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("metric", "Metric"),
    ("value", "Value"),
    ("count", "Count"),
    ("mean", "Mean"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("max", "Max"),
)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the LLM table: a distribution (count, mean, percentiles, max) or a single value."""

    metric: str
    unit: str
    value: float | None = None
    count: int | None = None
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    @property
    def label(self) -> str:
        return f"{self.metric} ({self.unit})" if self.unit else self.metric


def table_rows(state: LLMState) -> list[Row]:
    """The LLM table now: the merged distributions of the catalog's web metrics (the server's own
    timings only once they have samples), then throughput, in flight and outcomes."""
    agg = state.aggregate
    rows = [
        _distribution(m.web_name, m.unit, agg.hist[m.name])
        for m in shown_in(View.WEB)
        if not m.optional or agg.hist[m.name].count
    ]
    points = state.timeseries.points
    window = f"Output throughput, all streams, last {state.timeseries.window_s:g} s"
    rows.append(Row(window, "tok/s", value=points[-1].output_tokens_per_s if points else None))
    rows.append(Row("Requests in flight", "", value=state.in_flight_total()))
    control = state.rate_control
    if control is not None:  # open loop: what the schedule asks for now (change it on the charts page)
        rows.append(Row("Open loop: request rate now", "req/s", value=control.rate_now()))
    rows.append(Row("Completed requests", "", value=agg.counts["completed"]))
    if agg.counts["not_streamed"]:
        rows.append(
            Row("  of which not streamed (one JSON body: TTFT = E2E)", "", value=agg.counts["not_streamed"])
        )
    failed = [(cat, agg.failures[cat]) for cat in FAILURE_CATEGORIES if agg.failures[cat]]
    failed += sorted((cat, n) for cat, n in agg.failures.items() if cat not in FAILURE_CATEGORIES and n)
    if failed:
        rows += [Row(f"Failed: {cat}", "", value=n) for cat, n in failed]
    else:
        rows.append(Row("Failed requests", "", value=0))
    if agg.counts["cancelled"]:
        rows.append(Row("Cancelled (cut by a stop)", "", value=agg.counts["cancelled"]))
    judged = agg.counts["goodput_judged"]
    if judged:  # --goodput: the good requests so far, and their share of the finished ones
        rows.append(Row("Good requests (--goodput)", "", value=agg.counts["good"]))
        rows.append(Row("Goodput share", "%", value=round(100 * agg.counts["good"] / judged, 1)))
    rows += [Row(f"Note: {note}", "") for note in state.notes]
    return rows


def _distribution(label: str, unit: str, h: Histogram) -> Row:
    s = h.summary(PERCENTILES)
    if not s.count:
        return Row(label, unit, count=0)
    pct = s.percentiles
    return Row(label, unit, None, s.count, s.mean, pct[50.0], pct[90.0], pct[95.0], pct[99.0], s.max)


def _shown(x: float | None) -> float | None:
    """Rounded for the table: 2 decimals below 100, 1 above; None (an empty cell) for no value."""
    if x is None or math.isnan(x) or math.isinf(x):
        return None
    if isinstance(x, int):
        return x
    return round(x, 2 if abs(x) < 100 else 1)


def tab_data(state: LLMState) -> list[dict[str, Any]]:
    """Rows for the LLM tab (``extended_stats`` data), keyed by :data:`COLUMNS`. Locust's table
    sorts rows by their ``name`` until a header is clicked: ``name`` is the row's position."""
    out: list[dict[str, Any]] = []
    for i, r in enumerate(table_rows(state)):
        row: dict[str, Any] = {"name": f"{i:03d}", "metric": r.label}
        for key, _title in COLUMNS[1:]:
            row[key] = _shown(getattr(r, key))
        out.append(row)
    return out


def table_csv(state: LLMState) -> str:
    """The LLM table as CSV: metric, unit, then the numeric columns (3 decimals; empty for no value)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    keys = [key for key, _title in COLUMNS[1:]]
    writer.writerow(["metric", "unit", *keys])
    for r in table_rows(state):
        cells = [getattr(r, key) for key in keys]
        writer.writerow([r.metric, r.unit, *(_csv_cell(c) for c in cells)])
    return buf.getvalue()


def _csv_cell(x: float | None) -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return ""
    return str(x) if isinstance(x, int) else f"{x:.3f}"


def points_since(state: LLMState, since_s: float) -> dict[str, Any]:
    """The over-time points after Unix time ``since_s``, and the time of the first point kept (it
    changes when the stats are reset, which tells the charts page to start over)."""
    points = state.timeseries.points
    fresh = [asdict(p) for p in points if p.time_s > since_s]  # not to_json(): a long run has many
    return {"first_time_s": points[0].time_s if points else None, "points": fresh}


# -- Flask wiring ------------------------------------------------------------------------------
def install(environment: Any, state: LLMState, results: Callable[[], dict[str, Any]]) -> None:
    """Add the LLM tab, its CSV, the charts page and their routes to ``environment.web_ui``
    (idempotent; call before the web UI serves its first request). ``results`` gives the current
    run's results (what --llm-json would write now), for the "Download Data" tab."""
    web_ui = environment.web_ui
    if web_ui is None or getattr(web_ui, "llm_locust_installed", False):
        return
    web_ui.llm_locust_installed = True
    options = environment.parsed_options
    base = (getattr(options, "web_base_path", None) or "").rstrip("/")

    args = web_ui.template_args
    args.setdefault("extended_tabs", []).append({"title": "LLM", "key": TAB_KEY})
    args.setdefault("extended_tables", []).append(
        {"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}
    )
    args.setdefault("extended_csv_files", []).extend(
        [
            {"href": "./llm/stats/csv", "title": "Download LLM statistics CSV"},
            {"href": "./llm/results.json", "title": "Download LLM results JSON (what --llm-json writes)"},
            {"href": "./llm/report.html", "title": "Download LLM HTML report (what --llm-html writes)"},
            {"href": "./llm/charts", "title": "LLM live charts (a page: TTFT, TPOT, tok/s over time)"},
        ]
    )

    bp = Blueprint("llm_locust", __name__, url_prefix=f"{base}/llm")
    auth: Callable[[_View], _View] = web_ui.auth_required_if_enabled
    app: Flask = web_ui.app

    @bp.route("/charts")
    @auth
    def charts_page() -> Response:
        model = state.config.model if state.config is not None else ""
        return Response(charts_html(model), mimetype="text/html")

    @bp.route("/plotly.min.js")
    @auth
    def plotly_script() -> Response:
        resp = Response(charts.plotly_js(), mimetype="application/javascript")
        resp.headers["Cache-Control"] = "public, max-age=86400"
        return resp

    @bp.route("/timeseries")
    @auth
    def timeseries() -> Response:
        raw = request.args.get("since", "0")
        try:
            since_s = float(raw)
        except ValueError:
            return Response(f"since={raw!r} is not a number; give a Unix time in seconds", status=400)
        return jsonify(points_since(state, since_s))

    @bp.route("/rate", methods=["GET", "POST"])
    @auth
    def rate() -> Response:
        """GET: the open loop's rate now; POST ``{"rate": R}``: the rate from a moment ahead on."""
        control = state.rate_control
        if request.method == "POST":
            if control is None:
                return _error("the running test is not an open loop (start it with a Request rate)")
            body = request.get_json(silent=True)
            raw = body.get("rate") if isinstance(body, dict) else request.form.get("rate")
            try:
                value = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return _error(f"rate {raw!r} is not a number of requests/s")
            try:
                control.change_rate(value)
            except (ConfigError, ValueError) as exc:
                return _error(str(exc))
        return jsonify(rate_json(state))

    @bp.route("/stats/csv")
    @auth
    def stats_csv() -> Response:
        return _download(table_csv(state), "text/csv", "llm_stats", "csv")

    @bp.route("/results.json")
    @auth
    def results_json() -> Response:
        if state.config is None:
            return Response("no test has started yet: start one, then download its results", status=404)
        body = orjson.dumps(results(), option=orjson.OPT_INDENT_2)
        return _download(body, "application/json", "llm_results", "json")

    @bp.route("/report.html")
    @auth
    def report_html() -> Response:
        if state.config is None:
            return Response("no test has started yet: start one, then download its report", status=404)
        from llm_locust.reports import html as html_report

        return _download(html_report.render(results()), "text/html", "llm_report", "html")

    app.register_blueprint(bp)

    stats_path = f"{base}/stats/requests"
    index_path = f"{base}/"

    @app.after_request
    def add_llm(response: Response) -> Response:
        if response.status_code != 200:
            return response
        if request.path == stats_path and response.is_json:
            data = response.get_json()
            if isinstance(data, dict):
                data["extended_stats"] = [
                    *(s for s in data.get("extended_stats", []) if s.get("key") != TAB_KEY),
                    {"key": TAB_KEY, "data": tab_data(state)},
                ]
                response.set_data(charts.to_script_json(data))
        elif request.path == index_path and response.mimetype == "text/html":
            page = response.get_data(as_text=True)
            at = page.rfind("</body>")
            if at >= 0:
                response.set_data(page[:at] + CHARTS_LINK + page[at:])
        return response


def _download(body: str | bytes, mimetype: str, name: str, suffix: str) -> Response:
    """A file of the "Download Data" tab, named with the time it was made."""
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f"attachment;filename={name}_{int(time.time())}.{suffix}"
    return resp


def _error(message: str) -> Response:
    return Response(charts.to_script_json({"error": message}), status=400, mimetype="application/json")


def rate_json(state: LLMState) -> dict[str, Any]:
    """The open loop's schedule as the charts page shows it (``open_loop`` false in a closed loop)."""
    control = state.rate_control
    if control is None:
        return {"open_loop": False}
    return {
        "open_loop": True,
        "rate_per_s": control.rate_now(),
        "levels": [s.label for s in control.plan.segments],
        "burst": control.plan.burst,
    }


#: The link appended to Locust's index page (see the module docstring).
CHARTS_LINK = (
    '<a id="llm-locust-charts-link" href="./llm/charts" target="_blank" rel="noopener" '
    'title="TTFT, TPOT, output tok/s, users and in flight over time (opens a new tab)" '
    'style="position:fixed;right:20px;bottom:56px;z-index:1300;padding:8px 14px;border-radius:18px;'
    "background:#1f77b4;color:#fff;font:500 14px system-ui,sans-serif;text-decoration:none;"
    'box-shadow:0 2px 6px rgba(0,0,0,.35)">LLM live charts &#8599;</a>\n'
)


#: The charts of the live page: (div id, title, y axis title, [(trace name, Point field, colour key)]).
_CHARTS: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    *((m.stem, m.long_name, m.unit, charts.window_traces(m)) for m in shown_in(View.OVER_TIME)),
    ("tokens", "Output tokens/s, all streams", "tok/s", (("output tok/s", "output_tokens_per_s", "tokens"),)),
    (
        "rate",
        "Requests/s: completed, and the open loop's scheduled rate",
        "req/s",
        (("completed", "requests_per_s", "tokens"), ("scheduled", "target_rate_per_s", "users")),
    ),
    (
        "users",
        "Users and requests in flight",
        "count",
        (("in flight", "in_flight", "in_flight"), ("users", "users", "users")),
    ),
)
#: The server's own gauges (--server-metrics): hidden until a point carries one.
_SERVER_CHARTS: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "server-requests",
        "Server: running / waiting requests",
        "count",
        (("running", "server_running", "server_running"), ("waiting", "server_waiting", "server_waiting")),
    ),
    (
        "server-kv",
        "Server: KV-cache use",
        "fraction",
        (("KV cache", "server_kv_cache_usage", "kv"),),
    ),
)


def _trace(name: str, color: str) -> dict[str, Any]:
    line: dict[str, Any] = {"color": charts.COLORS[color]}
    if color == "users":  # a step, dashed: visible where it coincides with "in flight"
        line.update(shape="hv", dash="dash", width=2)
    return {"type": "scatter", "mode": "lines+markers", "name": name, "x": [], "y": [], "line": line}


def charts_html(model: str) -> str:
    """The live charts page; its script polls ``timeseries`` (relative URL) every :data:`POLL_MS`."""
    divs: list[str] = []
    server_divs: list[str] = []
    draws: list[str] = []
    series: dict[str, list[str]] = {}
    for div_id, title, unit, traces in (*_CHARTS, *_SERVER_CHARTS):
        div, js = charts.figure(
            f"chart-{div_id}",
            [_trace(name, color) for name, _field, color in traces],
            {
                "title": {"text": title},
                "xaxis": {"type": "date"},
                "yaxis": {"title": {"text": unit}, "rangemode": "tozero"},
                "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.12},
            },
        )
        (server_divs if div_id.startswith("server-") else divs).append(div)
        draws.append(js)
        series[f"chart-{div_id}"] = [field for _name, field, _color in traces]
    heading = "LLM live charts" + (f" · {model}" if model else "")
    body = (
        f"<h1>{html.escape(heading)}</h1>\n"
        '<p class="muted"><a href="../">&larr; Locust web UI</a> · <a href="stats/csv">LLM statistics CSV</a>'
        " · latencies are p50/p95 over a sliding window of the last seconds, from the merged histograms</p>\n"
        '<p id="llm-status">Waiting for the first point (one every 2 s once a test runs)…</p>\n'
        '<form id="llm-rate" hidden>Open loop: request rate <b id="llm-rate-now">–</b> req/s · set '
        '<input id="llm-rate-value" type="number" min="0" step="any" style="width:7em"> req/s '
        '<button type="submit">Set rate</button> <span id="llm-rate-status" class="muted"></span></form>\n'
        f'<div class="grid">{"".join(divs)}</div>'
        f'<div id="llm-server-charts" class="grid" style="display:none">{"".join(server_divs)}</div>'
    )
    script = "\n".join(draws) + _POLL_JS.replace("__SERIES__", charts.to_script_json(series)).replace(
        "__POLL_MS__", str(POLL_MS)
    )
    return charts.page(heading, body, script, plotly_src="plotly.min.js")


_POLL_JS = """
const SERIES = __SERIES__;
let lastTime = 0, firstTime = null, nPoints = 0;
const fmt = (v, d) => v === null || v === undefined ? "–" : v.toFixed(d);
function clearCharts() {
  for (const [div, fields] of Object.entries(SERIES)) {
    const el = document.getElementById(div);
    Plotly.restyle(el, {x: fields.map(() => []), y: fields.map(() => [])});
  }
  lastTime = 0; firstTime = null; nPoints = 0;
}
async function poll() {
  const status = document.getElementById("llm-status");
  try {
    const r = await fetch("timeseries?since=" + lastTime, {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    const data = await r.json();
    if (firstTime !== null && data.first_time_s !== firstTime) {  // stats were reset
      clearCharts();
      setTimeout(poll, 0);
      return;
    }
    const pts = data.points;
    if (pts.length) {
      firstTime = data.first_time_s;
      const x = pts.map(p => new Date(p.time_s * 1000));
      for (const [div, fields] of Object.entries(SERIES)) {
        Plotly.extendTraces(div, {x: fields.map(() => x), y: fields.map(f => pts.map(p => p[f]))},
                            fields.map((_, i) => i));
      }
      const server = document.getElementById("llm-server-charts");
      if (server.style.display === "none" && pts.some(p => p.server_running != null ||
                                                      p.server_kv_cache_usage != null)) {
        server.style.display = "";  // the server answers /metrics: show its charts
        server.querySelectorAll(".chart").forEach(el => Plotly.Plots.resize(el));
      }
      lastTime = pts[pts.length - 1].time_s;
      nPoints += pts.length;
      const p = pts[pts.length - 1];
      status.textContent = `Latest (${new Date(p.time_s * 1000).toLocaleTimeString()}): users ${p.users} · ` +
        `in flight ${p.in_flight} · TTFT p50 ${fmt(p.ttft_p50_ms, 0)} ms · TPOT p50 ` +
        `${fmt(p.tpot_p50_ms, 1)} ms · ${fmt(p.output_tokens_per_s, 0)} output tok/s · ` +
        `completed ${p.completed} · failed ${p.failed}` + (p.level ? ` · level ${p.level}` : "");
    }
    document.body.dataset.points = String(nPoints);
  } catch (e) {
    status.textContent = "Cannot reach Locust (" + e.message + "); retrying every 2 s";
  }
  setTimeout(poll, __POLL_MS__);
}
poll();
const rateForm = document.getElementById("llm-rate");
async function showRate(data) {
  if (!data) data = await (await fetch("rate", {cache: "no-store"})).json();
  rateForm.hidden = !data.open_loop || data.burst;
  if (data.open_loop) document.getElementById("llm-rate-now").textContent = fmt(data.rate_per_s, 2);
}
rateForm.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const status = document.getElementById("llm-rate-status");
  const rate = Number(document.getElementById("llm-rate-value").value);
  const r = await fetch("rate", {method: "POST", headers: {"Content-Type": "application/json"},
                                 body: JSON.stringify({rate})});
  const data = await r.json();
  status.textContent = r.ok ? `set: ${rate} req/s from half a second on` : data.error;
  if (r.ok) showRate(data);
});
setInterval(() => showRate().catch(() => {}), __POLL_MS__);
showRate().catch(() => {});
"""
