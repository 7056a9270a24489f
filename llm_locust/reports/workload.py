"""What the workload asked for against what the server did, in the results and the summary.

Four things: the conversation turns (a row per turn index, where a prefix cache shows: turn 1 pays
the whole prompt, later turns only their new messages), input tokens the server counted against
those the samples were built for, outputs that ended short of the tokens they asked for (AIPerf's
rule: more than min(5 %, 50) tokens short), and the share of prompt tokens served from the
server's prefix cache where its API reports it. Also which percentiles rest on too few samples to
mean what they say (:data:`~llm_locust.metrics.catalog.FEW_SAMPLES`).

Every formatter reads the results dict with ``get``, so a results file from before these keys
renders as it always did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.catalog import (
    FEW_SAMPLES_LEGEND,
    PERCENTILES,
    STAT_LABELS,
    TPOT,
    TTFT,
    TURN,
    TURN_STATS,
    Metric,
    few_samples,
    stat,
)
from llm_locust.metrics.histogram import finite

#: The finish reason a short output is counted under when its stream gave none.
NO_FINISH_REASON = "none"


# -- results -----------------------------------------------------------------------------------
def few_sample_keys(agg: Aggregate, metrics: Iterable[Metric], stats: Iterable[str]) -> list[str]:
    """The keys (``p99_ttft_ms``) of those ``stats`` of ``metrics`` that rest on too few samples."""
    wanted = tuple(stats)
    out = []
    for m in metrics:
        count = agg.hist[m.name].count
        out += [m.key(s) for s in wanted if few_samples(s, count)]
    return out


def cached_share(counts: Mapping[str, int]) -> float | None:
    """Cached input tokens / input tokens of the requests whose server reported its cache; None
    when none did (or they had no input tokens)."""
    reported = counts.get("cache_reported_input_tokens", 0)
    if not counts.get("cache_reported") or not reported:
        return None
    return counts.get("cached_input_tokens", 0) / reported


def cache_keys(counts: Mapping[str, int]) -> dict[str, Any]:
    """``cached_input_tokens`` (None when no request reported its cache) and ``cached_share``."""
    reported = bool(counts.get("cache_reported"))
    return {
        "cached_input_tokens": counts.get("cached_input_tokens", 0) if reported else None,
        "cached_share": cached_share(counts),
    }


def _common_diff(diffs: Counter[int]) -> int | None:
    """The most frequent non-zero difference (ties: the smallest in size, then the lower), so that
    the answer does not depend on the order in which workers' deltas arrived."""
    if not diffs:
        return None
    return min(diffs.items(), key=lambda kv: (-kv[1], abs(kv[0]), kv[0]))[0]


def check_results(agg: Aggregate) -> dict[str, Any]:
    """The run's length checks and prefix cache, as results keys."""
    c = agg.counts
    checked, mismatched = c["input_checked"], c["input_mismatched"]
    mean_diff = c["input_diff_sum"] / mismatched if mismatched else (0.0 if checked else None)
    return {
        "input_tokens_checked": checked,
        "input_tokens_mismatched": mismatched,
        "input_tokens_mean_diff": mean_diff,
        "input_tokens_common_diff": _common_diff(agg.input_diffs),
        "output_tokens_checked": c["output_checked"],
        "short_outputs": c["short_outputs"],
        "short_outputs_by_finish": dict(sorted(agg.short_by_finish.items(), key=lambda kv: (-kv[1], kv[0]))),
        "cache_reported": c["cache_reported"],
        **cache_keys(c),
    }


def turn_row(turn: int, agg: Aggregate) -> dict[str, Any]:
    """One entry of ``results["turns"]``: counts, :data:`TURN_STATS` of each :data:`TURN` metric and
    its sample count, tokens, the prefix cache, and the percentiles that rest on few samples."""
    row: dict[str, Any] = {
        "turn": turn,
        "completed": agg.counts["completed"],
        "failed": agg.failed,
        "cancelled": agg.counts["cancelled"],
    }
    for m in TURN:
        h = agg.hist[m.name]
        s = h.summary(PERCENTILES)
        row.update((m.key(name), finite(stat(s, name))) for name in TURN_STATS)
        row[m.key("count")] = h.count
    row["total_input_tokens"] = agg.counts["total_input_tokens"]
    row["total_output_tokens"] = agg.counts["total_output_tokens"]
    row.update(cache_keys(agg.counts))
    row["few_sample_percentiles"] = few_sample_keys(agg, TURN, TURN_STATS)
    return row


