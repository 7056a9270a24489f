"""``llm-locust mock --metrics vllm|llamacpp``: a Prometheus ``/metrics`` in vLLM's or llama.cpp's names
whose values are what the mock really served, so a test can compare them with its client exactly.

vLLM's names: requests running and waiting (the engine's), KV-cache use (running sequences over the
engine's capacity: ``--max-seqs`` or ``--slots``; 0 for the fixed engine), prompt tokens and prefix-cache
queries/hits (of ok answers, counted as each ends), generation tokens (counted as each token is sent,
as vLLM counts them per step: a stream cut off counts what was sent), preemptions (always 0), and the
queue / prefill / decode time histograms of ok answers. llama.cpp's names: requests processing and
deferred, prompt tokens (without the cached ones, as llama.cpp counts them) and cached prompt tokens,
tokens predicted (of ok answers, counted as each ends, as llama.cpp counts them when a slot is
released). Rendered by prometheus_client's exposition writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from llm_locust.mock.flavors.base import Reply
    from llm_locust.mock.server import MockServer

NAME_SETS = ("vllm", "llamacpp", "off")
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: vLLM's request_queue/prefill/decode_time_seconds buckets
BUCKETS_S = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.sum_s = 0.0

    def observe(self, value_s: float) -> None:
        value_s = max(value_s, 0.0)
        i = next((i for i, le in enumerate(BUCKETS_S) if value_s <= le), len(BUCKETS_S))
        self.counts[i] += 1
        self.sum_s += value_s

    def family(self, name: str, doc: str, labels: dict[str, str]) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=list(labels))
        cum, buckets = 0, []
        for le, n in zip((*(f"{b}" for b in BUCKETS_S), "+Inf"), self.counts, strict=True):
            cum += n
            buckets.append((le, float(cum)))
        fam.add_metric(list(labels.values()), buckets, self.sum_s)
        return fam


class MockMetrics:
    """The mock's ``/metrics`` in one engine's names (``vllm`` or ``llamacpp``)."""

    def __init__(self, names: str) -> None:
        if names not in NAME_SETS or names == "off":
            raise ValueError(f"--metrics {names!r} is unknown; choose one of {', '.join(NAME_SETS)}")
        self.names = names
        self.queue = _Histogram()
        self.prefill = _Histogram()
        self.decode = _Histogram()

    def reset(self) -> None:
        self.queue, self.prefill, self.decode = _Histogram(), _Histogram(), _Histogram()

    def answered(self, reply: Reply) -> None:
        """An ok answer: its queue, prefill and decode times."""
        self.queue.observe(reply.start_s - reply.arrived_s)
        first = reply.first_s if reply.first_s is not None else reply.start_s
        self.prefill.observe(first - reply.start_s)
        self.decode.observe((reply.last_s if reply.last_s is not None else first) - first)

    def render(self, srv: MockServer) -> bytes:
        collector = _Collector(self, srv)
        return bytes(generate_latest(collector))


class _Collector:
    def __init__(self, metrics: MockMetrics, srv: MockServer) -> None:
        self.metrics = metrics
        self.srv = srv

    def collect(self) -> Iterator[Any]:
        if self.metrics.names == "vllm":
            yield from self._vllm()
        else:
            yield from self._llamacpp()

    def _vllm(self) -> Iterator[Any]:
        srv, m = self.srv, self.metrics
        stats, engine = srv.stats, srv.engine
        labels = {"engine": "0", "model_name": srv.model}
        keys, values = list(labels), list(labels.values())

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            fam = GaugeMetricFamily(name, doc, labels=keys)
            fam.add_metric(values, value)
            return fam

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            fam = CounterMetricFamily(name, doc, labels=keys)
            fam.add_metric(values, value)
            return fam

        capacity = engine.capacity
        yield gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", engine.running
        )
        yield gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", engine.waiting
        )
        usage = engine.running / capacity if capacity else 0.0
        yield gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage)
        yield counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", 0)
        yield counter("vllm:prompt_tokens", "Number of prefill tokens processed.", stats["prompt_tokens"])
        generated = stats["tokens_sent"] + stats["whole_tokens"]
        yield counter("vllm:generation_tokens", "Number of generation tokens processed.", generated)
        yield counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of tokens.", stats["prompt_tokens"]
        )
        yield counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of tokens.", stats["cached_prompt_tokens"]
        )
        yield counter("vllm:request_success", "Count of successfully processed requests.", stats["ok"])
        yield m.queue.family("vllm:request_queue_time_seconds", "Time spent in WAITING phase.", labels)
        yield m.prefill.family("vllm:request_prefill_time_seconds", "Time spent in PREFILL phase.", labels)
        yield m.decode.family("vllm:request_decode_time_seconds", "Time spent in DECODE phase.", labels)

    def _llamacpp(self) -> Iterator[Any]:
        stats, engine = self.srv.stats, self.srv.engine
        cached = stats["cached_prompt_tokens"]
        yield CounterMetricFamily(
            "llamacpp:prompt_tokens", "Number of prompt tokens processed, excluding cached tokens",
            value=stats["prompt_tokens"] - cached,
        )  # fmt: skip
        yield CounterMetricFamily(
            "llamacpp:prompt_tokens_cached", "Number of prompt tokens reused from the cache", value=cached
        )
        yield CounterMetricFamily(
            "llamacpp:tokens_predicted", "Number of generation tokens processed", value=stats["output_tokens"]
        )
        yield GaugeMetricFamily(
            "llamacpp:requests_processing", "Number of requests processing", value=engine.running
        )
        yield GaugeMetricFamily(
            "llamacpp:requests_deferred", "Number of requests deferred", value=engine.waiting
        )
