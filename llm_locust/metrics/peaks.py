"""Per wall-clock second: the output tokens that arrived and the most requests in flight, for
vLLM's ``max_output_tokens_per_s`` and ``max_concurrent_requests``.

As ``vllm bench serve`` counts them: a successful request's tokens arrive at its first token and at
each inter-token gap after it (one per streamed event), each counted in the second (Unix time) it
arrived in. The peak in flight is this process's in-flight count, kept per second at its highest; on a
master, the seconds of its workers add up, so there it is the sum of each worker's peak within a
second (exact for one process; it can exceed the true peak by what differs within a second).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from itertools import accumulate
from typing import Any

from llm_locust.metrics.records import RequestRecord

#: the seconds of in-flight peaks a worker sends with each report (its reports come every few seconds)
KEPT_S = 8


class Peaks:
    """Mergeable per-second counts (see the module's docstring). A process notes its own; a master
    merges each worker's wire under the worker's id."""

    __slots__ = ("_in_flight_by_source", "tokens_by_s")

    def __init__(self) -> None:
        self.tokens_by_s: Counter[int] = Counter()
        #: source ("": this process; a worker's id on a master) -> second -> its peak in flight
        self._in_flight_by_source: dict[str, dict[int, int]] = {"": {}}

    def record(self, rec: RequestRecord, sent_wall_s: float) -> None:
        """A successful request's token arrivals (``sent_wall_s``: its send in Unix time): per second
        crossed, not per token (the arrival offsets are summed and bisected in C)."""
        if rec.ttft_ms is None:
            return
        first_s = sent_wall_s + rec.ttft_ms / 1000.0
        second = int(first_s)
        gaps = rec.itl_ms
        if not gaps:
            self.tokens_by_s[second] += 1
            return
        # ms from the first token to each token, the first included
        offsets_ms = list(accumulate(gaps, initial=0.0))
        last = int(first_s + offsets_ms[-1] / 1000.0)
        tokens = self.tokens_by_s
        if last == second:
            tokens[second] += len(offsets_ms)
            return
        done = 0
        while second < last:
            upto = bisect_left(offsets_ms, (second + 1 - first_s) * 1000.0, done)
            if upto > done:
                tokens[second] += upto - done
                done = upto
            second += 1
        tokens[last] += len(offsets_ms) - done

    def note_in_flight(self, n: int, now_wall_s: float | None = None) -> None:
        """This process has ``n`` requests in flight now."""
        second = int(time.time() if now_wall_s is None else now_wall_s)
        own = self._in_flight_by_source[""]
        if n > own.get(second, 0):
            own[second] = n

    def reset(self) -> None:
        self.tokens_by_s.clear()
        self._in_flight_by_source = {"": {}}

    @property
    def max_output_tokens_per_s(self) -> float:
        return float(max(self.tokens_by_s.values(), default=0))

    @property
    def max_concurrent_requests(self) -> int:
        """The highest sum, over the sources, of their peaks within one second."""
        total: Counter[int] = Counter()
        for seconds in self._in_flight_by_source.values():
            total.update(seconds)
        return max(total.values(), default=0)

    # msgpack refuses map keys other than strings by default: seconds travel as text
    def take_wire(self) -> dict[str, Any]:
        """A worker's report: the tokens since its last report (forgotten here: the master adds
        them up), and the peaks of its last few seconds (a second can span two reports: the master
        keeps the higher; older seconds are forgotten here)."""
        tokens = {str(k): v for k, v in self.tokens_by_s.items()}
        self.tokens_by_s.clear()
        own = self._in_flight_by_source[""]
        recent = sorted(own)[-KEPT_S:]
        for old in [k for k in own if k < recent[0]] if recent else []:
            del own[old]
        return {"tok": tokens, "fly": {str(k): own[k] for k in recent}}

    def merge_wire(self, source: str, wire: dict[str, Any]) -> None:
        """A worker's report (``source``: its id)."""
        self.tokens_by_s.update({int(k): v for k, v in wire.get("tok", {}).items()})
        seconds = self._in_flight_by_source.setdefault(source, {})
        for k, v in wire.get("fly", {}).items():
            second = int(k)
            if v > seconds.get(second, 0):
                seconds[second] = v
