"""The end of a test that ends itself: ``--max-requests`` in a closed loop (each process sends its
share, then its users stop) and the last arrival of an open loop. A process whose share is sent and
answered says so (a worker with ``llm_done``); the test's owner ends the test when every sending
process has (headless: the run quits, as at the end of a ladder)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import WorkerRunner

from llm_locust.locust import samples

if TYPE_CHECKING:
    from llm_locust.locust.state import LLMState


def share_of(total: int | None, index: int, count: int) -> int | None:
    """Process ``index``'s share of ``total`` (a budget or a cap) over ``count`` processes."""
    if total is None:
        return None
    return total // count + (1 if index < total % count else 0)


def assign(state: LLMState) -> None:
    """At a sending process's test start: its share of a closed loop's --max-requests and --warmup
    requests (by its worker slot)."""
    config = state.require_config()
    env = state.environment
    slot, slots = samples.worker_slot(env)
    load = config.load
    state.request_budget = None if load.open_loop else share_of(load.max_requests, slot, slots)
    numbered = getattr(env.parsed_options, samples.SLOTS_OPTION, None) or {}
    runner = env.runner
    late = isinstance(runner, WorkerRunner) and runner.client_id not in numbered
    if state.request_budget is not None and late:
        state.request_budget = 0  # a worker that joined later: the others share the requests
    state.warmup_share = share_of(load.warmup_requests, slot, slots) or 0
    state.warmup_seen = 0
    state.started_at_perf_s = time.perf_counter()


def spent(state: LLMState) -> None:
    """This process sent its share: once what is in flight is answered, say so."""
    limit = time.monotonic() + state.require_config().request_timeout_s + 5
    while state.in_flight > 0 and time.monotonic() < limit:
        gevent.sleep(0.05)
    runner = state.environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message("llm_done", None)
    else:
        end_test(state)


def on_done(state: LLMState, worker_id: str) -> None:
    """On the master: a worker's share is sent and answered."""
    state.workers_done.add(worker_id)
    control = state.rate_control
    sending = set(control.slots) if control is not None else set(_slots(state))
    if sending and sending <= state.workers_done:
        end_test(state)


def _slots(state: LLMState) -> dict[str, int]:
    options = state.environment.parsed_options
    return dict(getattr(options, samples.SLOTS_OPTION, None) or {})


def end_test(state: LLMState) -> None:
    """End the test (once): headless, the run quits; with the web UI, the test stops."""
    if state.ended_by_budget:
        return
    state.ended_by_budget = True
    runner: Any = state.environment.runner
    options = state.environment.parsed_options
    headless = options is not None and getattr(options, "headless", False)
    if runner is not None:
        gevent.spawn(runner.quit if headless else runner.stop)
