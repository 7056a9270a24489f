"""The server's own metrics (``server_metrics`` of the results, see
:mod:`llm_locust.locust.servermetrics`) in the end-of-run summary and the HTML report: pure functions
of the results dict, empty when the server was not polled."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

#: The server's latencies beside ours: (label, key in server_metrics.latency).
_LATENCIES = (("queue", "queue"), ("prefill", "prefill"), ("decode", "decode"), ("TTFT", "ttft"),
              ("ITL", "itl"))  # fmt: skip


def _num(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:,}" if isinstance(x, int) else f"{x:,.{digits}f}"


def _max(g: Mapping[str, Any] | None) -> Any:
    return None if not g else g.get("max")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f} %"


def heading(sm: Mapping[str, Any]) -> str:
    window = sm.get("window") or {}
    failed = f", {sm['failures']} failed" if sm.get("failures") else ""
    return (
        f"{sm.get('engine') or 'unknown engine'} at {sm.get('url')}: {sm.get('polls')} polls{failed}, "
        f"window {window.get('duration_s', 0.0):.2f} s"
    )


def tokens_warning(sm: Mapping[str, Any]) -> str | None:
    """One line when the server's generated tokens over the window differ from ours."""
    check = sm.get("tokens_check") or {}
    diff = check.get("difference")
    if not diff:
        return None
    more = "more" if diff > 0 else "fewer"
    return (
        f"the server generated {abs(diff):,} tokens {more} than our successful requests received over the "
        "window (requests in flight at its edges, failed or cancelled ones, or other clients of the server)"
    )


def lines(res: Mapping[str, Any], w: int = 44) -> list[str]:
    """The summary's block; [] without ``server_metrics``."""
    sm = res.get("server_metrics")
    if not sm:
        return []
    check = sm.get("tokens_check") or {}
    out = ["-" * 72, f"Server metrics ({heading(sm)})"]
    out.append(f"{'  Running / waiting requests (max):':<{w}}{_num(_max(sm.get('running')), 0)} / "
               f"{_num(_max(sm.get('waiting')), 0)}")  # fmt: skip
    if sm.get("kv_cache_usage"):
        out.append(f"{'  KV-cache use (max):':<{w}}{_pct(_max(sm['kv_cache_usage']))}")
    out.append(
        f"{'  Generation tokens, server / ours:':<{w}}{_num(check.get('server_generation_tokens'))} / "
        f"{_num(check.get('our_output_tokens'))} (difference {_num(check.get('difference'))})"
    )
    out.append(f"{'  Prompt tokens (server):':<{w}}{_num(sm.get('prompt_tokens'))}")
    if sm.get("prefix_cache_queries"):
        out.append(f"{'  Prefix-cache hit rate (server):':<{w}}{_pct(sm.get('prefix_cache_hit_rate'))}")
    if sm.get("preemptions") is not None:
        out.append(f"{'  Preemptions:':<{w}}{_num(sm['preemptions'])}")
    latency = sm.get("latency") or {}
    shown = [(label, latency[key]) for label, key in _LATENCIES if latency.get(key)]
    if shown:
        names = "/".join(label for label, _ in shown)
        means = " / ".join(_num(h.get("mean_ms")) for _, h in shown)
        out.append(f"{'  Server ' + names + ' mean (ms):':<{w}}{means}")
        ours = sm.get("ours") or {}
        out.append(f"{'  Our TTFT/TPOT mean (ms):':<{w}}{_num(ours.get('mean_ttft_ms'))} / "
                   f"{_num(ours.get('mean_tpot_ms'))}")  # fmt: skip
    warning = tokens_warning(sm)
    if warning:
        out.append(f"NOTE: {warning}")
    return out


def has_series(points: list[Mapping[str, Any]]) -> bool:
    """Whether the time series carries any of the server's values (charts shown only then)."""
    keys = ("server_running", "server_waiting", "server_kv_cache_usage")
    return any(p.get(k) is not None for p in points for k in keys)


def html_section(res: Mapping[str, Any]) -> str:
    """The HTML report's section; "" without ``server_metrics``."""
    sm = res.get("server_metrics")
    if not sm:
        return ""
    check = sm.get("tokens_check") or {}
    rows = [
        ("Requests running, max / last", f"{_num(_max(sm.get('running')), 0)} / "
         f"{_num((sm.get('running') or {}).get('last'), 0)}"),
        ("Requests waiting, max / last", f"{_num(_max(sm.get('waiting')), 0)} / "
         f"{_num((sm.get('waiting') or {}).get('last'), 0)}"),
        ("KV-cache use, max", _pct(_max(sm.get("kv_cache_usage")))),
        ("Generation tokens: server / ours / difference", f"{_num(check.get('server_generation_tokens'))} / "
         f"{_num(check.get('our_output_tokens'))} / {_num(check.get('difference'))}"),
        ("Prompt tokens (server)", _num(sm.get("prompt_tokens"))),
        ("Prefix-cache hit rate (server)", _pct(sm.get("prefix_cache_hit_rate"))),
        ("Preemptions", _num(sm.get("preemptions"))),
    ]  # fmt: skip
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    latency = sm.get("latency") or {}
    ours = sm.get("ours") or {}
    lat_rows = [
        (f"server {label}", h.get("count"), h.get("mean_ms"), h.get("p50_ms"), h.get("p99_ms"))
        for label, key in _LATENCIES
        if (h := latency.get(key))
    ]
    lat_rows += [
        ("our TTFT", None, ours.get("mean_ttft_ms"), ours.get("median_ttft_ms"), ours.get("p99_ttft_ms")),
        ("our TPOT", None, ours.get("mean_tpot_ms"), ours.get("median_tpot_ms"), ours.get("p99_tpot_ms")),
    ]
    lat = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_num(v)}</td>" for v in vals) + "</tr>"
        for name, *vals in lat_rows
    )
    warning = tokens_warning(sm)
    note = f'<p class="muted">{html.escape(warning)}</p>' if warning else ""
    return (
        '<h2 id="server-metrics">Server metrics</h2>'
        f'<p class="muted">{html.escape(heading(sm))}. Server quantiles are interpolated within the '
        "server's histogram buckets (Prometheus' histogram_quantile); its means are exact.</p>"
        f"<table>{table}</table>{note}"
        "<table><tr><th>latency (ms)</th><th>count</th><th>mean</th><th>p50</th><th>p99</th></tr>"
        f"{lat}</table>"
    )
