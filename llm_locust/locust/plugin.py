"""Locust integration: the listeners that configure a test, run it and report it at the end.

Call :func:`install` once (defining an ``LLMUser`` subclass does it); it is safe to repeat. The
per-environment state is :mod:`llm_locust.locust.state`; master/worker merging is
:mod:`llm_locust.locust.distributed`.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import time
from typing import Any

import gevent
from locust import events
from locust.runners import STATE_RUNNING, STATE_SPAWNING, LocalRunner, MasterRunner, WorkerRunner

import llm_locust
from llm_locust.errors import ConfigError
from llm_locust.flavors import AUTO
from llm_locust.locust import (
    distributed,
    openloop,
    outputs,
    progress,
    requestlog,
    samples,
    servermetrics,
    webform,
    webui,
)
from llm_locust.locust.bench_keys import bench_keys, keys_of
from llm_locust.locust.distributed import lost_workers
from llm_locust.locust.exporter import install as install_exporter
from llm_locust.locust.keys import KeyBinding, resolve_for_test
from llm_locust.locust.options import RunConfig, add_arguments, config_from_options
from llm_locust.locust.otel import install as install_otel
from llm_locust.locust.startup import exit_at_start
from llm_locust.locust.state import LLMState, state_of
from llm_locust.metrics.slo import EXIT_SLO_MISSED
from llm_locust.reports import slo as slo_report
from llm_locust.reports import summary as report
from llm_locust.reports.rebuild import BENCH_KEYS
from llm_locust.wire import reactor

logger = logging.getLogger("llm_locust")

_installed = False


def install() -> None:
    """Register llm-locust's options and listeners on Locust's global events (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    _cache_locust_default_args()
    events.init_command_line_parser.add_listener(add_arguments)  # type: ignore[no-untyped-call]
    events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]


def _cache_locust_default_args() -> None:
    """A worker handling Locust's ``spawn`` message rebuilds and parses Locust's whole argument
    parser once per option the master sent (``argument_parser.default_args_dict()`` inside a dict
    comprehension): with our options, 200-370 ms of a blocked event loop on every spawn message
    (measured with gevent's monitor thread), which holds every stream's reads and shows as late
    tokens. Its result depends only on Locust's own options and this process's environment, and its
    callers only read it: computed once per process."""
    from locust import argument_parser

    original = argument_parser.default_args_dict
    if getattr(original, "cache_info", None) is not None:
        return
    argument_parser.default_args_dict = functools.lru_cache(maxsize=1)(original)


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


def _host_of_user_classes(environment: Any) -> None:
    """A locustfile's ``host = ...`` where ``--host`` (or the config, or the environment) gave none,
    as Locust's users expect. Our users share one host per test: user classes naming different
    hosts need ``--host``."""
    if environment.host:
        return
    hosts = {h for c in environment.user_classes if (h := getattr(c, "host", None))}
    if len(hosts) == 1:
        environment.host = hosts.pop()
    elif len(hosts) > 1:
        named = ", ".join(
            f"{c.__name__}: {c.host}" for c in environment.user_classes if getattr(c, "host", None)
        )
        raise ConfigError(f"the user classes name different hosts ({named}): give --host")


