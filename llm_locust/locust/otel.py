"""OpenTelemetry GenAI client metrics, under Locust's own ``--otel``.

Locust's ``--otel`` sets up the process's meter provider and its exporters (``OTEL_*`` variables);
we add the GenAI semantic conventions' client instruments to it and record each finished request
once, after its stream ended (never per token), in the process that sent it, from a greenlet that
leaves the event loop in between (:meth:`GenAIMetrics._drain`):

- ``gen_ai.client.operation.duration`` (s): send to the end of the request, failures included
  (with ``error.type``: our failure category, e.g. ``http_5xx``, ``timeout``);
- ``gen_ai.client.token.usage`` ({token}): input and output tokens (``gen_ai.token.type``) of a
  successful request: the server's usage, else the client's count;
- ``gen_ai.client.operation.time_to_first_chunk`` (s): our TTFT (the first event carrying text),
  successful streamed requests;
- ``gen_ai.client.operation.time_per_output_chunk`` (s): each gap between text events after the
  first (our ITL samples), successful streamed requests.

Buckets are the conventions' advisory boundaries. Attributes: ``gen_ai.operation.name``
(``text_completion`` for the completions and generate APIs, else ``chat``), ``gen_ai.provider.name``
(the API family: ``openai``, ``anthropic``, ``ollama``), ``gen_ai.request.model``, ``server.address``
and ``server.port`` of ``--host``; ``gen_ai.response.model`` is not recorded (we do not read it from
the stream). Cancelled requests (cut by a stop) and --warmup requests are not recorded, as in our
summary. Nothing here is imported without ``--otel``; the packages come with ``llm-locust[otel]``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import gevent

import llm_locust
from llm_locust.metrics.records import RequestRecord

if TYPE_CHECKING:
    from llm_locust.locust.options import RunConfig
    from llm_locust.locust.state import LLMState

logger = logging.getLogger("llm_locust")

#: The GenAI conventions' advisory boundaries (docs/gen-ai/gen-ai-metrics.md)
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

#: measurements recorded between two turns of the event loop
SLICE = 32

EXTRA_HINT = "pip install 'llm-locust[otel]'"


def attributes_of(config: RunConfig) -> dict[str, Any]:
    """The attributes every instrument carries for a test's config (no key, no path, no query)."""
    api = config.api
    operation = "text_completion" if api.endswith(("completions", "generate")) else "chat"
    attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.provider.name": api.split("-")[0]}
    if config.model:
        attrs["gen_ai.request.model"] = config.model
    url = urlsplit(config.host)
    if url.hostname:
        attrs["server.address"] = url.hostname
        attrs["server.port"] = url.port or (443 if url.scheme == "https" else 80)
    return attrs


#: requests queued for the SDK at most; beyond, a request's measurements are dropped (and counted)
MAX_PENDING = 10_000

class GenAIMetrics:
    """The four instruments on one meter, and how a finished request is recorded on them."""

    def __init__(self, meter: Any, state: LLMState) -> None:
        self.state = state
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )  # fmt: skip
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )  # fmt: skip
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time to receive the first chunk in the response stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )  # fmt: skip
        self.per_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_per_output_chunk", unit="s",
            description="Time per output chunk, for each chunk after the first.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )  # fmt: skip
        self._config: RunConfig | None = None
        self._attrs: dict[str, Any] = {}
        self._input: dict[str, Any] = {}
        self._output: dict[str, Any] = {}
        self._errors: dict[str, dict[str, Any]] = {}
        self._pending: deque[RequestRecord] = deque()
        self.dropped = 0  # requests left out because MAX_PENDING were queued
        self._drainer: gevent.Greenlet | None = None

    def _attributes(self) -> dict[str, Any]:
        config = self.state.config
        if config is not self._config:  # once per test: the attribute dicts are built here, not per request
            self._config = config
            self._attrs = attributes_of(config) if config is not None else {}
            self._input = {**self._attrs, "gen_ai.token.type": "input"}
            self._output = {**self._attrs, "gen_ai.token.type": "output"}
            self._errors = {}
        return self._attrs

    def record(self, rec: RequestRecord) -> None:
        """One finished request (not a cancelled one), after its stream ended: queued here, recorded
        by a greenlet of its own in slices (see :meth:`_drain`), so the request path only appends."""
        if len(self._pending) >= MAX_PENDING:
            # the SDK falls behind the requests: its measurements are dropped (and said), not queued
            # without end; ours (the summary, the JSON, Prometheus) are unaffected
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "--otel: the OpenTelemetry SDK falls behind (%d requests queued): requests are left out"
                    " of the GenAI metrics from now on until it catches up; the count is in the log at quit",
                    MAX_PENDING,
                )
            return
        self._pending.append(rec)
        if self._drainer is None:
            self._drainer = gevent.spawn(self._drain)

    def _drain(self) -> None:
        """The SDK spends ~20 µs per measurement (one per chunk gap: 255 for a 256-token answer):
        recorded inline, that held every other stream's reads for ms at each request's end. Here it
        runs in slices of :data:`SLICE` measurements, with the event loop let in between."""
        try:
            while self._pending:
                self._record_now(self._pending.popleft(), pause=_yield)
        finally:
            self._drainer = None

    def flush(self) -> None:
        """Record everything still queued, now (at quit, before the exporters' last push)."""
        while self._pending:
            self._record_now(self._pending.popleft(), pause=None)
        if self.dropped:
            logger.warning("--otel: %d requests were left out of the GenAI metrics (the SDK fell behind)",
                           self.dropped)  # fmt: skip

    def _record_now(self, rec: RequestRecord, pause: Callable[[], Any] | None) -> None:
        attrs = self._attributes()
        if not rec.ok:
            err = self._errors.get(rec.outcome)
            if err is None:
                err = self._errors[rec.outcome] = {**attrs, "error.type": rec.outcome}
            self.duration.record(rec.elapsed_ms / 1000.0, err)
            return
        self.duration.record(rec.elapsed_ms / 1000.0, attrs)
        self.tokens.record(rec.input_tokens, self._input)
        self.tokens.record(rec.output_tokens, self._output)
        if not rec.streamed:
            return  # the conventions: the chunk metrics are for streaming calls only
        if rec.ttft_ms is not None:
            self.first_chunk.record(rec.ttft_ms / 1000.0, attrs)
        record = self.per_chunk.record
        gaps = rec.itl_ms
        for start in range(0, len(gaps), SLICE):
            for gap_ms in gaps[start : start + SLICE]:
                record(gap_ms / 1000.0, attrs)
            if pause is not None:
                pause()


def install(environment: Any, state: LLMState) -> None:
    """Under ``--otel``: the instruments on the meter provider Locust set up (a one-line error, and
    none of ours, when the packages are missing)."""
    try:
        from opentelemetry import metrics
    except ImportError:
        logger.error("--otel: the OpenTelemetry packages are not installed; %s", EXTRA_HINT)
        return
    meter = metrics.get_meter("llm_locust", llm_locust.__version__)
    genai = state.genai = GenAIMetrics(meter, state)
    environment.events.quitting.add_listener(lambda **kw: genai.flush())


def _yield() -> None:
    gevent.sleep(0)  # the greenlets ready to run go first; not idle(), which a busy loop never reaches
