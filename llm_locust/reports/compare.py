"""``llm-locust compare``: results files written by ``--llm-json``, side by side.

The first run is the baseline: every later run gets a column ``later/first`` with the ratio of its
value to the baseline's (``0.52x``), marked *better* or *worse* where the metric has a direction
(lower is better for latencies and failures, higher for throughput). Ladder runs also get a
per-level table aligned on the number of users (``-`` where a run lacks that level). Runs of
conversations get a TTFT p50 row per turn (where a prefix cache shows: turn 1 against later turns).

Everything here is a pure function of the loaded files except :func:`run`, the CLI entry point;
the HTML report is built by :mod:`llm_locust.reports.compare_html`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from llm_locust.metrics.catalog import TOKENS_PER_S, TTFT, View, shown_in

#: Keys every llm-locust results file has (``report.results``); a file without them is refused.
REQUIRED_KEYS: tuple[str, ...] = ("completed", "failed", "duration", "metadata")


class CompareError(ValueError):
    """A results file or an option that cannot be compared; the message is shown as one line."""


@dataclass(frozen=True, slots=True)
class Run:
    """One results file: the column ``name`` it is shown under, its ``path`` and its parsed JSON."""

    name: str
    path: str
    results: dict[str, Any]

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.results.get("metadata")
        return meta if isinstance(meta, dict) else {}

    def number(self, key: str) -> float | None:
        return number(self.results.get(key))

    def levels(self) -> dict[str, dict[str, Any]]:
        """Ladder level rows keyed by their ``users`` label (empty for a run without a ladder)."""
        rows = self.results.get("levels")
        if not isinstance(rows, list):
            return {}
        return {str(r["users"]): r for r in rows if isinstance(r, dict) and "users" in r}

    def turns(self) -> dict[int, dict[str, Any]]:
        """Rows of ``results["turns"]`` keyed by turn index (empty for a file from before turns)."""
        rows = self.results.get("turns")
        if not isinstance(rows, list):
            return {}
        return {r["turn"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("turn"), int)}

    def value(self, measure: Measure) -> float | None:
        """The measure's value in this run: of its turn's row for a per-turn measure."""
        if measure.turn is None:
            return self.number(measure.key)
        return number(self.turns().get(measure.turn, {}).get(measure.key))


@dataclass(frozen=True, slots=True)
class Measure:
    """A row of the comparison: its label, its key in the results, which direction is better
    (``"lower"``, ``"higher"`` or ``""`` for neither), the decimals shown and the group of rows
    it belongs to (the HTML table draws a line between groups); ``turn``: the key is read from that
    turn's row of ``results["turns"]``."""

    label: str
    key: str
    better: str = ""
    digits: int = 2
    group: str = "requests"
    turn: int | None = None


#: The run's counts and throughputs, before the catalog's metrics.
RUN_MEASURES: tuple[Measure, ...] = (
    Measure("Successful requests", "completed", digits=0),
    Measure("Failed requests", "failed", "lower", digits=0),
    Measure("Cancelled at the end", "cancelled", digits=0),
    Measure("Duration (s)", "duration"),
    Measure("Request throughput (req/s)", "request_throughput", "higher", group="throughput"),
    Measure("Output throughput (tok/s)", "output_throughput", "higher", group="throughput"),
    Measure("Total token throughput (tok/s)", "total_token_throughput", "higher", group="throughput"),
    Measure("Concurrency (mean in flight)", "concurrency", group="throughput"),
)


def measures(runs: Sequence[Run]) -> tuple[Measure, ...]:
    """Every row of the comparison: :data:`RUN_MEASURES`, then each ``compare_stats`` of the
    catalog's metrics shown in compare (an optional one only where some run has samples of it)."""
    metrics = [
        m for m in shown_in(View.COMPARE) if not m.optional or any(r.number(m.key("count")) for r in runs)
    ]
    rows = [
        Measure(m.stat_label(k), m.key(k), m.better, group=m.name) for m in metrics for k in m.compare_stats
    ]
    return (*RUN_MEASURES, *goodput_measures(runs), *rows, *turn_measures(runs))


def goodput_measures(runs: Sequence[Run]) -> tuple[Measure, ...]:
    """Goodput rows, where some run was given --goodput bounds (compare runs with the same bounds)."""
    if not any(r.number("request_goodput") is not None for r in runs):
        return ()
    return (
        Measure("Goodput (good req/s)", "request_goodput", "higher", group="throughput"),
        Measure("Goodput share", "goodput_share", "higher", digits=3, group="throughput"),
    )


