"""Open-loop load in Locust: each process sends its share of the run's arrivals
(:mod:`llm_locust.load.arrivals`) on their absolute schedule, each as one task of the locustfile's
user class, whatever is still in flight.

:class:`OpenLoop` runs in every process that sends (a single process, or each worker): a dispatch
greenlet sleeps until each of its arrivals is due (``origin + at_s``, never "sleep after send"),
waits for a slot where ``--max-concurrency`` is full (the wait is schedule lag), and starts the task
in a greenlet of its own with a sender: an instance of the user class that Locust never runs, kept
in a pool with its connection. Locust's own users only hold the test open.

:class:`RateControl` runs on the test's owner (the single process, or the master): it starts the
schedule when every sender is ready, re-splits the arrivals when workers join or leave (from an
arrival shortly in the future, so that every process switches at the same one), changes the rate
mid-run (the web UI) and ends the test when every sender has sent its last arrival and heard back.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from gevent.pool import Group
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from llm_locust.errors import ConfigError
from llm_locust.load.arrivals import Checkpoint, RatePlan, Share, UnitSequence, checkpoint_after
from llm_locust.locust import budget, samples
from llm_locust.locust.timer import FINE_S, PreciseTimer

if TYPE_CHECKING:
    from llm_locust.locust.options import RunConfig
    from llm_locust.locust.state import LLMState

logger = logging.getLogger("llm_locust")

#: how far ahead of now a re-split or a rate change takes effect: every process must hear of it first
SWITCH_AHEAD_S = 0.5
#: how long the owner waits for every worker to be ready before the schedule starts without it
READY_WAIT_S = 30.0


def warmup_until_s(plan: RatePlan, seed: int, warmup_s: float, warmup_requests: int) -> float:
    """The run time where --warmup ends: its seconds, or the due time of arrival ``warmup_requests``."""
    if not warmup_requests:
        return warmup_s
    seq = UnitSequence(seed, plan.burstiness)
    for _ in range(warmup_requests):
        seq.advance()
    t = plan.time_of(seq.s)
    return math.inf if t is None else t


def _open_loop_of(state: LLMState) -> tuple[RunConfig, RatePlan, int]:
    """The test's config, its rate plan and the seed of its arrival sequence (an open loop's)."""
    config = state.require_config()
    plan = config.load.plan
    assert plan is not None
    return config, plan, config.workload.dataset.seed


class OpenLoop:
    """This process's arrivals: dispatched on schedule, each one task of a pooled sender."""

    def __init__(self, state: LLMState) -> None:
        config, self.plan, self.seed = _open_loop_of(state)
        self.state = state
        self.limit = config.load.max_requests
        self.warmup_requests = config.load.warmup_requests
        self.warmup_s = config.load.warmup_s
        self.origin_perf_s: float | None = None
        self.shares: list[Share] = []
        self.cap: int | None = None
        self.start_at = Checkpoint()
        self.in_flight = 0
        self.group = Group()
        self._changed = Event()
        self._slot_freed = Event()
        self._loop: gevent.Greenlet | None = None
        self._senders: list[Any] = []
        self._classes = [c for c in state.environment.user_classes if hasattr(c, "run_arrival")]
        self._weights = [max(int(getattr(c, "weight", 1) or 1), 1) for c in self._classes]
        self._rng = random.Random(f"{self.seed} senders")
        self.on_finished: Callable[[], None] | None = None
        self._stopped = False
        self._timer = PreciseTimer()

    # -- control ------------------------------------------------------------------------------
    def begin(self, start_wall_s: float, share: Share, cap: int | None, at: Checkpoint | None = None) -> None:
        """Start dispatching: arrival ``k`` of ``share`` is due at ``start_wall_s + at_s`` (Unix time,
        mapped onto this process's monotonic clock once)."""
        if self._loop is not None:
            return
        self.origin_perf_s = time.perf_counter() - (time.time() - start_wall_s)
        self.shares = [share]
        self.cap = cap
        self.start_at = at or Checkpoint()
        self._loop = gevent.spawn(self._dispatch)

    def reassign(self, share: Share, cap: int | None) -> None:
        """From arrival ``share.from_k`` on, take ``share`` (workers joined or left)."""
        self.shares.append(share)
        self.cap = cap
        self._changed.set()
        self._slot_freed.set()

    def replan(self, plan: RatePlan) -> None:
        """The rate changed (from some instant ahead on)."""
        self.plan = plan
        self._changed.set()

    def stop(self) -> None:
        """The test stops: no more arrivals; what is in flight is cut (and recorded as cancelled)."""
        self._stopped = True
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None
        self.group.kill(block=True, timeout=5)

    # -- dispatch -----------------------------------------------------------------------------
    def _takes(self, k: int) -> bool:
        share = self.shares[0]
        for s in self.shares:
            if s.from_k <= k:
                share = s
        return share.takes(k)

    def _dispatch(self) -> None:
        assert self.origin_perf_s is not None
        seq = UnitSequence(self.seed, self.plan.burstiness, self.start_at)
        self._timer = PreciseTimer()
        try:
            while self.limit is None or seq.k < self.limit:
                t = self.plan.time_of(seq.s)
                if t is None:
                    break
                if self._takes(seq.k):
                    t = self._wait_until(seq.s, t)
                    if t is None:
                        break
                    self._wait_for_slot()
                    self._start(seq.k, self.origin_perf_s + t, self.plan.label_at(t))
                seq.advance()
            self.group.join()
        finally:
            self._timer.close()
            self._loop = None
            if self.on_finished is not None and not self._stopped:
                self.on_finished()

    def _wait_until(self, s: float, t: float) -> float | None:
        """Sleep until the arrival at operational time ``s`` is due (re-reading the plan when it
        changes meanwhile); its run time, or None when a new plan ends before it."""
        assert self.origin_perf_s is not None
        while True:
            due = self.origin_perf_s + t
            wait = due - time.perf_counter()
            if wait > FINE_S:
                self._changed.clear()
                if self._changed.wait(wait - FINE_S):
                    new_t = self.plan.time_of(s)
                    if new_t is None:
                        return None
                    t = new_t
                    continue
            # the last ~2 ms on a timerfd: gevent's own timers wake up to a millisecond late
            self._timer.sleep_until(due)
            return t

    def _wait_for_slot(self) -> None:
        while self.cap is not None and self.in_flight >= self.cap:
            self._slot_freed.clear()
            self._slot_freed.wait()

    def _start(self, k: int, due_perf_s: float, label: str) -> None:
        warmup = k < self.warmup_requests or (
            self.warmup_s > 0 and due_perf_s < (self.origin_perf_s or 0.0) + self.warmup_s
        )
        self.in_flight += 1
        self.group.spawn(self._run, due_perf_s, label, warmup)

    def _run(self, due_perf_s: float, label: str, warmup: bool) -> None:
        sender = self._senders.pop() if self._senders else self._new_sender()
        try:
            if sender is not None:
                sender.run_arrival(due_perf_s, label, warmup)
        except StopUser:
            pass
        except Exception:  # a locustfile task's own error: said, and the schedule goes on
            logger.exception("open loop: a task of %s raised", type(sender).__name__)
        finally:
            self.in_flight -= 1
            self._slot_freed.set()
            if sender is not None:
                self._senders.append(sender)

    def _new_sender(self) -> Any:
        if not self._classes:
            logger.error("open loop: no LLMUser class in the locustfile sends the arrivals")
            return None
        cls = self._rng.choices(self._classes, self._weights)[0]
        return cls(self.state.environment)


