"""Bare Locust, the yardstick of bench/flavors.py: a FastHttpUser streaming chat completions from the
mock, each line read with geventhttpclient's ``readline`` as it arrives (the way plain Locust times
a stream right; locust-facts.md). Two of them, chosen by $BARE_MODE:

- ``floor``: the arrival of each data line kept in a list, TTFT and gaps computed from it per
  request, nothing decoded: the least a plain Locust user can do per event (it cannot tell a text
  chunk from a role, usage or finish chunk, nor count tokens);
- ``measure``: what a plain Locust user does to see what llm-locust shows: each chunk's JSON
  decoded to find the text, TTFT and each inter-token gap fired into Locust's stats (the only way
  to get ITL percentiles there), E2E as the request's time.
"""

import itertools
import os
import sys
import time
from pathlib import Path

import orjson
from locust import FastHttpUser, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ramp import ramp_then_steady

BODY = orjson.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "stream": True})
MEASURE = os.environ.get("BARE_MODE", "floor") == "measure"


class BareUser(FastHttpUser):
    wait_time = constant(0)
    network_timeout = 600.0

    @task
    def stream(self) -> None:
        sent = time.perf_counter()
        with self.client.post("/v1/chat/completions", data=BODY, stream=True, catch_response=True) as resp:
            raw = resp._response
            if MEASURE:
                last = self._measured(raw, sent)
                if last is not None:
                    resp.request_meta["response_time"] = (last - sent) * 1000
            else:
                arrivals: list[float] = []
                while line := raw.readline(b"\n"):
                    if line.startswith(b"data: {"):
                        arrivals.append(time.perf_counter())
                if arrivals:
                    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(arrivals)]
                    resp.request_meta["response_time"] = (arrivals[0] - sent) * 1000 + sum(gaps)
            resp.success()

    def _measured(self, raw: object, sent: float) -> float | None:
        fire = self.environment.events.request.fire
        last: float | None = None
        while line := raw.readline(b"\n"):  # type: ignore[attr-defined]
            if not line.startswith(b"data: {"):
                continue
            now = time.perf_counter()
            choices = orjson.loads(line[6:]).get("choices")
            if not (choices and (choices[0].get("delta") or {}).get("content")):
                continue
            name, since = ("TTFT", sent) if last is None else ("ITL", last)
            fire(request_type="LLM", name=name, response_time=(now - since) * 1000, response_length=0,
                 exception=None, context={})  # fmt: skip
            last = now
        return last


RampThenSteady = ramp_then_steady()
