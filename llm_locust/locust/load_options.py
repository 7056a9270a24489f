"""The load mode's options: a closed loop of users (Locust's own), or open-loop arrivals at a
request rate (``--request-rate``, ``--rates``, ``--ramp-up-strategy``) with a concurrency cap, a
warm-up and a request budget, read once per test into a frozen :class:`LoadConfig`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from llm_locust.errors import ConfigError
from llm_locust.load import arrivals
from llm_locust.load.arrivals import RatePlan
from llm_locust.load.ladder import DEFAULT_LEVEL_DURATION_S

_WARMUP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|req|requests?|r)?\s*$", re.IGNORECASE)
_SECONDS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def add_load_arguments(opt: Any) -> None:
    """Add the load mode's options through ``opt`` (see options.add_arguments)."""
    opt(
        "--request-rate",
        default="",
        help="Open loop: requests/s over the whole run (all workers), on an absolute schedule; inf sends"
        " every request at once (needs --max-requests or --max-concurrency). Default: a closed loop of users",
    )
    opt(
        "--burstiness",
        type=float,
        default=1.0,
        help="Open loop: gaps between arrivals are Gamma(shape=B, scale=1/(rate*B)): 1 Poisson (default),"
        " larger more regular, smaller burstier",
    )
    opt(
        "--rates",
        default="",
        help="Open loop: a ladder of request rates, e.g. 1,2,4,8, each for --level-duration seconds",
    )
    opt(
        "--level-duration",
        type=float,
        default=DEFAULT_LEVEL_DURATION_S,
        help="Seconds at each level of --levels or --rates, and per row of a ramp"
        f" (default {DEFAULT_LEVEL_DURATION_S:g})",
    )
    opt(
        "--ramp-up-strategy",
        default="",
        choices=["", "linear", "exponential"],
        help="Open loop: ramp the rate from --ramp-up-start-rps to --ramp-up-end-rps (vLLM's names)",
    )
    opt("--ramp-up-start-rps", type=float, default=None, help="The ramp's first rate, requests/s")
    opt("--ramp-up-end-rps", type=float, default=None, help="The ramp's last rate, requests/s")
    opt(
        "--ramp-up-duration",
        type=float,
        default=None,
        help="Seconds the ramp takes (default: --run-time); the run ends with it",
    )
    opt(
        "--max-concurrency",
        type=int,
        default=None,
        help="Open loop: at most this many requests in flight over all workers; a due arrival waits for a"
        " slot, and the wait counts as schedule lag",
    )
    opt(
        "--max-requests",
        type=int,
        default=None,
        help="End the run when this many requests (over all workers) were sent and answered",
    )
    opt(
        "--warmup",
        default="",
        help="Leave the first part of the run out of every statistic (it stays in the time series):"
        " seconds (30, 30s, 2m) or requests (100req)",
    )


@dataclass(frozen=True)
class LoadConfig:
    """The test's load mode. ``plan`` is None for a closed loop (Locust's users)."""

    plan: RatePlan | None = None
    max_concurrency: int | None = None
    max_requests: int | None = None
    warmup_s: float = 0.0
    warmup_requests: int = 0

    @property
    def open_loop(self) -> bool:
        return self.plan is not None

    def public(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "load": "open" if plan is not None else "closed",
            "request_rate_levels": [s.label for s in plan.segments] if plan is not None else None,
            "burstiness": plan.burstiness if plan is not None else None,
            "max_concurrency": self.max_concurrency,
            "max_requests": self.max_requests,
            "warmup_s": self.warmup_s or None,
            "warmup_requests": self.warmup_requests or None,
        }


def parse_warmup(text: Any) -> tuple[float, int]:
    """``--warmup``: (seconds, requests); one of them is 0."""
    if text in (None, ""):
        return 0.0, 0
    m = _WARMUP.match(str(text))
    if m is None:
        raise ConfigError(f"--warmup {text!r} must be seconds (30, 30s, 2m) or requests (100req)")
    value, unit = float(m.group(1)), (m.group(2) or "").lower()
    if unit.startswith("r"):
        if value != int(value):
            raise ConfigError(f"--warmup {text!r}: a number of requests is whole")
        return 0.0, int(value)
    return value * _SECONDS[unit], 0


