"""Locust integration: options, per-environment state, stats rows, master/worker merging, reports.

Call :func:`install` once (defining an ``LLMUser`` subclass does it); it is safe to repeat.

Distributed runs: each worker ships the delta of its :class:`Aggregate` with every
``report_to_master``. When the test stops, the master asks every worker for a final flush
(``llm_stop``) and waits for each ``llm_final`` before Locust's quit goes on, so the samples of
the last seconds are never lost (Locust itself waits only 0.5 s for them).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust import events
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner
from locust.stats import bucket_response_time

from llm_locust import master_watch, openai_chat, progress, reactor, report, webform, webui
from llm_locust.aggregate import Aggregate
from llm_locust.errors import ConfigError, LLMFailure
from llm_locust.health import Health
from llm_locust.keys import KeyBinding, resolve_for_test
from llm_locust.options import RunConfig, add_arguments, config_from_options
from llm_locust.records import CANCELLED, RequestRecord
from llm_locust.timeseries import TimeSeries
from llm_locust.tokenizer import Tokenizer, count_off_loop, load_off_loop

logger = logging.getLogger("llm_locust")

ROW_TYPE = "LLM"
_FINAL_WAIT_EXTRA_S = 15.0
_installed = False


def install() -> None:
    """Register llm-locust's options and listeners on Locust's global events (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    events.init_command_line_parser.add_listener(add_arguments)  # type: ignore[no-untyped-call]
    events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]


def state_of(environment: Any) -> LLMState:
    state = getattr(environment, "llm_locust", None)
    if state is None:
        state = LLMState(environment)
        environment.llm_locust = state
    return state


class LLMState:
    """Per-environment state: the run's config, its aggregate, the ladder level."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.config: RunConfig | None = None
        self.key_binding: KeyBinding | None = None  # the start-up key and its host (llm_locust.keys)
        self.notes: list[str] = []  # said to the user about this test (the summary, the LLM tab)
        self.aggregate = Aggregate()
        self.timeseries = TimeSeries()
        self.health = Health()
        self.level: str | None = None
        self.in_flight = 0
        self.peak_users = 0
        self.path = openai_chat.PATH
        self.started_at_wall_s: float | None = None
        self.ended_at_wall_s: float | None = None
        self._tokenizer: AsyncResult | None = None
        self._tokenizer_spec = ""
        self._prompt_tokens: dict[str, int] = {}
        self._usage_checks = 0
        self.awaiting_final: set[str] = set()
        self.workers_seen: set[str] = set()
        self.workers_final: set[str] = set()
        self.worker_in_flight: dict[str, int] = {}
        self.progress: gevent.Greenlet | None = None
        self.sampler: gevent.Greenlet | None = None

    # -- configuration ---------------------------------------------------------------------
    def require_config(self) -> RunConfig:
        if self.config is None:
            raise ConfigError("llm-locust is not configured: the test has not started")
        return self.config

    def preload_tokenizer(self, spec: str) -> None:
        """Start loading a tokenizer in the thread pool (idempotent per spec)."""
        if self._tokenizer is None or self._tokenizer_spec != spec:
            self._tokenizer_spec = spec
            self._tokenizer = AsyncResult()
            gevent.spawn(self._load_tokenizer, spec, self._tokenizer)

    def configure(self, config: RunConfig) -> None:
        """Adopt the test's config. Waits (cooperatively) for the tokenizer before users start, since
        loading it holds the GIL at times and would distort the first requests' timings."""
        self.config = config
        self.path = report.join_path(config.host, openai_chat.PATH)
        self.preload_tokenizer(config.tokenizer)
        self.tokenizer(wait=True)

    @staticmethod
    def _load_tokenizer(spec: str, result: AsyncResult) -> None:
        try:
            result.set(load_off_loop(spec))
        except ConfigError as exc:
            logger.error("%s; token counts fall back to server usage or event counts", exc)
            result.set(None)

    def in_flight_total(self) -> int:
        """Requests in flight here, plus what each worker said in its latest report."""
        return self.in_flight + sum(self.worker_in_flight.values())

    def tokenizer(self, wait: bool) -> Tokenizer | None:
        result = self._tokenizer
        if result is None:
            return None
        if wait:
            return result.get()  # type: ignore[no-any-return]
        return result.value if result.ready() else None

    def check_usage_now(self) -> bool:
        """Whether to count a response the server already counted (usage), to check the two agree.
        The first 100 such responses, then one in 20: the check is a diagnostic, and a thread-pool
        hand-off per request was 15 % of the client's CPU at 512 streams."""
        self._usage_checks += 1
        return self._usage_checks <= 100 or self._usage_checks % 20 == 0

    def prompt_tokens(self, tokenizer: Tokenizer, text: str) -> int:
        """Client-side count of a prompt's text, cached (prompts repeat)."""
        n = self._prompt_tokens.get(text)
        if n is None:
            n = count_off_loop(tokenizer, text)
            if len(self._prompt_tokens) >= 1024:
                self._prompt_tokens.clear()
            self._prompt_tokens[text] = n
        return n

    def reset(self) -> None:
        """Locust's stats reset: our numbers start over too."""
        self.aggregate.reset()
        self.timeseries.reset()
        self.health.reset()

    def sample(self, last: bool = False) -> None:
        runner: Any = self.environment.runner
        users = runner.user_count if runner is not None else 0
        self.timeseries.sample(time.time(), users, self.in_flight_total(), self.level, last=last)

    # -- recording ---------------------------------------------------------------------------
    def record(self, rec: RequestRecord) -> None:
        """Count one finished request exactly once: our aggregate, Locust's request row, metric rows."""
        self.aggregate.record(rec, self.level)
        self.timeseries.record(rec)
        if rec.outcome == CANCELLED:
            return  # not a success, not a server failure: reported as 'cancelled' by our summary
        env = self.environment
        ok = rec.ok
        env.events.request.fire(
            request_type="POST",
            name=self.path,
            response_time=rec.e2e_ms if ok and rec.e2e_ms is not None else rec.elapsed_ms,
            response_length=rec.output_tokens,
            exception=None if ok else LLMFailure(rec.outcome, rec.detail),
            context={},
        )
        if ok:
            _log_metric_rows(env.stats, rec)


