"""Service-level objectives (``--slo``) and goodput (``--goodput``): what a CI job gates a release on.

An objective is ``NAME OP VALUE[UNIT]``: ``ttft_p95<=500ms``, ``tpot_p50<40ms``, ``error_rate<=1%``,
``output_throughput>=2000``, ``goodput_share>=99%``, ``short_outputs<=0``. ``NAME`` is a metric of the
catalog and one of its statistics (``STEM_STAT``: ``ttft_p99``, ``e2el_mean``, ``tokens_per_s_min``;
``p50`` is the median) or one of :data:`RUN_VALUES`. A duration takes ``ms`` or ``s``; a share or a
rate of errors ``%`` (or a plain fraction). Evaluated on the results dict, so the verdict of a run
with workers is the verdict of the merged numbers.

Goodput is vLLM's: a request is good when it succeeded and met every bound given
(``ttft:MS tpot:MS e2el:MS``); ``request_goodput`` = good requests / duration. It is counted per
request as it is recorded (a histogram cannot tell which requests met all bounds at once).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llm_locust.errors import ConfigError
from llm_locust.metrics.catalog import CATALOG, STATS

#: Run-wide values an objective may name (results key -> what it is).
RUN_VALUES: dict[str, str] = {
    "error_rate": "failed / (completed + failed)",
    "request_throughput": "completed requests per second",
    "output_throughput": "output tokens per second",
    "total_token_throughput": "input and output tokens per second",
    "request_goodput": "good requests per second (--goodput)",
    "goodput_share": "good requests / (completed + failed) (--goodput)",
    "completed": "successful requests",
    "failed": "failed requests",
    "short_outputs": "requests that ended short of their max tokens",
    "cached_share": "share of prompt tokens served from the prefix cache",
}
_SHARES = ("error_rate", "goodput_share", "cached_share")
_STAT_NAMES = {**{s: s for s in STATS}, "p50": "median"}
_OPS = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}
_EXPR = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)\s*(ms|s|%)?\s*$")
#: --goodput's bounds: name -> the record's accessor (ms)
GOODPUT_BOUNDS = {"ttft": "ttft_ms", "tpot": "tpot_ms", "e2el": "e2e_ms"}
#: the process exit code of a run that missed an objective (Locust's own is 1 for failed requests)
EXIT_SLO_MISSED = 3


@dataclass(frozen=True)
class Objective:
    """One ``--slo``: the results key it reads, the comparison, and the bound in that key's unit."""

    text: str
    key: str
    op: str
    bound: float

    def met_by(self, value: float) -> bool:
        return bool(_OPS[self.op](value, self.bound))


@dataclass(frozen=True)
class Verdict:
    objective: Objective
    measured: float | None  # None: the run has no such value (no request of that kind)
    passed: bool

    def to_json(self) -> dict[str, Any]:
        return {"objective": self.objective.text, "key": self.objective.key, "measured": self.measured,
                "passed": self.passed}  # fmt: skip


def names() -> list[str]:
    """Every name an objective may use, for the error message."""
    metric_names = [f"{m.stem}_{s}" for m in CATALOG for s in ("p50", "p90", "p95", "p99", "mean", "max")]
    return [*metric_names, *RUN_VALUES]


def _key_of(name: str) -> tuple[str, bool]:
    """(results key, whether it is a duration in ms) of an objective's name; ConfigError if none."""
    if name in RUN_VALUES:
        return name, False
    for metric in CATALOG:
        prefix = metric.stem + "_"
        if name.startswith(prefix) and name[len(prefix) :] in _STAT_NAMES:
            return metric.key(_STAT_NAMES[name[len(prefix) :]]), metric.unit == "ms"
    shown = ", ".join(["ttft_p95", "tpot_p50", "itl_p99", "e2el_mean", "tokens_per_s_min", *RUN_VALUES])
    raise ConfigError(f"--slo {name!r}: unknown value; use METRIC_STAT (e.g. {shown}; any catalog metric "
                      "with p50, p90, p95, p99, mean, median, std, min or max)")  # fmt: skip


def parse_objective(text: str) -> Objective:
    """``ttft_p95<=500ms`` -> an :class:`Objective`; :class:`ConfigError` naming what is wrong."""
    match = _EXPR.match(text.lower())
    if match is None:
        raise ConfigError(f"--slo {text!r}: write NAME OP VALUE, e.g. ttft_p95<=500ms or error_rate<=1%")
    name, op, number, unit = match.groups()
    key, is_ms = _key_of(name)
    bound = float(number)
    if unit in ("ms", "s") and not is_ms:
        raise ConfigError(f"--slo {text!r}: {name} is not a duration; give it without ms or s")
    if unit == "s":
        bound *= 1000.0
    if unit == "%":
        if name not in _SHARES:
            raise ConfigError(f"--slo {text!r}: only {', '.join(_SHARES)} take %")
        bound /= 100.0
    return Objective(text=text.strip(), key=key, op=op, bound=bound)


def parse_objectives(texts: Iterable[str]) -> tuple[Objective, ...]:
    return tuple(parse_objective(t) for t in texts if t and t.strip())


def parse_goodput(texts: Sequence[str]) -> dict[str, float]:
    """``["ttft:500", "tpot:40"]`` (or one string with spaces) -> bounds in ms by record accessor."""
    bounds: dict[str, float] = {}
    for item in " ".join(texts).split():
        name, _, value = item.partition(":")
        if name not in GOODPUT_BOUNDS:
            raise ConfigError(f"--goodput {item!r}: give {' '.join(f'{n}:MS' for n in GOODPUT_BOUNDS)}")
        try:
            bound = float(value.removesuffix("ms"))
        except ValueError:
            raise ConfigError(f"--goodput {item!r}: {value!r} is not a number of milliseconds") from None
        if not bound > 0:
            raise ConfigError(f"--goodput {item!r}: the bound must be > 0 ms")
        bounds[GOODPUT_BOUNDS[name]] = bound
    return bounds


def is_good(rec: Any, bounds: Mapping[str, float]) -> bool:
    """vLLM's goodput rule: the request succeeded and met every bound (a bound on a value the
    request does not have, e.g. TPOT of a one-token answer, is not met)."""
    if not rec.ok:
        return False
    for accessor, bound in bounds.items():
        value = getattr(rec, accessor)
        if value is None or value > bound:
            return False
    return True


def derived(res: Mapping[str, Any]) -> dict[str, float | None]:
    """The run-wide values the results dict does not hold as such."""
    done = res.get("completed", 0) + res.get("failed", 0)
    return {"error_rate": res.get("failed", 0) / done if done else None}


def evaluate(objectives: Sequence[Objective], res: Mapping[str, Any]) -> list[Verdict]:
    values = {**res, **derived(res)}
    out = []
    for objective in objectives:
        value = values.get(objective.key)
        measured = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        out.append(Verdict(objective, measured, measured is not None and objective.met_by(measured)))
    return out