class RateControl:
    """On the test's owner: the schedule's start, its shares over the workers, its rate, its end."""

    def __init__(self, state: LLMState) -> None:
        config, self.plan, self.seed = _open_loop_of(state)
        self.state = state
        self.cap = config.load.max_concurrency
        self.start_wall_s: float | None = None
        self.slots: dict[str, int] = {}
        self.ready: set[str] = set()
        self.last = Checkpoint()
        load = config.load
        self.warmup_until_s = warmup_until_s(self.plan, self.seed, load.warmup_s, load.warmup_requests)
        self._watch: gevent.Greenlet | None = None
        self.ended = False  # the test stopped

    # -- what the time series and the web UI show ---------------------------------------------
    def run_time_s(self) -> float | None:
        return None if self.start_wall_s is None else time.time() - self.start_wall_s

    def rate_now(self) -> float | None:
        t = self.run_time_s()
        if t is None or t > self.plan.end_s:
            return None
        return self.plan.rate_at(t)

    def warmup_now(self) -> bool:
        t = self.run_time_s()
        return t is not None and t < self.warmup_until_s

    # -- the owner's runner -------------------------------------------------------------------
    @property
    def _runner(self) -> Any:
        return self.state.environment.runner

    def local_begin(self, loop: OpenLoop) -> None:
        """A single process: its own loop is the only sender."""
        self.start_wall_s = time.time()
        loop.on_finished = lambda: budget.end_test(self.state)
        loop.begin(self.start_wall_s, Share(0, 1), self.cap)

    def master_begin(self, slots: dict[str, int]) -> None:
        self.slots = dict(slots)
        self._watch = gevent.spawn(self._watch_workers)

    def on_ready(self, worker_id: str) -> None:
        logger.debug("open loop: worker %s is ready", worker_id)
        self.ready.add(worker_id)
        if self.start_wall_s is None and set(self.slots) <= self.ready:
            self._go()

    def _go(self) -> None:
        self.start_wall_s = time.time() + 0.05
        for worker_id in self.slots:
            self._send_share(worker_id, Checkpoint())

    def _share_wire(self, worker_id: str, at: Checkpoint) -> dict[str, Any]:
        index, count = self.slots[worker_id], len(self.slots)
        return {
            "start_wall_s": self.start_wall_s,
            "index": index,
            "count": count,
            "from_k": at.k,
            "s": at.s,
            "cap": budget.share_of(self.cap, index, count),
            "plan": self.plan.to_wire(),
        }

    def _send_share(self, worker_id: str, at: Checkpoint) -> None:
        self._runner.send_message("llm_ol_share", self._share_wire(worker_id, at), client_id=worker_id)

    def _live(self) -> list[str]:
        runner = self._runner
        nodes = [*runner.clients.ready, *runner.clients.spawning, *runner.clients.running]
        return sorted({n.id for n in nodes}, key=runner.get_worker_index)

    def _watch_workers(self) -> None:
        """Start without a worker that is not ready in time; re-split when the workers change."""
        limit = time.monotonic() + READY_WAIT_S
        while self.start_wall_s is None:
            gevent.sleep(0.1)
            if time.monotonic() > limit and self.ready:
                late = sorted(set(self.slots) - self.ready)
                logger.warning("open loop: starting without worker(s) %s (not ready)", late)
                ready = sorted(self.ready, key=self._runner.get_worker_index)
                self.slots = {w: i for i, w in enumerate(ready)}
                self._go()
        while not self.ended:
            gevent.sleep(0.5)
            live = [w for w in self._live() if w in self.ready or w in self.slots]
            if live and live != sorted(self.slots, key=self.slots.__getitem__):
                self._resplit(live)

    def _resplit(self, live: list[str]) -> None:
        t = self.run_time_s() or 0.0
        self.last = checkpoint_after(self.plan, self.seed, t + SWITCH_AHEAD_S, self.last)
        self.slots = {w: i for i, w in enumerate(live)}
        self.state.workers_done &= set(live)
        logger.info("open loop: %d worker(s) share the arrivals from arrival %d on", len(live), self.last.k)
        for worker_id in live:
            self._send_share(worker_id, self.last)

    def change_rate(self, rate_per_s: float) -> None:
        """The web UI's new rate, from a moment ahead on, everywhere."""
        t = self.run_time_s()
        if t is None:
            raise ValueError("the test has not started its schedule yet")
        self.plan = self.plan.changed_at(t + SWITCH_AHEAD_S, rate_per_s)
        runner = self._runner
        if isinstance(runner, MasterRunner):
            for worker_id in self.slots:
                runner.send_message("llm_ol_plan", {"plan": self.plan.to_wire()}, client_id=worker_id)
        elif self.state.open_loop is not None:
            self.state.open_loop.replan(self.plan)
        logger.info("open loop: %g req/s from %.1f s into the run", rate_per_s, t + SWITCH_AHEAD_S)

    def stop(self) -> None:
        self.ended = True
        if self._watch is not None:
            self._watch.kill(block=False)
            self._watch = None