def _log_metric_rows(stats: Any, rec: RequestRecord) -> None:
    """Metric rows go straight into their entries, so they never count into 'Aggregated'."""
    if rec.ttft_ms is not None:
        stats.get("TTFT", ROW_TYPE).log(rec.ttft_ms, 0)
    tpot = rec.tpot_ms
    if tpot is not None:
        stats.get("TPOT", ROW_TYPE).log(tpot, 0)
    if rec.itl_ms:
        log_many(stats.get("ITL", ROW_TYPE), rec.itl_ms)
    if rec.e2e_ms is not None:
        stats.get("E2E", ROW_TYPE).log(rec.e2e_ms, 0)


def log_many(entry: Any, values_ms: Sequence[float]) -> None:
    """``entry.log(v, 0)`` for every value, as one update: a stream's ITL gaps would otherwise cost
    a full ``StatsEntry.log`` per token. The first value goes through ``log`` (it keeps Locust's
    per-second bookkeeping and response-time cache); the rest are added the way ``log`` adds them."""
    entry.log(values_ms[0], 0)
    rest = values_ms[1:]
    if not rest:
        return
    n = len(rest)
    entry.num_requests += n
    entry.num_reqs_per_sec[int(entry.last_request_timestamp)] += n
    entry.total_response_time += sum(rest)
    entry.min_response_time = min(entry.min_response_time, min(rest))
    entry.max_response_time = max(entry.max_response_time, max(rest))
    times = entry.response_times
    for value in rest:
        times[bucket_response_time(value)] += 1


# -- listeners --------------------------------------------------------------------------------
def _fail(environment: Any, message: str) -> None:
    """A bad option: one line, then end the run with exit code 1 (headless) or stop the test and
    keep the web UI up so the form can be corrected."""
    logger.error("%s", message)
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return
    options = environment.parsed_options
    if options is None or options.headless:
        environment.process_exit_code = 1
        gevent.spawn(runner.quit)
    else:
        gevent.spawn(runner.stop)


