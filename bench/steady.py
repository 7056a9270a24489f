"""Locustfile for bench/client_capacity.py: ramp to $BENCH_USERS, then a measured 'steady' phase.

Requests sent during the ramp are tagged level 'ramp' and those sent afterwards 'steady', so the
timing errors in the bench come from steady-state requests only (not from the first connection storm).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ramp import ramp_then_steady

from llm_locust import LLMUser, set_level


class BenchUser(LLMUser):
    pass


RampThenSteady = ramp_then_steady(set_level)