# -- a worker's side ------------------------------------------------------------------------------
def on_share(state: LLMState, data: dict[str, Any]) -> None:
    """The owner's share for this worker: start with it, or switch to it at its arrival."""
    loop = state.open_loop
    if loop is None:
        return  # not this test's (shares come only after this process said it was ready)
    share = Share(int(data["index"]), int(data["count"]), int(data["from_k"]))
    loop.replan(RatePlan.from_wire(data["plan"]))
    if loop.origin_perf_s is None:  # the first share: begin
        loop.on_finished = lambda: _say_done(state)
        at = Checkpoint(share.from_k, float(data["s"]))
        loop.begin(float(data["start_wall_s"]), share, data["cap"], at)
    else:
        loop.reassign(share, data["cap"])


def _say_done(state: LLMState) -> None:
    runner = state.environment.runner
    if isinstance(runner, WorkerRunner):
        runner.send_message("llm_done", None)


def on_plan(state: LLMState, data: dict[str, Any]) -> None:
    """The owner changed the rate."""
    if state.open_loop is not None:
        state.open_loop.replan(RatePlan.from_wire(data["plan"]))


# -- wiring ---------------------------------------------------------------------------------------
def listen(environment: Any, state: LLMState) -> None:
    """Register the open loop's messages and its stop (at Locust's init)."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("llm_ol_share", lambda environment, msg, **kw: on_share(state, msg.data))
        runner.register_message("llm_ol_plan", lambda environment, msg, **kw: on_plan(state, msg.data))
    elif isinstance(runner, MasterRunner):
        runner.register_message("llm_ol_ready", lambda environment, msg, **kw: _on_ready(state, msg.node_id))
        runner.register_message("llm_done", lambda environment, msg, **kw: budget.on_done(state, msg.node_id))
    # before Locust stops the users and the workers flush: what is cut is recorded as cancelled
    environment.events.test_stopping.add_listener(lambda environment, **kw: stop(state))


def _on_ready(state: LLMState, worker_id: str) -> None:
    if state.rate_control is not None:
        state.rate_control.on_ready(worker_id)


def reset(state: LLMState) -> None:
    """A new test starts: forget the last one's schedule."""
    state.open_loop = None
    state.rate_control = None
    state.workers_done = set()
    state.ended_by_budget = False