def _on_init(environment: Any, **_kw: Any) -> None:
    state = state_of(environment)
    runner = environment.runner
    options = environment.parsed_options
    if options is not None:
        state.key_binding = KeyBinding.at_startup(options.api_key, environment.host)
        if getattr(options, "llm_master_bound_locally", False) and isinstance(runner, MasterRunner):
            logger.info(
                "--processes: the master port %s listens on %s only (options, the API key included, "
                "travel over it in clear text); give --master-bind-host to change that",
                options.master_bind_port,
                options.master_bind_host,
            )
    if options is not None and not isinstance(runner, WorkerRunner) and options.headless:
        try:
            config_from_options(options, environment.host, state.key_binding)
        except ConfigError as exc:
            sys.stderr.write(f"llm-locust: error: {exc}\n")
            sys.exit(1)

    if options is not None and not isinstance(runner, MasterRunner):
        state.preload_tokenizer(options.tokenizer or "cl100k_base")

    if environment.web_ui is not None:
        webform.install(environment, state)
        webui.install(environment, state)

    ev = environment.events
    ev.test_start.add_listener(lambda environment, **kw: _on_test_start(state))
    ev.reset_stats.add_listener(lambda **kw: state.reset())
    ev.spawning_complete.add_listener(lambda user_count, **kw: _on_spawned(state, user_count))

    if isinstance(runner, WorkerRunner):
        master_watch.watch(environment)
        ev.report_to_master.add_listener(lambda client_id, data, **kw: _on_report(state, data))
        ev.test_stop.add_listener(lambda environment, **kw: _worker_flush(state))
        # concurrent: stopping waits for the streams, and inline it would hold the worker's message
        # loop (the master's heartbeats unread) for as long
        runner.register_message(
            "llm_stop", lambda environment, msg, **kw: _on_llm_stop(state), concurrent=True
        )
        runner.register_message(
            "llm_level", lambda environment, msg, **kw: _set_level(state, msg.data["level"])
        )
    elif isinstance(runner, MasterRunner):
        ev.worker_report.add_listener(lambda client_id, data, **kw: _on_worker_report(state, client_id, data))
        ev.test_stopping.add_listener(lambda environment, **kw: _master_request_finals(state))
        ev.test_stop.add_listener(lambda environment, **kw: _master_wait_finals(state))
        runner.register_message("llm_final", lambda environment, msg, **kw: _on_final(state, msg))
        ev.worker_connect.add_listener(lambda client_id, **kw: _on_worker_connect(state, client_id))
    if not isinstance(runner, WorkerRunner):
        ev.test_stop.add_listener(lambda environment, **kw: _mark_end(state))
        ev.quit.add_listener(lambda exit_code, **kw: _on_quit(state))


def _on_spawned(state: LLMState, user_count: int) -> None:
    state.peak_users = max(state.peak_users, user_count)
    if state.environment.reset_stats:  # Locust's --reset-stats resets without firing reset_stats
        state.reset()
    # The users, their connections and greenlets live for the whole run; left to the collector,
    # every full collection walks them all and frees nothing: 60-130 ms stalls of the event loop
    # at 2,000 users (measured), which hold every stream's reads (tokens arriving meanwhile are
    # read together and their gaps lost). Frozen, they are skipped; what requests create is not.
    gc.freeze()


def _on_test_start(state: LLMState) -> None:
    env = state.environment
    if not isinstance(env.runner, WorkerRunner) and env.parsed_options is not None:
        # the owner of the test decides where the key goes; the workers get its decision
        binding = state.key_binding or KeyBinding.at_startup(env.parsed_options.api_key, env.host)
        resolved = resolve_for_test(env.parsed_options, env.host, binding)
        state.notes = [resolved.note] if resolved.note else []
        for note in state.notes:
            logger.warning("%s", note)
    try:
        reactor.choose_reader(os.environ.get("LLM_LOCUST_READER", "auto"))
        config = config_from_options(env.parsed_options, env.host, state.key_binding)
        if not config.model:
            from llm_locust.discovery import first_model

            config = config.with_model(first_model(config))
    except ConfigError as exc:
        _fail(env, str(exc))
        return
    state.configure(config)
    if state.started_at_wall_s is None:
        state.started_at_wall_s = time.time()
    state.ended_at_wall_s = None
    options = env.parsed_options
    headless_progress = options is not None and options.headless and not options.only_summary
    if headless_progress and not isinstance(env.runner, WorkerRunner) and state.progress is None:
        state.progress = gevent.spawn(progress.run, state)
    if not isinstance(env.runner, MasterRunner):
        state.health.start()
    if not isinstance(env.runner, WorkerRunner) and state.sampler is None:
        state.sampler = gevent.spawn(_sample_loop, state)


def _mark_end(state: LLMState) -> None:
    state.ended_at_wall_s = time.time()
    state.health.stop()
    if state.progress is not None:
        state.progress.kill(block=False)
        state.progress = None
    if state.sampler is not None:
        state.sampler.kill(block=False)
        state.sampler = None
        state.sample(last=True)  # the last point includes the workers' final reports


def _sample_loop(state: LLMState) -> None:
    """A point of the over-time series every bucket (spawned at test start, killed at test stop)."""
    while True:
        gevent.sleep(state.timeseries.bucket_s)
        state.sample()


