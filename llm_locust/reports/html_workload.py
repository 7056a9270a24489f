"""The HTML report's view of :mod:`llm_locust.reports.workload`: the checks of lengths and the
prefix cache under the summary heading, and the per-turn table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_locust.metrics.catalog import TPOT, TTFT
from llm_locust.reports.html_parts import e, fmt, legend, mark, table
from llm_locust.reports.workload import cache_text, input_check_text, several_turns, short_warning

__all__ = ["checks_html", "several_turns", "turns_section"]


def checks_html(res: Mapping[str, Any]) -> str:
    """A list of what the workload's checks found (input tokens vs samples, the prefix cache,
    short outputs), each only where it has something to say; nothing when none has."""
    items = []
    text = input_check_text(res)
    if text is not None:
        items.append(f"<li>Input tokens vs samples: {e(text)}</li>")
    if res.get("cache_reported"):
        share = cache_text(res.get("cached_share"))
        items.append(f"<li>Prefix cache: {e(share)} of prompt tokens cached (servers that report it)</li>")
    warning = short_warning(res)
    if warning is not None:
        items.append(f'<li class="bad short-outputs"><strong>Warning</strong>: {e(warning)}</li>')
    items += slo_items(res)
    return f'<ul class="checks">{"".join(items)}</ul>' if items else ""


def slo_items(res: Mapping[str, Any]) -> list[str]:
    """Goodput and each --slo objective's verdict (a missed one in red), as list items."""
    items = []
    if res.get("request_goodput") is not None:
        items.append(f"<li>Goodput: {res['request_goodput']:.2f} good req/s, {res['goodput_share']:.1%} of "
                     "finished requests met every --goodput bound</li>")  # fmt: skip
    slo = res.get("slo") or {}
    for o in slo.get("objectives", []):
        measured = "no data" if o["measured"] is None else f"{o['measured']:,.4g}"
        verdict, css = ("PASS", "slo") if o["passed"] else ("FAIL", "bad slo")
        items.append(f'<li class="{css}"><strong>{verdict}</strong> {e(o["objective"])}: {e(measured)}</li>')
    if "capacity" in slo:
        cap = slo["capacity"]
        items.append(
            f"<li>Highest level meeting every objective: {e(cap + ' users' if cap else 'none')}</li>"
        )
    return items


#: Per-turn columns after turn, OK and failed: (heading, key in the turn row).
_TURN_COLUMNS: tuple[tuple[str, str], ...] = (
    *((TTFT.stat_label(k), TTFT.key(k)) for k in ("median", "p99")),
    (TPOT.stat_label("median"), TPOT.key("median")),
)


def turns_section(res: Mapping[str, Any]) -> str:
    """The per-turn table, when the run sent more than one turn index; else nothing."""
    turns = res.get("turns") or []
    if not several_turns(turns):
        return ""
    head = ("Turn", "OK", "Failed", *(h for h, _k in _TURN_COLUMNS), "Prompt tokens cached")
    rows = []
    for r in turns:
        flagged = set(r.get("few_sample_percentiles") or ())
        rows.append(
            (
                fmt(r.get("turn")),
                fmt(r.get("completed")),
                fmt(r.get("failed")),
                *(mark(fmt(r.get(k)), k in flagged) for _h, k in _TURN_COLUMNS),
                e(cache_text(r.get("cached_share"))),
            )
        )
    any_flagged = any(r.get("few_sample_percentiles") for r in turns)
    return (
        '<h2 id="turns">Per turn</h2>'
        '<p class="muted">Requests grouped by the conversation turn they sent (1: the first user '
        "message). Later turns resend the conversation so far: a server with a prefix cache answers "
        "them sooner than turn 1.</p>"
        f"{table(head, rows)}{legend(any_flagged)}"
    )