def turn_rows(agg: Aggregate) -> list[dict[str, Any]]:
    return [turn_row(turn, sub) for turn, sub in sorted(agg.turns.items()) if not sub.empty]


# -- the terminal summary ----------------------------------------------------------------------
def marked(text: str, width: int, flagged: bool) -> str:
    """A right-aligned cell of ``width``; a flagged value ends in ``*`` in the last column."""
    return f"{text:>{width - 1}}*" if flagged else f"{text:>{width}}"


def any_flagged(res: Mapping[str, Any]) -> bool:
    """Whether the run's table, a level or a turn shows a percentile of few samples."""
    rows: list[Mapping[str, Any]] = [res, *(res.get("levels") or []), *(res.get("turns") or [])]
    return any(r.get("few_sample_percentiles") for r in rows)


def legend_lines(res: Mapping[str, Any]) -> list[str]:
    return ["", FEW_SAMPLES_LEGEND] if any_flagged(res) else []


def short_warning(res: Mapping[str, Any]) -> str | None:
    """The warning about outputs that ended short of what they asked for, or None when none did."""
    short = res.get("short_outputs") or 0
    if not short:
        return None
    finishes = ", ".join(f"{k} {v}" for k, v in (res.get("short_outputs_by_finish") or {}).items())
    return (
        f"{short} of {res.get('output_tokens_checked', '?')} requests ended more than min(5 %, 50) "
        f"tokens short of what they asked for (finish: {finishes or '-'}): throughput figures compare "
        "unlike work; use --ignore-eos or --min-tokens"
    )


def input_check_text(res: Mapping[str, Any]) -> str | None:
    """``12/300 differ (mean +9.0, most often +9)``; None when no request could be checked."""
    checked = res.get("input_tokens_checked") or 0
    if not checked:
        return None
    mismatched = res.get("input_tokens_mismatched") or 0
    text = f"{mismatched}/{checked} differ"
    if mismatched:
        text += f" (mean {res.get('input_tokens_mean_diff') or 0.0:+.1f}"
        common = res.get("input_tokens_common_diff")
        text += f", most often {common:+d})" if isinstance(common, int) else ")"
    return text


def cache_text(share: float | None) -> str:
    return "-" if share is None else f"{100.0 * share:.1f} %"


def check_lines(res: Mapping[str, Any], w: int) -> list[str]:
    """The summary's lines on lengths and the prefix cache, each only where it has something to say."""
    lines = []
    text = input_check_text(res)
    if text is not None:
        lines.append(f"{'Input tokens vs samples:':<{w}}{text}")
    share = res.get("cached_share")
    if res.get("cache_reported"):
        lines.append(
            f"{'Prefix cache:':<{w}}{cache_text(share)} of prompt tokens cached (servers that report it)"
        )
    warning = short_warning(res)
    if warning is not None:
        lines.append(f"WARNING: {warning}")
    return lines


def several_turns(turns: Sequence[Mapping[str, Any]] | None) -> bool:
    """Whether the run sent more than one turn index (else the per-turn table says nothing new)."""
    return len(turns or []) > 1


def _num(x: Any, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def format_turns(turns: Sequence[Mapping[str, Any]]) -> str:
    """The per-turn table: turn, ok, fail, TTFT p50 / p99, TPOT p50, cached share of prompt tokens."""
    cols = ((TTFT, "median"), (TTFT, "p99"), (TPOT, "median"))
    head = f"{'turn':>6}{'ok':>7}{'fail':>6}" + "".join(
        f"{m.label + ' ' + STAT_LABELS[k]:>12}" for m, k in cols
    )
    lines = ["Per turn (requests grouped by the conversation turn they sent)", head + f"{'cached':>9}"]
    for r in turns:
        flagged = set(r.get("few_sample_percentiles") or ())
        cells = "".join(marked(_num(r.get(m.key(k))), 12, m.key(k) in flagged) for m, k in cols)
        lines.append(
            f"{r.get('turn'):>6}{r.get('completed', 0):>7}{r.get('failed', 0):>6}{cells}"
            f"{cache_text(r.get('cached_share')):>9}"
        )
    return "\n".join(lines)
