"""Locustfile for bench/soak.py: a sampler of each Locust process's own figures, no users of its own.

Given after the real locustfile (``-f locustfiles/chat.py,bench/soak_locustfile.py``), so the users
are exactly the shipped ``ChatUser``. When ``$SOAK_SAMPLES`` names a file, every Locust process (the
master and each ``--processes`` worker) spawns one greenlet on ``events.init`` that appends a JSON
line to it at each tick ``$SOAK_T0 + k * $SOAK_INTERVAL_S`` (Unix time), the same ticks in every
process, so bench/soak.py can join them with what it reads from /proc:

    {"pid", "role": "master"|"worker"|"local", "k", "t", "greenlets", "rss_kib", "fds",
     "gc_young", "cost_ms", "cpu_ms", "freeze_ms"}

``cost_ms`` is the sample's wall time (being preempted included), ``cpu_ms`` its CPU time,
``freeze_ms`` the longest bookkeeping done at a ``gc.freeze`` in this process so far (below).

and, once at ``test_stop``, ``{"pid", "role", "check": true, "greenlets", "greenlets_full_walk"}``:
the sampler's count next to a count over every object (see below), taken in one go with no switch
between them, so the two must be equal.

Counting greenlets exactly when most objects are frozen: llm-locust calls ``gc.freeze()`` when
spawning completes (and Locust itself before it forks the workers), and ``gc.get_objects()`` does
not see frozen objects (checked: 502 greenlets before a freeze, 0 after). A full walk with
``gc.unfreeze()`` around it costs 70-90 ms at 600k objects, a stall of the event loop that measures
the latencies, and it would freeze whatever young garbage cycles exist at that moment. So instead
``gc.freeze`` is wrapped: just before each freeze the greenlets still visible are put in a
``WeakSet``. A greenlet is then either frozen, and in that set until it is freed, or created since the
last freeze, and seen by ``gc.get_objects()``; a sample is the size of the union. Its cost is a walk
of the objects created since the freeze (0.4-2 ms of CPU at 100 users per worker), not of the
frozen ones; the bookkeeping at a freeze walks what is not frozen yet, once per freeze. Counted:
every greenlet object alive, finished ones still referenced included (those are what a leak keeps).
``gc.get_freeze_count()`` is not sampled: it walks the frozen list (1-3 ms at 60k objects, measured).

Without ``$SOAK_SAMPLES`` this file does nothing, and the wrapper only adds that bookkeeping.
"""

from __future__ import annotations

import gc
import json
import os
import time
import weakref
from typing import IO, Any

import gevent
import greenlet
from locust import events
from locust.runners import MasterRunner, WorkerRunner

#: greenlets that were visible to gc just before a freeze (frozen since; weak, so freed ones drop out)
_frozen_greenlets: weakref.WeakSet[greenlet.greenlet] = weakref.WeakSet()
_real_freeze = gc.freeze
_freeze_ms: list[float] = [0.0]  # the longest bookkeeping at a freeze, in this process


def _young_greenlets() -> tuple[list[greenlet.greenlet], int]:
    """Greenlets among the objects gc still tracks outside the permanent generation, and how many
    objects that is."""
    objects = gc.get_objects()
    return [o for o in objects if isinstance(o, greenlet.greenlet)], len(objects)


def _freeze_remembering_greenlets() -> None:
    """gc.freeze(), after noting the greenlets it is about to hide from gc.get_objects()."""
    started = time.perf_counter()
    _frozen_greenlets.update(_young_greenlets()[0])
    _freeze_ms[0] = max(_freeze_ms[0], (time.perf_counter() - started) * 1000)
    _real_freeze()


# Installed at import: the locustfiles are imported before Locust's own freeze ahead of its fork, and
# llm-locust's freeze looks gc.freeze up when it calls it, so every freeze goes through the wrapper.
gc.freeze = _freeze_remembering_greenlets


def count_greenlets() -> tuple[int, int]:
    """(greenlet objects alive, objects gc tracks outside the permanent generation)."""
    young, n_objects = _young_greenlets()
    _frozen_greenlets.update(young)  # once frozen by a later freeze, still counted
    return len(_frozen_greenlets), n_objects


def count_greenlets_full_walk() -> int:
    """The same count over every object, frozen ones included: slow (see the module docstring)."""
    gc.unfreeze()
    try:
        return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet))
    finally:
        _real_freeze()


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _role(environment: Any) -> str:
    if isinstance(environment.runner, MasterRunner):
        return "master"
    if isinstance(environment.runner, WorkerRunner):
        return "worker"
    return "local"


def _sample(out: IO[str], role: str, k: int) -> None:
    started, started_cpu = time.perf_counter(), time.thread_time()
    greenlets, young = count_greenlets()
    line = {
        "pid": os.getpid(),
        "role": role,
        "k": k,
        "t": time.time(),
        "greenlets": greenlets,
        "rss_kib": _rss_kib(),
        "fds": len(os.listdir("/proc/self/fd")) - 1,  # less the one listdir itself holds open
        "gc_young": young,
        "cost_ms": 0.0,
        "cpu_ms": 0.0,
        "freeze_ms": round(_freeze_ms[0], 3),
    }
    line["cost_ms"] = round((time.perf_counter() - started) * 1000, 3)
    line["cpu_ms"] = round((time.thread_time() - started_cpu) * 1000, 3)
    out.write(json.dumps(line) + "\n")
    out.flush()


def _sample_loop(out: IO[str], role: str, t0: float, interval_s: float) -> None:
    """One sample per tick, on the shared clock; a tick missed (process busy) is skipped, not doubled."""
    while True:
        k = max(0, int((time.time() - t0) // interval_s) + 1)
        gevent.sleep(max(0.0, t0 + k * interval_s - time.time()))
        _sample(out, role, k)


def _on_init(environment: Any, **_kw: Any) -> None:
    path = os.environ.get("SOAK_SAMPLES")
    if not path:
        return
    role = _role(environment)
    _freeze_ms[0] = 0.0  # from here on: the freezes of this process's run (not the parent's before the fork)
    # Opened once per process (init runs after the fork) and kept: a constant descriptor, not one
    # that comes and goes under bench/soak.py's count. O_APPEND lines of a few hundred bytes from
    # several processes do not interleave.
    out = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)
    t0, interval_s = float(os.environ["SOAK_T0"]), float(os.environ.get("SOAK_INTERVAL_S", "30"))
    gevent.spawn(_sample_loop, out, role, t0, interval_s)

    def check(**_kw: Any) -> None:
        # both counts in one go, no greenlet switch between them: they must agree
        fast = count_greenlets()[0]
        full = count_greenlets_full_walk()
        line = {
            "pid": os.getpid(),
            "role": role,
            "check": True,
            "greenlets": fast,
            "greenlets_full_walk": full,
        }
        out.write(json.dumps(line) + "\n")
        out.flush()

    environment.events.test_stop.add_listener(check)


events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