def start(state: LLMState) -> None:
    """At the test's start, after its dataset: each process's budget, and in an open loop its part
    of the schedule. Raises ConfigError for what an open loop cannot run."""
    config = state.require_config()
    env = state.environment
    runner = env.runner
    budget.assign(state)
    if not config.load.open_loop:
        return
    for cls in env.user_classes:
        if any(isinstance(t, type) for t in getattr(cls, "tasks", ())):
            raise ConfigError(
                f"open loop: {cls.__name__} has a TaskSet; an open loop runs one task function per arrival"
            )
    if isinstance(runner, MasterRunner):
        slots = dict(getattr(env.parsed_options, samples.SLOTS_OPTION, None) or {})
        cap = config.load.max_concurrency
        if cap is not None and cap < len(slots):
            raise ConfigError(f"--max-concurrency {cap} < {len(slots)} workers: each needs a slot")
        state.rate_control = RateControl(state)
        state.rate_control.master_begin(slots)
        return
    state.open_loop = OpenLoop(state)
    if isinstance(runner, WorkerRunner):
        logger.debug("open loop: this worker is ready to send")
        runner.send_message("llm_ol_ready", None)
    else:
        state.rate_control = RateControl(state)
        state.rate_control.local_begin(state.open_loop)


def stop(state: LLMState) -> None:
    if state.open_loop is not None:
        state.open_loop.stop()
    if state.rate_control is not None:
        state.rate_control.stop()
