"""The load shape of the capacity benches: ramp to $BENCH_USERS over $BENCH_WARM_S, then hold them
for $BENCH_STEADY_S and stop. ``on_level`` (if given) is told "ramp" or "steady" each tick."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from locust import LoadTestShape


def ramp_then_steady(on_level: Callable[[Any, str], None] | None = None) -> type[LoadTestShape]:
    class RampThenSteady(LoadTestShape):
        def tick(self) -> tuple[int, float] | None:
            users = int(os.environ["BENCH_USERS"])
            warm_s, steady_s = float(os.environ["BENCH_WARM_S"]), float(os.environ["BENCH_STEADY_S"])
            t = self.get_run_time()
            if t >= warm_s + steady_s:
                return None
            if on_level is not None:
                assert self.runner is not None
                on_level(self.runner.environment, "ramp" if t < warm_s else "steady")
            return users, users / max(warm_s - 2.0, 1.0)

    return RampThenSteady
