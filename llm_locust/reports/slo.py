"""The verdicts of ``--slo`` on a run's results, per level with ``--slo-per-level``, and how the
summary shows them and goodput."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from llm_locust.metrics.slo import EXIT_SLO_MISSED, Objective, evaluate


def attach(res: dict[str, Any], objectives: Sequence[Objective], per_level: bool) -> bool:
    """Evaluate the objectives on ``res`` (and on each level's row with ``per_level``), write the
    verdicts into ``res["slo"]``; True when the run missed one."""
    if not objectives:
        return False
    verdicts = evaluate(objectives, res)
    out: dict[str, Any] = {
        "objectives": [v.to_json() for v in verdicts],
        "passed": all(v.passed for v in verdicts),
        "exit_code_on_miss": EXIT_SLO_MISSED,
    }
    if per_level:
        levels = []
        for row in res.get("levels", []):
            level_verdicts = evaluate(objectives, row)
            levels.append({"users": row["users"], "passed": all(v.passed for v in level_verdicts),
                           "objectives": [v.to_json() for v in level_verdicts]})  # fmt: skip
        out["levels"] = levels
        out["capacity"] = capacity(levels)
    res["slo"] = out
    return not out["passed"]


def capacity(levels: list[dict[str, Any]]) -> str | None:
    """The highest level (by its number of users, or its request rate) whose requests met every
    objective: how many users, or what rate, the server serves within its objectives."""
    from llm_locust.reports.summary import level_number

    best: tuple[float, str] | None = None
    for level in levels:
        users = level_number(str(level["users"]))
        if users is None:
            continue
        if level["passed"] and (best is None or users > best[0]):
            best = (users, str(level["users"]))
    return best[1] if best else None


def _value(measured: float | None) -> str:
    if measured is None or not math.isfinite(measured):
        return "no data"
    return f"{measured:,.4g}" if abs(measured) < 1 else f"{measured:,.2f}"


def lines(res: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if res.get("request_goodput") is not None:
        out.append(f"Goodput: {res['request_goodput']:.2f} req/s; {res['goodput_share']:.1%} of finished "
                   "requests met every --goodput bound")  # fmt: skip
    slo = res.get("slo")
    if not slo:
        return out
    missed = [o for o in slo["objectives"] if not o["passed"]]
    head = "all met" if not missed else f"{len(missed)} missed: exit code {slo['exit_code_on_miss']}"
    out.append(f"SLOs ({head})")
    width = max(len(o["objective"]) for o in slo["objectives"]) + 2
    for o in slo["objectives"]:
        out.append(f"  {'PASS' if o['passed'] else 'FAIL'}  {o['objective']:<{width}}{_value(o['measured'])}")
    if "levels" in slo:
        per = ", ".join(f"{lv['users']} {'pass' if lv['passed'] else 'fail'}" for lv in slo["levels"])
        out.append(f"  per level: {per}")
        cap = slo["capacity"]
        out.append(f"  highest level meeting every objective: {cap + ' users' if cap else 'none'}")
    return out