def _on_init(environment: Any, **_kw: Any) -> None:
    state = state_of(environment)
    runner = environment.runner
    options = environment.parsed_options
    try:
        _host_of_user_classes(environment)
    except ConfigError as exc:
        if not isinstance(runner, WorkerRunner):  # a worker gets its host from the master
            exit_at_start(str(exc), options)
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
            exit_at_start(str(exc), options)

    if options is not None and not isinstance(runner, MasterRunner):
        state.preload_tokenizer(options.tokenizer or "cl100k_base")

    if environment.web_ui is not None:
        webform.install(environment, state)
        webui.install(environment, state, functools.partial(_results, state))

    ev = environment.events
    ev.test_start.add_listener(lambda environment, **kw: _on_test_start(state))
    ev.reset_stats.add_listener(lambda **kw: state.reset())
    ev.spawning_complete.add_listener(lambda user_count, **kw: _on_spawned(state, user_count))

    distributed.listen(environment, state)
    openloop.listen(environment, state)
    install_exporter(environment, state)  # /llm/metrics, --llm-prometheus-port (not on workers)
    if options is not None and getattr(options, "otel", False):
        install_otel(environment, state)  # Locust's --otel: the GenAI client metrics
    if isinstance(runner, WorkerRunner) and runner.worker_state in (STATE_SPAWNING, STATE_RUNNING):
        # A worker that connects while a test runs (--enable-rebalancing) can get its spawn message
        # while Locust's own start-up still waits for the master's ack, before 'init' fires: the test
        # started with none of our listeners. Start ours now; its users wait for it (LLMUser).
        logger.info("llm-locust: the test started before Locust's init event; configuring it now")
        gevent.spawn(_on_test_start, state)
    if not isinstance(runner, WorkerRunner):
        ev.test_stop.add_listener(lambda environment, **kw: _mark_end(state))
        ev.quitting.add_listener(lambda environment, **kw: _judge(state))
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


def _dataset_of_user_classes(env: Any) -> None:
    """A user class's ``dataset`` (the seed locustfile's "seed") where --dataset is left at its
    default; the owner decides, and its workers get the decision with the options."""
    options = env.parsed_options
    if (getattr(options, "dataset", "prompt") or "prompt") != "prompt":
        return
    wanted = {c.dataset for c in env.user_classes if getattr(c, "dataset", None)}
    if len(wanted) == 1:
        options.dataset = wanted.pop()


def _on_test_start(state: LLMState) -> None:
    state.test_started.clear()
    try:
        _start_test(state)
    finally:
        state.test_started.set()  # its users go on: configured, or told (StopUser) that it was not


def _start_test(state: LLMState) -> None:
    env = state.environment
    openloop.reset(state)
    if not isinstance(env.runner, WorkerRunner) and env.parsed_options is not None:
        # the owner of the test decides where the key goes; the workers get its decision
        binding = state.key_binding or KeyBinding.at_startup(env.parsed_options.api_key, env.host)
        resolved = resolve_for_test(env.parsed_options, env.host, binding)
        state.notes = [resolved.note] if resolved.note else []
        for note in state.notes:
            logger.warning("%s", note)
    if not isinstance(env.runner, WorkerRunner) and env.parsed_options is not None:
        _dataset_of_user_classes(env)
    try:
        reactor.choose_reader(os.environ.get("LLM_LOCUST_READER", "auto"))
        config = config_from_options(env.parsed_options, env.host, state.key_binding)
        detected_by = getattr(env.parsed_options, "llm_api_detected_by", "") or "--api"
        if config.api == AUTO or not config.model:
            from llm_locust.locust.detect import discover

            found = discover(config)
            config, detected_by = config.with_api(found.api, found.model), found.detected_by
            if not isinstance(env.runner, WorkerRunner):
                # the owner decides once; its workers get the decision with the options
                env.parsed_options.api = found.api
                env.parsed_options.model = found.model
                env.parsed_options.llm_api_detected_by = found.detected_by
    except ConfigError as exc:
        _fail(env, str(exc))
        return
    state.configure(config, detected_by)
    if not isinstance(env.runner, WorkerRunner):
        samples.assign_worker_slots(env)  # before the workers get the options
    try:
        state.dataset, state.samples = samples.load_samples(
            config, state.tokenizer(wait=True), *samples.worker_slot(env)
        )
    except ConfigError as exc:
        state.samples = None
        _fail(env, str(exc))
        return
    try:
        requestlog.start(state)
        openloop.start(state)
    except ConfigError as exc:
        _fail(env, str(exc))
        return
    chosen = state.require_flavor()
    if config.ignore_eos and not chosen.ignore_eos_field and not isinstance(env.runner, WorkerRunner):
        note = (
            f"--ignore-eos: {chosen.name} has no ignore-EOS field, so output lengths are the model's;"
            " compare per-token metrics (TPOT, ITL, tok/s) across engines"
        )
        state.notes.append(note)
        logger.warning("%s", note)
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
    if not isinstance(env.runner, WorkerRunner):
        _start_server_metrics(state, config)


