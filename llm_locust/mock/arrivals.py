"""``llm-locust mock --record-arrivals``: when each generation request arrived and ended, so that a test
can check the client's open-loop arrival process and its concurrency cap against what the server saw.

Each worker keeps an :class:`ArrivalLog` of (arrived_s, ended_s) intervals on the ``time.perf_counter``
clock (CLOCK_MONOTONIC on Linux: comparable between the processes of one host). A worker's own
snapshot carries its raw intervals (:data:`INTERVALS`, for the worker that sums ``--workers N``);
:func:`publish` turns the merged intervals into what ``/mock/stats`` shows: ``arrivals_s`` (every
arrival, sorted) and ``peak_in_flight`` (:func:`peak_in_flight`, exact over all workers).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = [
    "INTERVALS",
    "MAX_INTERVALS",
    "ArrivalLog",
    "Interval",
    "StampedSocket",
    "peak_in_flight",
    "publish",
]

#: the most intervals one process keeps; beyond it the oldest arrivals are dropped
MAX_INTERVALS = 1_000_000
#: a worker snapshot's ``served`` key for its raw [arrived_s, ended_s] pairs (never in /mock/stats)
INTERVALS = "intervals_s"
#: the end of a request still in flight
_OPEN = math.inf

#: one request's [arrived_s, ended_s]; ended_s is ``inf`` while it is in flight
Interval = list[float]


class ArrivalLog:
    """The (arrived_s, ended_s) of the last ``limit`` requests of one process. :meth:`start` when a
    request is admitted, :meth:`end` (in a ``finally``) with its token when it is done. Beyond
    ``limit`` the oldest arrival is dropped (and a request dropped while in flight is no longer
    counted when it ends)."""

    __slots__ = ("_log",)

    def __init__(self, limit: int = MAX_INTERVALS) -> None:
        self._log: deque[Interval] = deque(maxlen=limit)

    def __len__(self) -> int:
        return len(self._log)

    def start(self, arrived_s: float) -> Interval:
        """Record a request that arrived at ``arrived_s``; the token to :meth:`end` it with."""
        token = [arrived_s, _OPEN]
        self._log.append(token)
        return token

    def end(self, token: Interval, ended_s: float | None = None) -> None:
        """The request of ``token`` ended at ``ended_s`` (default: now, on ``time.perf_counter``)."""
        token[1] = time.perf_counter() if ended_s is None else ended_s

    def snapshot(self, now_s: float) -> list[tuple[float, float]]:
        """Every (arrived_s, ended_s) kept, in arrival order; a request still in flight ends at
        ``now_s``."""
        return [(a, now_s if e == _OPEN else e) for a, e in self._log]

    def clear(self) -> None:
        self._log.clear()


class StampedSocket:
    """A connection's socket, for one request, that notes when its last write began
    (``wrote_s``) and when it was closed (``closed_s``; 0.0: not yet), on ``time.perf_counter``.

    A request ends when the mock *begins* its answer's last write, not when the write returns: on
    loopback the client is woken inside that write and may run first (a wake-up preemption on a
    busy core), so a client that sends its next request as soon as it has read the answer could
    otherwise be seen overlapping it, by up to a time slice."""

    __slots__ = ("_sock", "closed_s", "wrote_s")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.wrote_s = 0.0
        self.closed_s = 0.0

    def sendall(self, data: bytes, flags: int = 0) -> None:
        self.wrote_s = time.perf_counter()
        self._sock.sendall(data, flags)

    def close(self) -> None:
        self.closed_s = time.perf_counter()
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def peak_in_flight(intervals: Iterable[tuple[float, float]]) -> int:
    """The most of ``intervals`` (arrived_s, ended_s) in flight at one instant, exactly: a sweep over
    the sorted starts and ends, where an end at the same instant as a start comes first (a request
    that ended as another arrived did not overlap it). A request with ``ended_s <= arrived_s`` is in
    flight at the instant ``arrived_s`` only."""
    starts: list[float] = []
    ends: list[float] = []  # of intervals of some length
    points: list[float] = []  # of those of none: they end after every start at their instant
    for a, e in intervals:
        starts.append(a)
        if e > a:
            ends.append(e)
        else:
            points.append(a)
    starts.sort()
    ends.sort()
    points.sort()
    peak = j = k = 0
    n = len(starts)
    for i, t in enumerate(starts):
        if i + 1 < n and starts[i + 1] == t:
            continue  # every start at t first
        while j < len(ends) and ends[j] <= t:
            j += 1
        while k < len(points) and points[k] < t:
            k += 1
        peak = max(peak, i + 1 - j - k)  # the count only rises at a start: its peak is at one
    return peak


def publish(served: MutableMapping[str, Any]) -> None:
    """Replace ``served``'s raw :data:`INTERVALS` (if any) with ``arrivals_s`` (sorted) and
    ``peak_in_flight``."""
    intervals = served.pop(INTERVALS, None)
    if intervals is None:
        return
    served["arrivals_s"] = sorted(a for a, _ in intervals)
    served["peak_in_flight"] = peak_in_flight((a, e) for a, e in intervals)
