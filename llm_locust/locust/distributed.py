"""Master/worker merging: each worker ships the delta of its :class:`Aggregate` with every
``report_to_master``. When the test stops, the master asks every worker for a final flush
(``llm_stop``) and waits for each ``llm_final`` before Locust's quit goes on, so the samples of
the last seconds are never lost (Locust itself waits only 0.5 s for them)."""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from llm_locust.locust import master_watch, requestlog
from llm_locust.locust.state import LLMState

logger = logging.getLogger("llm_locust")

_FINAL_WAIT_EXTRA_S = 15.0


def listen(environment: Any, state: LLMState) -> None:
    """Register the worker's or the master's listeners and messages (nothing for a single process)."""
    runner = environment.runner
    ev = environment.events
    if isinstance(runner, WorkerRunner):
        master_watch.watch(environment)
        ev.report_to_master.add_listener(lambda client_id, data, **kw: on_report(state, data))
        ev.test_stop.add_listener(lambda environment, **kw: worker_flush(state))
        # concurrent: stopping waits for the streams, and inline it would hold the worker's message
        # loop (the master's heartbeats unread) for as long
        runner.register_message(
            "llm_stop", lambda environment, msg, **kw: on_llm_stop(state), concurrent=True
        )
        runner.register_message(
            "llm_level", lambda environment, msg, **kw: state.set_level(msg.data["level"])
        )
    elif isinstance(runner, MasterRunner):
        requestlog.listen(runner, state)
        ev.worker_report.add_listener(lambda client_id, data, **kw: on_worker_report(state, client_id, data))
        ev.test_stopping.add_listener(lambda environment, **kw: master_request_finals(state))
        ev.test_stop.add_listener(lambda environment, **kw: master_wait_finals(state))
        runner.register_message("llm_final", lambda environment, msg, **kw: on_final(state, msg))
        ev.worker_connect.add_listener(lambda client_id, **kw: on_worker_connect(state, client_id))


def on_report(state: LLMState, data: dict[str, Any]) -> None:
    data["llm_in_flight"] = state.in_flight
    data["llm_health"] = state.health.take_wire()
    data["llm_peaks"] = state.peaks.take_wire()
    if not state.aggregate.empty:
        data["llm"] = state.aggregate.take_delta()


def worker_flush(state: LLMState) -> None:
    """After the users stopped: push Locust's stats and our last delta, then say 'final'."""
    runner = state.environment.runner
    runner._send_stats()  # Locust's own rows too, before the master's 0.5 s quit window
    state.health.stop()
    requestlog.flush(state)  # its --llm-requests lines reach the master before its final report
    final = {
        "llm": state.aggregate.take_delta(),
        "llm_health": state.health.take_wire(),
        "llm_peaks": state.peaks.take_wire(),
    }
    runner.send_message("llm_final", final)


def on_llm_stop(state: LLMState) -> None:
    runner = state.environment.runner
    if runner.state in ("running", "spawning"):
        runner.stop()  # fires test_stop, which flushes
    else:
        worker_flush(state)


def on_worker_report(state: LLMState, client_id: str, data: dict[str, Any]) -> None:
    if "llm_in_flight" in data:
        state.worker_in_flight[client_id] = int(data["llm_in_flight"])
    if "llm_health" in data:
        state.health.merge_wire(client_id, data["llm_health"])
    if "llm_peaks" in data:
        state.peaks.merge_wire(client_id, data["llm_peaks"])
    wire = data.get("llm")
    if wire is not None:
        state.workers_seen.add(client_id)
        state.aggregate.merge_wire(wire)
        state.timeseries.merge_wire(wire)


def on_final(state: LLMState, msg: Any) -> None:
    on_worker_report(state, msg.node_id, msg.data)
    state.awaiting_final.discard(msg.node_id)
    state.workers_final.add(msg.node_id)
    state.worker_in_flight.pop(msg.node_id, None)


def on_worker_connect(state: LLMState, client_id: str) -> None:
    """A worker that joins late tags its requests with the current ladder level too."""
    if state.level is not None:
        state.environment.runner.send_message("llm_level", {"level": state.level}, client_id=client_id)


def lost_workers(state: LLMState) -> list[str]:
    """Workers that reported data but never sent their final report (killed or disconnected)."""
    return sorted(state.workers_seen - state.workers_final)


def master_request_finals(state: LLMState) -> None:
    runner = state.environment.runner
    state.awaiting_final = {c.id for c in runner.clients.all if c.state != STATE_MISSING}
    for client_id in state.awaiting_final:
        runner.send_message("llm_stop", None, client_id=client_id)


def master_wait_finals(state: LLMState) -> None:
    runner = state.environment.runner
    limit = time.monotonic() + (state.environment.stop_timeout or 0) + _FINAL_WAIT_EXTRA_S
    while state.awaiting_final and time.monotonic() < limit:
        # A worker marked missing may only be slow (a saturated host misses heartbeats) and come back:
        # keep waiting for it until Locust removes it or the limit passes.
        known = {c.id for c in runner.clients.all}
        state.awaiting_final &= known
        if state.awaiting_final:
            gevent.sleep(0.05)
    if state.awaiting_final:
        logger.warning("no final LLM report from worker(s) %s", ", ".join(sorted(state.awaiting_final)))
