"""Headless progress: one LLM status line every few seconds (unless --only-summary)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import gevent

if TYPE_CHECKING:
    from llm_locust.locust.state import LLMState

logger = logging.getLogger("llm_locust")

INTERVAL_S = 5.0


def status_line(
    state: LLMState, previous: tuple[float, int, int], now_s: float
) -> tuple[str, tuple[float, int, int]]:
    """The status line, and the (time, completed, output tokens) to compute the next rates from."""
    agg = state.aggregate
    completed, tokens = agg.counts["completed"], agg.counts["total_output_tokens"]
    dt = max(now_s - previous[0], 1e-9)
    ttft = agg.hist["ttft"].percentile(50.0)
    itl = agg.hist["itl"].percentile(50.0)
    runner: Any = state.environment.runner
    line = (
        f"LLM: users {runner.user_count} | in flight {state.in_flight_total()} | "
        f"{(completed - previous[1]) / dt:.1f} req/s | {(tokens - previous[2]) / dt:.0f} output tok/s | "
        f"TTFT p50 {ttft:.0f} ms | ITL p50 {itl:.1f} ms | ok {completed} | failed {agg.failed}"
    )
    return line, (now_s, completed, tokens)


def run(state: LLMState) -> None:
    """Log a status line every INTERVAL_S until killed (spawned at test start, killed at test stop)."""
    agg = state.aggregate
    previous = (time.monotonic(), agg.counts["completed"], agg.counts["total_output_tokens"])
    while True:
        gevent.sleep(INTERVAL_S)
        line, previous = status_line(state, previous, time.monotonic())
        logger.info("%s", line)
