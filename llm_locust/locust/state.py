"""Per-environment state of llm-locust (the run's config, aggregate, time series, client health,
ladder level) and how one finished request is counted: our aggregate, Locust's request row and
the metric rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult, Event
from locust.stats import bucket_response_time

from llm_locust.errors import ConfigError, LLMFailure
from llm_locust.flavors import AUTO, flavor, openai_chat
from llm_locust.flavors.base import Flavor, RequestOptions
from llm_locust.locust.health import Health
from llm_locust.locust.keys import KeyBinding
from llm_locust.locust.options import RunConfig
from llm_locust.metrics.aggregate import Aggregate, wall_time
from llm_locust.metrics.peaks import Peaks
from llm_locust.metrics.records import CANCELLED, RequestRecord
from llm_locust.metrics.timeseries import TimeSeries
from llm_locust.wire.urls import join_path, public_url
from llm_locust.workload.tokenizer import Tokenizer, count_off_loop, load_off_loop

if TYPE_CHECKING:
    from llm_locust.workload.dataset import Dataset
    from llm_locust.workload.sampler import SampleStream

logger = logging.getLogger("llm_locust")

ROW_TYPE = "LLM"


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
        self.key_binding: KeyBinding | None = None  # the start-up key and its host (llm_locust.locust.keys)
        self.notes: list[str] = []  # said to the user about this test (the summary, the LLM tab)
        self.aggregate = Aggregate()
        self.timeseries = TimeSeries()
        self.health = Health()
        self.peaks = Peaks()  # per-second tokens and in-flight peaks (vLLM's max_* results)
        self.level: str | None = None
        self.in_flight = 0
        self.peak_users = 0
        self.flavor: Flavor | None = None  # the test's API flavor, decided at its start
        self.api_detected_by = ""  # how (for the summary)
        self.request_options = RequestOptions(model="")
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
        self.dataset: Dataset | None = None  # the test's dataset, loaded at its start
        self.samples: SampleStream | None = None  # this process's share of it
        self.progress: gevent.Greenlet | None = None
        self.sampler: gevent.Greenlet | None = None
        #: set when this process's test start is done (configured, or its options refused)
        self.test_started = Event()
        self.started_at_perf_s: float | None = None  # this process's test start (closed-loop --warmup)
        self.warmup_share = 0  # closed loop: this process's share of --warmup's requests
        self.warmup_seen = 0
        self._warmup_excluded_at_sample = 0
        self.open_loop: Any = None  # llm_locust.locust.openloop.OpenLoop, in an open-loop test
        self.rate_control: Any = None  # llm_locust.locust.openloop.RateControl, on the test's owner
        self.workers_done: set[str] = set()  # the master: workers whose share was sent and answered
        self.ended_by_budget = False
        self.request_budget: int | None = None  # closed loop: this process's share of --max-requests
        self.request_log: Any = None  # llm_locust.locust.requestlog.RequestLog, with --llm-requests
        self.url = ""  # the requests' URL as Locust's request event reports it (no credentials)
        #: called before a stats reset clears the aggregate (the Prometheus exporter keeps its totals)
        self.before_reset: list[Callable[[], None]] = []
        self.exporter: Any = None  # llm_locust.locust.exporter.Exporter, where metrics are exported
        self.genai: Any = None  # llm_locust.locust.otel.GenAIMetrics, under Locust's --otel
        self.server_metrics: Any = None  # llm_locust.locust.servermetrics.Poller, on the test's owner

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

    def require_flavor(self) -> Flavor:
        if self.flavor is None:
            raise ConfigError("llm-locust is not configured: the test has not started")
        return self.flavor

    def configure(self, config: RunConfig, detected_by: str = "--api") -> None:
        """Adopt the test's config (its ``api`` decided). Waits (cooperatively) for the tokenizer
        before users start, since loading it holds the GIL at times and would distort the first
        requests' timings."""
        if config.api == AUTO:  # not decided at a test start (a User driven directly): the default
            config, detected_by = config.with_api("openai-chat", config.model), "default"
        chosen = flavor(config.api)
        self.config = config
        self.aggregate.goodput_bounds = config.goodput
        self.flavor = chosen
        self.api_detected_by = detected_by
        self.request_options = RequestOptions(
            model=config.model,
            temperature=config.temperature,
            ignore_eos=config.ignore_eos,
            api_key=config.api_key,
        )
        self.path = join_path(config.host, chosen.path)
        self.url = public_url(config.host, self.path)
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

    def _closed_loop_warmup(self, rec: RequestRecord) -> bool:
        """--warmup in a closed loop: sent within its seconds of the test start, or among this
        process's share of its first requests."""
        load = self.config.load if self.config is not None else None
        if load is None or not (load.warmup_s or load.warmup_requests):
            return False
        if load.warmup_requests:
            self.warmup_seen += 1
            return self.warmup_seen <= self.warmup_share
        started = self.started_at_perf_s
        return started is not None and rec.sent_at_s < started + load.warmup_s

    def reset(self) -> None:
        """Locust's stats reset: our numbers start over too."""
        for hook in self.before_reset:
            hook()
        self._warmup_excluded_at_sample = 0
        self.aggregate.reset()
        self.timeseries.reset()
        self.peaks.reset()
        self.health.reset()
        if self.server_metrics is not None:
            self.server_metrics.reset()  # its window starts over at the next poll

    def set_level(self, label: Any) -> None:
        """Tag the requests sent from now on with this ladder level."""
        self.level = str(label)

    def sample(self, last: bool = False) -> None:
        runner: Any = self.environment.runner
        users = runner.user_count if runner is not None else 0
        control = self.rate_control
        rate = control.rate_now() if control is not None else None
        # a point is warm-up while the warm-up lasts, and where warm-up requests finished in its bucket
        excluded = self.aggregate.counts["warmup_excluded"]
        warmup = excluded > self._warmup_excluded_at_sample or (
            control.warmup_now() if control is not None else self._closed_loop_warmup_now()
        )
        self._warmup_excluded_at_sample = excluded
        in_flight = self.in_flight_total()
        poller = self.server_metrics
        server = poller.now() if poller is not None else (None, None, None)
        self.timeseries.sample(
            time.time(), users, in_flight, self.level, last=last, target_rate_per_s=rate, warmup=warmup,
            server=server,
        )  # fmt: skip

    def warmup_now(self) -> bool:
        """Whether the test is within --warmup now (open or closed loop)."""
        control = self.rate_control
        return bool(control.warmup_now()) if control is not None else self._closed_loop_warmup_now()

    def _closed_loop_warmup_now(self) -> bool:
        load = self.config.load if self.config is not None else None
        started = self.started_at_perf_s
        if load is None or started is None:
            return False
        if load.warmup_requests:
            return self.aggregate.counts["warmup_excluded"] < load.warmup_requests
        return time.perf_counter() < started + load.warmup_s

    # -- recording ---------------------------------------------------------------------------
    def record(
        self,
        rec: RequestRecord,
        level: str | None = None,
        warmup: bool | None = None,
        user_context: Mapping[str, Any] | None = None,
    ) -> None:
        """Count one finished request exactly once: our aggregate, Locust's request row, metric rows,
        the --llm-requests line. ``level``: its level where the sender knows it (open loop: the rate
        its arrival was due at); ``warmup``: whether it is within --warmup (None: decided here, for
        a closed loop). A warm-up request goes into the time series (and its line) only.
        ``user_context``: the sending User's ``context()``, merged into the request event's."""
        self.timeseries.record(rec)
        if warmup is None:
            warmup = self._closed_loop_warmup(rec)
        if level is None:
            level = self.level
        log = self.request_log
        if log is not None:
            log.add(rec, level, warmup)
        if warmup:
            self.aggregate.counts["warmup_excluded"] += 1
            return
        self.aggregate.record(rec, level)
        if rec.ok:
            self.peaks.record(rec, wall_time(rec.sent_at_s))
        if rec.outcome == CANCELLED:
            return  # not a success, not a server failure: reported as 'cancelled' by our summary
        if self.genai is not None:
            self.genai.record(rec)
        env = self.environment
        ok = rec.ok
        context = {
            "flavor": self.flavor.name if self.flavor is not None else None,
            "outcome": rec.outcome,
            "ttft_ms": rec.ttft_ms,
            "tpot_ms": rec.tpot_ms,
            "e2e_ms": rec.e2e_ms,
            "output_tokens": rec.output_tokens,
            "input_tokens": rec.input_tokens,
            "request_id": rec.request_id,
            "response_id": rec.response_id,
        }
        if level is not None:
            context["level"] = level
        env.events.request.fire(
            request_type="POST",
            name=self.path,
            response_time=rec.e2e_ms if ok and rec.e2e_ms is not None else rec.elapsed_ms,
            response_length=rec.output_tokens,
            response=None,
            exception=None if ok else LLMFailure(rec.outcome, rec.detail),
            context={**user_context, **context} if user_context else context,
            start_time=wall_time(rec.sent_at_s),
            url=self.url,
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
