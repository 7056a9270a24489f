"""Locustfile for bench/client_capacity.py: ramp to $BENCH_USERS, then a measured 'steady' phase.

Requests sent during the ramp are tagged level 'ramp' and those sent afterwards 'steady', so the
timing errors in the bench come from steady-state requests only (not from the first connection storm).
"""

import os

from locust import LoadTestShape

from llm_locust import LLMUser, set_level


class BenchUser(LLMUser):
    pass


class RampThenSteady(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        users = int(os.environ["BENCH_USERS"])
        warm_s, steady_s = float(os.environ["BENCH_WARM_S"]), float(os.environ["BENCH_STEADY_S"])
        t = self.get_run_time()
        if t >= warm_s + steady_s:
            return None
        assert self.runner is not None
        set_level(self.runner.environment, "ramp" if t < warm_s else "steady")
        return users, users / max(warm_s - 2.0, 1.0)
