"""Charts that need no network: plotly.js as the ``plotly`` package ships it, figures as JSON specs.

Every page we render (the live charts page, ``--llm-html``, ``llm-locust compare --html``) draws
with ``Plotly.newPlot(div, traces, layout)``. The figures are plain dicts, so nothing here imports
plotly's Python API; only the bundled ``plotly.min.js`` is read (once, lazily).
"""

from __future__ import annotations

import html
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson

from llm_locust.metrics.catalog import Metric

#: Colours shared by every page, so a metric looks the same everywhere.
COLORS: dict[str, str] = {
    "p50": "#1f77b4",
    "p95": "#d62728",
    "tokens": "#2ca02c",
    "users": "#7f7f7f",
    "in_flight": "#ff7f0e",
    "server_running": "#9467bd",
    "server_waiting": "#8c564b",
    "kv": "#17becf",
}


def window_traces(metric: Metric) -> tuple[tuple[str, str, str], ...]:
    """A metric drawn over time: (trace name, field of the time series' points, colour key) for
    each of its window percentiles, e.g. ``("p95", "ttft_p95_ms", "p95")``."""
    return tuple((f"p{p:g}", field, f"p{p:g}") for p, field in metric.window)


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The minified plotly.js bundled in the ``plotly`` Python package (about 4.6 MB)."""
    return (resources.files("plotly") / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def to_script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>`` can close it early)."""
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8")
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def figure(div_id: str, traces: list[dict[str, Any]], layout: dict[str, Any]) -> tuple[str, str]:
    """A chart's ``<div>`` and the JavaScript that draws it."""
    base_layout = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "hovermode": "x unified"}
    spec = {"traces": traces, "layout": {**base_layout, **layout}}
    div = f'<div id="{html.escape(div_id)}" class="chart"></div>'
    js = (
        f"Plotly.newPlot({to_script_json(div_id)}, {to_script_json(spec['traces'])}, "
        f"{to_script_json(spec['layout'])}, {{responsive: true, displaylogo: false}});"
    )
    return div, js


def page(title: str, body: str, script: str, *, plotly_src: str | None = None) -> str:
    """A complete HTML page. With ``plotly_src`` None, plotly.js is inlined (the page is one
    self-contained file); otherwise it is loaded from that URL (e.g. our own web UI route)."""
    if plotly_src is None:
        plotly_tag = f"<script>{plotly_js()}</script>"
    else:
        plotly_tag = f'<script src="{html.escape(plotly_src)}"></script>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
{plotly_tag}
</head>
<body>
{body}
<script>
{script}
</script>
</body>
</html>
"""


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 16px 24px; color: #222; }
h1 { font-size: 1.5em; margin: 0.3em 0; } h2 { font-size: 1.2em; margin-top: 1.6em;
       border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.chart { width: 100%; height: 340px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 8px; }
.muted { color: #777; font-size: 0.9em; }
"""
