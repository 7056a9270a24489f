"""The client's own health: event-loop lag and CPU share, merged from workers, with a warning."""

from __future__ import annotations

import time

import gevent

from llm_locust.locust.health import Health
from llm_locust.reports.summary import warning


def test_a_blocked_loop_shows_as_lag() -> None:
    health = Health()
    health.start()
    gevent.sleep(0.2)  # a few samples of an idle loop
    end = time.perf_counter() + 0.12
    while time.perf_counter() < end:  # a CPU-heavy greenlet holds the loop
        pass
    gevent.sleep(0.15)
    health.stop()
    res = health.results(local=True)
    assert res["loop_lag_ms"]["count"] >= 4
    assert res["loop_lag_ms"]["max"] >= 60  # the 120 ms block, less the 50 ms the sampler slept anyway
    assert res["loop_lag_ms"]["p50"] < 20
    assert 0.1 < res["cpu_share"]["local"] <= 1.5  # ~0.12 s of CPU over ~0.5 s
    assert "event-loop lag" in (warning(res) or "")  # p99 of a few samples is the block


def test_workers_merge_and_the_busiest_process_counts() -> None:
    master = Health()
    for node, lags, cpu in (("w1", [0.5, 0.7, 30.0], 0.25), ("w2", [0.4, 0.6], 0.9)):
        worker = Health()
        for v in lags:
            worker.lag_ms.record(v)
        worker.count_reader("compiled")
        wire = worker.take_wire()
        assert worker.take_wire()["readers"] == {}  # counts go out once, as deltas
        assert worker.lag_ms.count == 0  # shipped as a delta
        wire["cpu"] = cpu
        master.merge_wire(node, wire)
    res = master.results(local=False)
    assert res["loop_lag_ms"]["count"] == 5 and res["loop_lag_ms"]["max"] == 30.0
    assert res["cpu_share"] == {"w1": 0.25, "w2": 0.9} and res["cpu_share_max"] == 0.9
    assert res["readers"] == {"compiled": 2}
    note = warning(res)
    assert note is not None and "90% of a core" in note and "--processes" in note


def test_no_warning_when_the_client_was_idle() -> None:
    health = Health()
    for v in (0.2, 0.3, 1.0):
        health.lag_ms.record(v)
    health.cpu_share["w1"] = 0.3
    assert warning(health.results(local=False)) is None


def test_spawned_users_are_kept_out_of_the_collectors_walks() -> None:
    """Once users have spawned, the objects alive then (users, greenlets, connections) are frozen:
    full collections no longer walk them and hold the event loop (60-130 ms at 2,000 users)."""
    import gc

    from locust.env import Environment

    from llm_locust.locust.plugin import _on_spawned
    from llm_locust.locust.state import state_of

    env = Environment()
    state = state_of(env)
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        _on_spawned(state, 3)
        assert gc.get_freeze_count() > 0 and state.peak_users == 3
    finally:
        gc.unfreeze()
