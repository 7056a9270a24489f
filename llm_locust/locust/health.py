"""The load generator's own health: event-loop lag and CPU share of each process that runs users.

A client whose core is saturated, or whose event loop is held, measures itself: requests go out
late and TTFT grows with the client's delay, not the server's. Every process that runs users
(a single process, or each worker) keeps a greenlet that sleeps :data:`INTERVAL_S` and records by
how much it overslept (the loop's lag) in a mergeable histogram, and its CPU time since the test
started. Workers ship both with their reports; the summary and ``--llm-json`` show them and warn
when the client, not the server, may be what was measured.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import gevent

from llm_locust.metrics.histogram import Histogram, finite
from llm_locust.wire import reactor

INTERVAL_S = 0.05
#: Above these, the summary warns that timings include the client's own delay.


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class Health:
    """Loop lag (merged over the processes that run users) and each process's CPU share."""

    def __init__(self) -> None:
        self.lag_ms = Histogram()
        self.cpu_share: dict[str, float] = {}  # process (worker id, or "local") -> CPU / wall time
        #: responses read by each stream reader (llm_locust.wire.reactor.READERS), merged over processes
        self.readers: Counter[str] = Counter()
        #: the stream reader each worker chose (its llm_locust.wire.reactor.reader_info), on a master
        self.reader_of: dict[str, dict[str, Any]] = {}
        self._greenlet: gevent.Greenlet | None = None
        self._started: tuple[float, float] | None = None  # (CPU s, monotonic s)

    # -- in a process that runs users ----------------------------------------------------------
    def start(self) -> None:
        if self._greenlet is None:
            self._started = (_cpu_s(), time.monotonic())
            self._greenlet = gevent.spawn(self._watch)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _watch(self) -> None:
        clock = time.perf_counter
        while True:
            t0 = clock()
            gevent.sleep(INTERVAL_S)
            self.lag_ms.record((clock() - t0 - INTERVAL_S) * 1000.0)

    def own_cpu_share(self) -> float:
        """CPU time / wall time of this process since the test started (1.0 = one busy core)."""
        if self._started is None:
            return 0.0
        cpu0, wall0 = self._started
        return (_cpu_s() - cpu0) / max(time.monotonic() - wall0, 1e-9)

    def count_reader(self, name: str) -> None:
        self.readers[name] += 1

    def take_wire(self) -> dict[str, Any]:
        """This process's lag samples and reader counts since the last call, and its CPU share so far."""
        wire = {
            "lag": self.lag_ms.to_wire(),
            "cpu": self.own_cpu_share(),
            "readers": dict(self.readers),
            "reader": reactor.reader_info(),
        }
        self.lag_ms.reset()
        self.readers.clear()
        return wire

    # -- on the master -----------------------------------------------------------------------
    def merge_wire(self, node: str, wire: dict[str, Any]) -> None:
        self.lag_ms.merge_wire(wire["lag"])
        self.cpu_share[node] = float(wire["cpu"])
        self.readers.update(wire.get("readers", {}))
        if "reader" in wire:
            self.reader_of[node] = wire["reader"]

    def reader(self, local: bool) -> dict[str, Any]:
        """The results' ``metadata.reader``: the stream reader of the processes that ran users (this
        one if ``local``, else each worker as it last reported). Its ``in_use``, ``requested`` and
        ``compiled_built`` are those of a process that did not use the compiled reader, if any;
        ``processes`` and ``without_compiled`` count them."""
        infos = [reactor.reader_info()] if local or not self.reader_of else list(self.reader_of.values())
        worst = next((i for i in infos if i["in_use"] != "compiled"), infos[0])
        without = sum(i["in_use"] != "compiled" for i in infos)
        return {**worst, "processes": len(infos), "without_compiled": without}

    def reset(self) -> None:
        self.lag_ms.reset()
        self.readers.clear()

    def results(self, local: bool) -> dict[str, Any]:
        """The ``client`` block of the results (``local``: this process ran the users)."""
        shares = dict(self.cpu_share)
        if local:
            shares["local"] = self.own_cpu_share()
        s = self.lag_ms.summary((50.0, 99.0))
        p99 = s.percentiles[99.0]
        lag = {"count": s.count, "p50": finite(s.median), "p99": finite(p99), "max": finite(s.max)}
        return {
            "loop_lag_ms": lag,
            "cpu_share": {k: round(v, 3) for k, v in sorted(shares.items())},
            "cpu_share_max": round(max(shares.values()), 3) if shares else None,
            "readers": dict(sorted(self.readers.items())),
        }
