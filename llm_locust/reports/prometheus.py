"""The run's merged client-side metrics as Prometheus metric families, named in vLLM's style.

vLLM's server exports ``vllm:time_to_first_token_seconds`` and friends; we export the same
quantities measured at the client as ``llm_locust:...`` with **vLLM's own bucket bounds**
(``vllm/v1/metrics/loggers.py``), so the two histograms go through the same
``histogram_quantile`` and overlay in one panel:

============================================================  ==========================================
``llm_locust:time_to_first_token_seconds``                    TTFT, per successful streamed request
``llm_locust:inter_token_latency_seconds``                    ITL, one sample per gap between text events
``llm_locust:request_time_per_output_token_seconds``          TPOT, per request with > 1 output token
``llm_locust:e2e_request_latency_seconds``                    E2E latency, per successful request
``llm_locust:prompt_tokens_total``                            input tokens of the successful requests
``llm_locust:generation_tokens_total``                        output tokens of the successful requests
``llm_locust:requests_total{outcome}``                        finished requests: ``ok``, a failure
                                                              category (``http_5xx``, ``timeout``...) or
                                                              ``cancelled`` (cut by a stop)
``llm_locust:num_requests_in_flight``                         requests sent and not finished (gauge)
``llm_locust:users``                                          Locust's running users (gauge)
``llm_locust:target_requests_per_second``                     open loop: the rate the schedule asks now
``llm_locust:test_info{model_name, api}``                     1, for the test's model and API flavor
============================================================  ==========================================

Each histogram's buckets are counted from the HDR histogram at scrape time
(:meth:`Histogram.counts_at_or_below`); ``_count`` is its exact count and ``_sum`` its exact sum
(integer microseconds), so ``_count`` equals the ``+Inf`` bucket and the request counters.

Counters only grow: what a stats reset clears is first added to a :class:`Totals` carried by the
caller (:mod:`llm_locust.locust.exporter`) and added to every later scrape. No label carries a
host, a key or a prompt: the API key cannot appear here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from llm_locust.metrics import catalog
from llm_locust.metrics.aggregate import Aggregate

PREFIX = "llm_locust:"

#: vLLM's bounds (vllm/v1/metrics/loggers.py): vllm:time_to_first_token_seconds
TTFT_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
#: vLLM's bounds of vllm:inter_token_latency_seconds and vllm:request_time_per_output_token_seconds
PER_TOKEN_BUCKETS_S: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
    80.0,
)  # fmt: skip
#: vLLM's request_latency_buckets: vllm:e2e_request_latency_seconds
E2E_BUCKETS_S: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
    960.0, 1920.0, 7680.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Exported:
    """One exported histogram: its name after :data:`PREFIX`, the catalog metric (in ms) it reads."""

    name: str
    metric: catalog.Metric
    help: str
    buckets_s: tuple[float, ...]


HISTOGRAMS: tuple[Exported, ...] = (
    Exported("time_to_first_token_seconds", catalog.TTFT, "Time to first token in seconds, measured by the "
             "client.", TTFT_BUCKETS_S),
    Exported("inter_token_latency_seconds", catalog.ITL, "Gaps between text events in seconds, measured "
             "by the client.", PER_TOKEN_BUCKETS_S),
    Exported("request_time_per_output_token_seconds", catalog.TPOT, "(E2E - TTFT) / (output tokens - 1) "
             "per request in seconds, measured by the client.", PER_TOKEN_BUCKETS_S),
    Exported("e2e_request_latency_seconds", catalog.E2EL, "End-to-end request latency in seconds (send to "
             "the last text event), measured by the client.", E2E_BUCKETS_S),
)  # fmt: skip

_US_PER_S = 1_000_000  # a histogram's exact sum is in thousandths of its unit (ms): microseconds


@dataclass(frozen=True, slots=True)
class HistogramCounts:
    """A histogram as Prometheus sees it: cumulative counts per bound, exact count and sum."""

    buckets: tuple[int, ...]
    count: int
    sum_us: int

    def plus(self, other: HistogramCounts) -> HistogramCounts:
        return HistogramCounts(
            tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
            self.count + other.count,
            self.sum_us + other.sum_us,
        )


@dataclass(frozen=True, slots=True)
class Totals:
    """Everything cumulative that is exported: the histograms (in :data:`HISTOGRAMS`' order), the
    token counters and the finished requests by outcome."""

    histograms: tuple[HistogramCounts, ...]
    prompt_tokens: int
    generation_tokens: int
    requests: Mapping[str, int]

    def plus(self, other: Totals) -> Totals:
        return Totals(
            tuple(a.plus(b) for a, b in zip(self.histograms, other.histograms, strict=True)),
            self.prompt_tokens + other.prompt_tokens,
            self.generation_tokens + other.generation_tokens,
            dict(Counter(self.requests) + Counter(other.requests)),
        )


ZERO = Totals(tuple(HistogramCounts((0,) * len(e.buckets_s), 0, 0) for e in HISTOGRAMS), 0, 0, {"ok": 0})


@dataclass(frozen=True, slots=True)
class Live:
    """The gauges: what holds now, not a total."""

    users: int
    in_flight: int
    target_requests_per_s: float | None = None  # open loop only
    model: str = ""
    api: str = ""


def totals(agg: Aggregate) -> Totals:
    """The aggregate's exported totals now (its HDR counts are read here: a few ms at most)."""
    hists = []
    for e in HISTOGRAMS:
        h = agg.hist[e.metric.name]
        bounds_ms = [b * 1000.0 for b in e.buckets_s]
        hists.append(HistogramCounts(tuple(h.counts_at_or_below(bounds_ms)), h.count, h.total))
    requests = {"ok": agg.counts["completed"], **{k: v for k, v in agg.failures.items() if v}}
    if agg.counts["cancelled"]:
        requests["cancelled"] = agg.counts["cancelled"]
    return Totals(tuple(hists), agg.counts["total_input_tokens"], agg.counts["total_output_tokens"], requests)


HELP: dict[str, str] = {
    "prompt_tokens": "Input tokens of the successful requests (server usage, else the client's tokenizer).",
    "generation_tokens": "Output tokens of the successful requests (server usage, else the client's count).",
    "requests": "Finished requests by outcome: ok, a failure category, or cancelled.",
    "num_requests_in_flight": "Requests sent and not yet finished.",
    "users": "Locust users running.",
    "target_requests_per_second": "Open loop: the request rate the schedule asks for now.",
    "test_info": "The test's model and API flavor.",
}


def le(bound_s: float) -> str:
    """A bucket's ``le`` label as prometheus_client writes vLLM's: ``0.001``, ``1.0``, ``2560.0``."""
    return repr(float(bound_s))


def families(total: Totals, live: Live) -> list[Metric]:
    """The metric families of one scrape."""
    out: list[Metric] = []
    for e, counts in zip(HISTOGRAMS, total.histograms, strict=True):
        fam = HistogramMetricFamily(PREFIX + e.name, e.help)
        buckets = [(le(b), float(n)) for b, n in zip(e.buckets_s, counts.buckets, strict=True)]
        buckets.append(("+Inf", float(counts.count)))
        fam.add_metric([], buckets, sum_value=counts.sum_us / _US_PER_S)
        out.append(fam)
    tokens = (("prompt_tokens", total.prompt_tokens), ("generation_tokens", total.generation_tokens))
    for name, value in tokens:
        out.append(CounterMetricFamily(PREFIX + name, HELP[name], value=value))
    requests = CounterMetricFamily(PREFIX + "requests", HELP["requests"], labels=["outcome"])
    for outcome in sorted(total.requests):
        requests.add_metric([outcome], total.requests[outcome])
    out.append(requests)
    gauges: list[tuple[str, float | None]] = [
        ("num_requests_in_flight", live.in_flight),
        ("users", live.users),
        ("target_requests_per_second", live.target_requests_per_s),
    ]
    for name, gauge in gauges:
        if gauge is not None:
            out.append(GaugeMetricFamily(PREFIX + name, HELP[name], value=gauge))
    info = GaugeMetricFamily(PREFIX + "test_info", HELP["test_info"], labels=["model_name", "api"])
    info.add_metric([live.model, live.api], 1)
    out.append(info)
    return out


class _Families(Collector):
    def __init__(self, fams: list[Metric]) -> None:
        self._fams = fams

    def collect(self) -> Iterable[Metric]:
        return iter(self._fams)


def registry_of(collector: Collector) -> CollectorRegistry:
    """A registry of its own (never the process-global one) that scrapes ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def text(total: Totals, live: Live) -> str:
    """The exposition in Prometheus' text format 0.0.4."""
    from prometheus_client import generate_latest

    return generate_latest(registry_of(_Families(families(total, live)))).decode("utf-8")