def turn_measures(runs: Sequence[Run]) -> tuple[Measure, ...]:
    """A TTFT p50 row per turn index of any run, when every run has turns and some run more than one."""
    per_run = [run.turns() for run in runs]
    if not all(per_run) or max(len(t) for t in per_run) < 2:
        return ()
    indices = sorted({i for turns in per_run for i in turns})
    return tuple(
        Measure(f"TTFT p50, turn {i} ({TTFT.unit})", TTFT.key("median"), TTFT.better, group="turns", turn=i)
        for i in indices
    )


#: The seed's per-level comparison: (heading, key in a level row, decimals).
LEVEL_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("per-stream tok/s p50", TOKENS_PER_S.key("median"), 1),
    (TTFT.stat_label("median"), TTFT.key("median"), 1),
    ("aggregate tok/s", "output_throughput", 1),
)


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None for a missing, non-numeric or non-finite value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# -- loading -----------------------------------------------------------------------------------
def load(path: str, name: str | None = None) -> Run:
    """Read one results file; raise :class:`CompareError` naming the file and the problem."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CompareError(f"{path}: no such file") from None
    except OSError as exc:
        raise CompareError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        res = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CompareError(f"{path} is not JSON ({exc})") from None
    if not isinstance(res, dict):
        raise CompareError(
            f"{path} is not an llm-locust results file (expected a JSON object, got {type(res).__name__});"
            " write one with --llm-json"
        )
    missing = [k for k in REQUIRED_KEYS if k not in res]
    if missing:
        raise CompareError(
            f"{path} is not an llm-locust results file (no {', '.join(map(repr, missing))});"
            " write one with --llm-json"
        )
    return Run(name or os.path.splitext(os.path.basename(path))[0], path, res)


def load_runs(paths: Sequence[str], names: str | None = None) -> list[Run]:
    """Load at least two files, named by ``names`` (comma-separated) or else by file stem."""
    if len(paths) < 2:
        raise CompareError(f"give at least 2 results files to compare (got {len(paths)})")
    if names is None:
        labels = [os.path.splitext(os.path.basename(p))[0] for p in paths]
        if len(set(labels)) < len(labels):  # e.g. vllm/results.json and ollama/results.json
            labels = list(paths)
    else:
        labels = [n.strip() for n in names.split(",")]
        if len(labels) != len(paths) or not all(labels):
            raise CompareError(
                f"--names {names!r} has {len(labels)} name(s) for {len(paths)} files;"
                " give one non-empty name per file, comma-separated"
            )
    return [load(p, n) for p, n in zip(paths, labels, strict=True)]


# -- rows --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Row:
    """One metric's value in each run (None where the run lacks it)."""

    metric: Measure
    values: tuple[float | None, ...]

    def ratio(self, i: int) -> float | None:
        """Run ``i``'s value divided by the first run's; None where undefined."""
        base, value = self.values[0], self.values[i]
        if base is None or value is None or base == 0:
            return None
        return value / base

    def verdict(self, i: int) -> str:
        """``"better"``, ``"worse"`` or ``""`` (no direction, no ratio, or equal at 2 decimals)."""
        r = self.ratio(i)
        if r is None or not self.metric.better or f"{r:.2f}" == "1.00":
            return ""
        return "better" if (r < 1) == (self.metric.better == "lower") else "worse"


def metric_rows(runs: Sequence[Run]) -> list[Row]:
    return [Row(m, tuple(run.value(m) for run in runs)) for m in measures(runs)]


def _users_key(label: str) -> tuple[float, str]:
    try:
        return (float(label), label)
    except ValueError:
        return (math.inf, label)


@dataclass(frozen=True, slots=True)
class LevelRow:
    """One ladder level: for each run, its :data:`LEVEL_COLUMNS` values, or None if it lacks the level."""

    users: str
    cells: tuple[tuple[float | None, ...] | None, ...]


def level_rows(runs: Sequence[Run]) -> list[LevelRow]:
    """Every users level present in any run, in numeric order; empty when no run is a ladder."""
    per_run = [run.levels() for run in runs]
    labels = sorted({label for levels in per_run for label in levels}, key=_users_key)
    rows = []
    for label in labels:
        cells = tuple(
            tuple(number(levels[label].get(key)) for _h, key, _d in LEVEL_COLUMNS)
            if label in levels
            else None
            for levels in per_run
        )
        rows.append(LevelRow(label, cells))
    return rows


