"""The HTML report's building blocks: escaped text, numbers for tables, tables, "no data" notes,
and the mark of a percentile that rests on few samples."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from llm_locust.metrics.catalog import FEW_SAMPLES_LEGEND


def e(value: Any) -> str:
    return html.escape(str(value))


def fmt(x: Any, digits: int | None = None) -> str:
    """A number for a table: thousands separators, digits by magnitude unless given; a dash for none."""
    if x is None or isinstance(x, str):
        return "–" if x is None else e(x)
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int) or not math.isfinite(x):
        return f"{x:,}" if isinstance(x, int) else "–"
    if digits is None:
        digits = 0 if abs(x) >= 1000 else 1 if abs(x) >= 100 else 2
    return f"{x:,.{digits}f}"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A table of already-escaped cells."""
    klass = f' class="{cls}"' if cls else ""
    th = "".join(f"<th>{h}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table{klass}><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def no_data(text: str) -> str:
    return f'<div class="nodata">{e(text)}</div>'


def mark(cell: str, flagged: bool) -> str:
    """A cell's text with the few-samples mark (``*``, its meaning on hover) when ``flagged``."""
    return f'{cell}<span class="few" title="{e(FEW_SAMPLES_LEGEND[2:])}">*</span>' if flagged else cell


def legend(shown: bool) -> str:
    """The few-samples legend under a table that marked a value, else nothing."""
    return f'<p class="muted few-legend">{e(FEW_SAMPLES_LEGEND)}</p>' if shown else ""