def _positive_int(value: Any, option: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} {value!r} is not a whole number") from None
    if n < 1:
        raise ConfigError(f"{option} {n} must be >= 1")
    return n


def _float(value: Any, option: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} {value!r} is not a number") from None


def _plan(options: Any) -> RatePlan | None:
    rate_text = str(getattr(options, "request_rate", "") or "").strip()
    rates_text = str(getattr(options, "rates", "") or "").strip()
    strategy = str(getattr(options, "ramp_up_strategy", "") or "").strip()
    given = [
        name
        for name, v in (
            ("--request-rate", rate_text),
            ("--rates", rates_text),
            ("--ramp-up-strategy", strategy),
        )
        if v
    ]
    if len(given) > 1:
        raise ConfigError(f"{' and '.join(given)} are exclusive: give one open-loop plan")
    burstiness = _float(getattr(options, "burstiness", 1.0), "--burstiness")
    burstiness = 1.0 if burstiness is None else burstiness
    if not (burstiness > 0 and math.isfinite(burstiness)):
        raise ConfigError(f"--burstiness {burstiness:g} must be a number > 0")
    level_s = _float(getattr(options, "level_duration", None), "--level-duration") or DEFAULT_LEVEL_DURATION_S
    if not level_s > 0:
        raise ConfigError(f"--level-duration {level_s:g} must be > 0 seconds")
    if rate_text:
        if rate_text.lower() in ("inf", "infinity"):
            return arrivals.constant(math.inf, burstiness)
        rate = _float(rate_text, "--request-rate")
        assert rate is not None
        return arrivals.constant(rate, burstiness)
    if rates_text:
        try:
            rates = [float(x) for x in rates_text.replace(" ", "").split(",") if x]
        except ValueError:
            raise ConfigError(
                f"--rates {rates_text!r} must be comma-separated requests/s, e.g. 1,2,4,8"
            ) from None
        return arrivals.ladder(rates, level_s, burstiness)
    if strategy:
        if strategy not in ("linear", "exponential"):
            raise ConfigError(f"--ramp-up-strategy {strategy!r}: choose linear or exponential")
        start = _float(getattr(options, "ramp_up_start_rps", None), "--ramp-up-start-rps")
        end = _float(getattr(options, "ramp_up_end_rps", None), "--ramp-up-end-rps")
        if start is None or end is None:
            raise ConfigError("--ramp-up-strategy needs --ramp-up-start-rps and --ramp-up-end-rps")
        duration = _float(getattr(options, "ramp_up_duration", None), "--ramp-up-duration")
        if duration is None:
            duration = _float(getattr(options, "run_time", None), "--run-time")
        return arrivals.ramp(start, end, duration or 0.0, strategy, level_s, burstiness)  # type: ignore[arg-type]
    return None


def load_from_options(options: Any) -> LoadConfig:
    """Validate the load mode's options; raise :class:`ConfigError` naming the first bad one."""
    plan = _plan(options)
    cap = _positive_int(getattr(options, "max_concurrency", None), "--max-concurrency")
    budget = _positive_int(getattr(options, "max_requests", None), "--max-requests")
    warmup_s, warmup_requests = parse_warmup(getattr(options, "warmup", ""))
    if plan is None and cap is not None:
        raise ConfigError(
            "--max-concurrency caps an open loop (--request-rate, --rates, --ramp-up-strategy); in a closed"
            " loop the users are the concurrency"
        )
    if plan is not None and plan.burst and cap is None and budget is None:
        raise ConfigError(
            "--request-rate inf sends all at once: give --max-requests or --max-concurrency"
        )
    if budget is not None and warmup_requests >= budget:
        raise ConfigError(
            f"--warmup {warmup_requests}req leaves none of --max-requests {budget} to measure"
        )
    return LoadConfig(plan, cap, budget, warmup_s, warmup_requests)
