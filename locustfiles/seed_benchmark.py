"""The seed benchmark in one command: its prompt, a 1 -> 8 -> 32 -> 256 -> 1024 users ladder,
and a per-level table of per-stream tok/s (min/median/max), TTFT and aggregate tok/s.

    locust -f locustfiles/seed_benchmark.py --headless --host http://127.0.0.1:8000 \
           --levels 1,8,32,256,1024 --level-duration 60 --llm-json seed.json
"""

from llm_locust import LadderShape, LLMUser


class SeedUser(LLMUser):
    dataset = "seed"  # the seed's system message and essay, unless --dataset says otherwise


class SeedLadder(LadderShape):
    pass