def _start_server_metrics(state: LLMState, config: RunConfig) -> None:
    """--server-metrics: the owner's poller for this test (a test started again gets a new one)."""
    if state.server_metrics is not None:
        state.server_metrics.stop()
    poller = servermetrics.Poller(
        config.server_metrics, config.host, config.api_key, config.insecure, state.warmup_now
    )
    state.server_metrics = poller if poller.url is not None else None
    poller.start()


def _mark_end(state: LLMState) -> None:
    state.ended_at_wall_s = time.time()
    state.health.stop()
    if state.progress is not None:
        state.progress.kill(block=False)
        state.progress = None
    if state.server_metrics is not None:
        state.server_metrics.stop()  # polls once more: the window's end
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
    state.set_level(label)
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        for client in runner.clients.all:
            runner.send_message("llm_level", {"level": label}, client_id=client.id)


# -- end of run -------------------------------------------------------------------------------
def _results(state: LLMState) -> dict[str, Any]:
    """The run's results as they stand, with the verdicts of its --slo objectives."""
    config = state.require_config()
    results = report.results(state.aggregate, _metadata(state), state.timeseries.to_json())
    results["client"] = state.health.results(local=not isinstance(state.environment.runner, MasterRunner))
    options = state.environment.parsed_options
    vllm_keys = bench_keys(
        results,
        api=config.api,
        model=config.model,
        tokenizer=config.tokenizer,
        load=config.load,
        started_wall_s=state.started_at_wall_s,
        peak_users=state.peak_users,
        peaks=state.peaks,
        profile=getattr(options, "profile", None),
    )
    results = {**vllm_keys, **results}  # first, where vLLM's files have them
    slo_report.attach(results, config.objectives, config.slo_per_level)
    poller = state.server_metrics
    if poller is not None and (server := poller.results(results)) is not None:
        results["server_metrics"] = server
    return results


def _judge(state: LLMState) -> None:
    """Before Locust decides its exit code: a missed objective makes it EXIT_SLO_MISSED (unless the run
    already ended on an error of its own). After a headless run's end the numbers are final: the
    workers' last reports came in when the test stopped."""
    if state.config is None or not state.config.objectives:
        return
    env = state.environment
    if state.ended_at_wall_s is None:
        state.ended_at_wall_s = time.time()
    if env.process_exit_code is not None:
        return
    if not _results(state)["slo"]["passed"]:
        env.process_exit_code = EXIT_SLO_MISSED


def _on_quit(state: LLMState) -> None:
    if state.config is None:
        return
    if state.ended_at_wall_s is None:
        state.ended_at_wall_s = time.time()
    results = _results(state)
    # Locust's own end-of-run tables go to this logger (plain lines on stderr, and the web UI's log
    # view), so that --json's stdout stays JSON and the summary follows Locust's tables
    summary = report.format_summary(results)
    logging.getLogger("locust.stats_logger").info("%s", summary)
    options = state.environment.parsed_options
    if options is not None and getattr(options, "logfile", None):
        logger.info("%s", summary)  # --logfile: in the file too (Locust's tables stay on stderr)
    outputs.write_reports(results, state.config, options)
    # the run line of --llm-requests: what llm-locust report cannot rebuild from the request lines
    requestlog.close(state, {**results["metadata"], BENCH_KEYS: keys_of(results)})


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution``; "unknown" where it is not installed (a source tree
    on sys.path, as the benches run it): the results must not be lost for want of a version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _metadata(state: LLMState) -> dict[str, Any]:
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
        "api": config.api,
        "api_detected_by": state.api_detected_by,
        "options": config.public(),
        "dataset": state.dataset.info.to_json() if state.dataset is not None else None,
        "user_classes": sorted(c.__name__ for c in env.user_classes),
        "reader": state.health.reader(local=not isinstance(runner, MasterRunner)),
        "llm_locust_version": llm_locust.__version__,
        "locust_version": installed_version("locust"),
        "notes": list(state.notes),
        "start_time": report.iso(state.started_at_wall_s),
        "end_time": report.iso(state.ended_at_wall_s),
    }