def set_level(environment: Any, label: str) -> None:
    """Tag requests sent from now on with a ladder level (called by the load shape on the master)."""
    state = state_of(environment)
    _set_level(state, label)
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        for client in runner.clients.all:
            runner.send_message("llm_level", {"level": label}, client_id=client.id)


def _set_level(state: LLMState, label: Any) -> None:
    state.level = str(label)


# -- worker side ------------------------------------------------------------------------------
def _on_report(state: LLMState, data: dict[str, Any]) -> None:
    data["llm_in_flight"] = state.in_flight
    data["llm_health"] = state.health.take_wire()
    if not state.aggregate.empty:
        data["llm"] = state.aggregate.take_delta()


def _worker_flush(state: LLMState) -> None:
    """After the users stopped: push Locust's stats and our last delta, then say 'final'."""
    runner = state.environment.runner
    runner._send_stats()  # Locust's own rows too, before the master's 0.5 s quit window
    state.health.stop()
    final = {"llm": state.aggregate.take_delta(), "llm_health": state.health.take_wire()}
    runner.send_message("llm_final", final)


def _on_llm_stop(state: LLMState) -> None:
    runner = state.environment.runner
    if runner.state in ("running", "spawning"):
        runner.stop()  # fires test_stop, which flushes
    else:
        _worker_flush(state)


# -- master side ------------------------------------------------------------------------------
def _on_worker_report(state: LLMState, client_id: str, data: dict[str, Any]) -> None:
    if "llm_in_flight" in data:
        state.worker_in_flight[client_id] = int(data["llm_in_flight"])
    if "llm_health" in data:
        state.health.merge_wire(client_id, data["llm_health"])
    wire = data.get("llm")
    if wire is not None:
        state.workers_seen.add(client_id)
        state.aggregate.merge_wire(wire)
        state.timeseries.merge_wire(wire)


def _on_final(state: LLMState, msg: Any) -> None:
    _on_worker_report(state, msg.node_id, msg.data)
    state.awaiting_final.discard(msg.node_id)
    state.workers_final.add(msg.node_id)
    state.worker_in_flight.pop(msg.node_id, None)


def _on_worker_connect(state: LLMState, client_id: str) -> None:
    """A worker that joins late tags its requests with the current ladder level too."""
    if state.level is not None:
        state.environment.runner.send_message("llm_level", {"level": state.level}, client_id=client_id)


def lost_workers(state: LLMState) -> list[str]:
    """Workers that reported data but never sent their final report (killed or disconnected)."""
    return sorted(state.workers_seen - state.workers_final)


def _master_request_finals(state: LLMState) -> None:
    runner = state.environment.runner
    state.awaiting_final = {c.id for c in runner.clients.all if c.state != STATE_MISSING}
    for client_id in state.awaiting_final:
        runner.send_message("llm_stop", None, client_id=client_id)


def _master_wait_finals(state: LLMState) -> None:
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


# -- end of run -------------------------------------------------------------------------------
def _on_quit(state: LLMState) -> None:
    if state.config is None:
        return
    if state.ended_at_wall_s is None:
        state.ended_at_wall_s = time.time()
    results = report.results(state.aggregate, _metadata(state), state.timeseries.to_json())
    results["client"] = state.health.results(local=not isinstance(state.environment.runner, MasterRunner))
    print(report.format_summary(results), flush=True)
    config = state.config
    try:
        if config.llm_json:
            report.write_json(config.llm_json, results)
        if config.llm_csv:
            report.write_csv(config.llm_csv, results)
        if config.llm_html:
            from llm_locust import html_report

            html_report.write_html(config.llm_html, results)
    except OSError as exc:
        logger.error("cannot write LLM report: %s", exc)


def _metadata(state: LLMState) -> dict[str, Any]:
    from importlib.metadata import version

    env = state.environment
    runner = env.runner
    config = state.require_config()
    return {
        "host": config.host,
        "model": config.model,
        "users": state.peak_users,
        "workers": len(state.workers_seen) if isinstance(runner, MasterRunner) else None,
        "workers_lost": lost_workers(state) if isinstance(runner, MasterRunner) else [],
        "mode": "master"
        if isinstance(runner, MasterRunner)
        else "local"
        if isinstance(runner, LocalRunner)
        else "?",
        "options": config.public(),
        "user_classes": sorted(c.__name__ for c in env.user_classes),
        "llm_locust_version": version("llm-locust"),
        "locust_version": version("locust"),
        "notes": list(state.notes),
        "start_time": report.iso(state.started_at_wall_s),
        "end_time": report.iso(state.ended_at_wall_s),
    }