def differing_options(runs: Sequence[Run]) -> list[tuple[str, list[str]]]:
    """Options (other than host and model, shown anyway) whose values are not the same in all runs."""
    opts = [r.metadata.get("options") for r in runs]
    dicts = [o if isinstance(o, dict) else {} for o in opts]
    keys = sorted({k for d in dicts for k in d} - {"host", "model"})
    out = []
    for key in keys:
        values = [_plain(d.get(key, "-")) for d in dicts]
        if len(set(values)) > 1:
            out.append((key, values))
    return out


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def fmt_ratio(row: Row, i: int) -> str:
    r = row.ratio(i)
    if r is None:
        return "-"
    verdict = row.verdict(i)
    return f"{r:.2f}x {verdict}" if verdict else f"{r:.2f}x"


# -- text --------------------------------------------------------------------------------------
def _columns(header: list[str], body: list[list[str]], left: int) -> list[str]:
    """Aligned lines: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        cells = [
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def api_flavor(run: Run) -> str:
    """The run's API flavor and how it was chosen, ``-`` for a results file without one."""
    api, by = run.metadata.get("api"), run.metadata.get("api_detected_by")
    if not api:
        return "-"
    return f"{api} (from {by})" if by else str(api)


def any_api(runs: Sequence[Run]) -> bool:
    """Whether any run says which API flavor it used (results files before flavors do not)."""
    return any(r.metadata.get("api") for r in runs)


def run_lines(runs: Sequence[Run]) -> list[str]:
    """Who each column is: name, file, host, model, API flavor (where known), peak users, start time."""
    api = any_api(runs)
    body = []
    for run in runs:
        m = run.metadata
        body.append(
            [
                run.name,
                run.path,
                str(m.get("host", "-")),
                str(m.get("model", "-")),
                *([api_flavor(run)] if api else []),
                str(m.get("users", "-")),
                str(m.get("start_time", "-")),
            ]
        )
    header = ["run", "file", "host", "model", *(["api"] if api else []), "peak users", "started"]
    lines = _columns(header, body, left=len(header))
    for key, values in differing_options(runs):
        lines.append(
            f"Option {key} differs: " + " | ".join(f"{r.name} {v}" for r, v in zip(runs, values, strict=True))
        )
    return lines


def metric_table(runs: Sequence[Run]) -> list[str]:
    names = [r.name for r in runs]
    header = ["metric", "better", names[0]]
    for name in names[1:]:
        header += [name, f"{name}/{names[0]}"]
    body = []
    for row in metric_rows(runs):
        cells = [row.metric.label, row.metric.better, fmt(row.values[0], row.metric.digits)]
        for i in range(1, len(runs)):
            cells += [fmt(row.values[i], row.metric.digits), fmt_ratio(row, i)]
        body.append(cells)
    return _columns(header, body, left=2)


def level_table(runs: Sequence[Run]) -> list[str]:
    """The per-level comparison, grouped by metric with one column per run; empty without levels."""
    rows = level_rows(runs)
    if not rows:
        return []
    n = len(runs)
    header = ["users"] + [r.name for _c in LEVEL_COLUMNS for r in runs]
    body = []
    for row in rows:
        cells = [row.users]
        for j, (_h, _k, digits) in enumerate(LEVEL_COLUMNS):
            cells += [fmt(c[j], digits) if c is not None else "-" for c in row.cells]
        body.append(cells)
    width = max(len(c) for r in [header, *body] for c in r[1:])
    width = max(width, *(-(-(len(h) - 2 * (n - 1)) // n) for h, _k, _d in LEVEL_COLUMNS))
    users_w = max(len(r[0]) for r in [header, *body])
    group_w = n * width + 2 * (n - 1)
    groups = " " * users_w + "".join("    " + h.center(group_w) for h, _k, _d in LEVEL_COLUMNS)
    lines = [groups.rstrip()]
    for r in [header, *body]:
        line = r[0].rjust(users_w)
        for j in range(len(LEVEL_COLUMNS)):
            line += "    " + "  ".join(c.rjust(width) for c in r[1 + j * n : 1 + (j + 1) * n])
        lines.append(line)
    return lines


def format_text(runs: Sequence[Run]) -> str:
    """The whole comparison as printed by ``llm-locust compare``."""
    lines = [*run_lines(runs), "", f"Ratios are to the first run ({runs[0].name}).", *metric_table(runs)]
    levels = level_table(runs)
    if levels:
        lines += [
            "",
            "Per level (requests grouped by the users when they were sent, or the rate they were due at;"
            " - = no such level)",
        ]
        lines += levels
    return "\n".join(lines)
