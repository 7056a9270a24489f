"""The server's own metrics (its Prometheus ``/metrics``), pure: text -> a scrape, scrapes -> the
measured window's increases, and the engine's names -> our canonical view.

A :class:`Scrape` is one poll: every counter series (a histogram's ``_bucket``, ``_sum`` and ``_count``
series are counters too) and every gauge series, keyed by the series' name and labels as Prometheus
writes them (``name{a="1",b="2"}``, labels sorted). A :class:`Window` takes the scrapes of the measured
window one by one and keeps, per counter series, its increase the way Prometheus' ``increase()`` takes
it over samples (without ``increase()``'s extrapolation to the range's edges, since the first and last
polls *are* the window's edges): the sum of the rises between consecutive polls, where a fall is a
reset and the value after it is all rise since the reset. A series that first appears within the
window counts from its first poll on, as in Prometheus. Gauges keep last, min and max.

Canonical values sum a name's series over their labels (several engines of one server, data-parallel
ranks); KV-cache use takes the fullest one (the one that limits admission).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from llm_locust.errors import ConfigError

#: the quantiles of a server histogram that the results carry
QUANTILES = (0.5, 0.9, 0.99)


class ServerMetricsError(ConfigError):
    """A /metrics answer that is not Prometheus text (one line, naming the cause)."""


@dataclass(frozen=True, slots=True)
class Scrape:
    """One poll of the server's metrics: series key -> value."""

    time_s: float  # Unix time of the poll
    counters: Mapping[str, float]
    gauges: Mapping[str, float]
    #: histogram name -> the keys of its ``_bucket`` series (in :attr:`counters`)
    histograms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def series_key(name: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{labels[k]}"' for k in sorted(labels))
    return f"{name}{{{inner}}}"


def name_of(key: str) -> str:
    return key.split("{", 1)[0]


#: sample lines per piece of :func:`pieces`: a few milliseconds of prometheus_client's parser each
PIECE_LINES = 64


def pieces(text: str, lines: int = PIECE_LINES) -> list[str]:
    """``text`` in pieces of at most ``lines`` sample lines, each led by its family's ``# TYPE`` line,
    without the other comments and the ``_created`` series (prometheus_client's creation timestamps):
    a :class:`Parser` takes them one at a time, so that a caller can let other work run between them."""
    out: list[str] = []
    kind = ""
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.append("\n".join((kind, *buf) if kind else buf) + "\n")
            buf.clear()

    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            if line.startswith("# TYPE "):
                flush()
                kind = line
            continue
        if line.split("{", 1)[0].split(" ", 1)[0].endswith("_created"):
            continue
        buf.append(line)
        if len(buf) >= lines:
            flush()
    flush()
    return out


class Parser:
    """Prometheus text format, a piece at a time (prometheus_client's parser), into one
    :class:`Scrape`. An untyped series is a counter when its name ends in ``_total`` (Prometheus'
    naming convention), else a gauge; a summary's quantiles are left out (they cover the server's
    lifetime, not the window)."""

    def __init__(self) -> None:
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.histograms: dict[str, set[str]] = {}

    def feed(self, piece: str) -> None:
        """Parse one piece of :func:`pieces`; :class:`ServerMetricsError` when it is not Prometheus text."""
        counters, gauges, histograms = self.counters, self.gauges, self.histograms
        try:
            for family in text_string_to_metric_families(piece):
                kind = family.type
                # the parser names a counter's samples NAME_total even where the server wrote NAME
                # (llama.cpp's llamacpp:n_tokens_max): keep the server's own name
                total = f"{family.name}_total"
                renamed = kind == "counter" and total not in piece
                for s in family.samples:
                    if s.name.endswith("_created") or isinstance(s.value, bool):
                        continue
                    value = float(s.value)
                    if math.isnan(value):
                        continue
                    key = series_key(family.name if renamed and s.name == total else s.name, s.labels)
                    if kind in ("histogram", "summary"):
                        if "quantile" in s.labels:
                            continue
                        counters[key] = value
                        if kind == "histogram" and s.name.endswith("_bucket"):
                            histograms.setdefault(s.name[: -len("_bucket")], set()).add(key)
                    elif kind == "counter" or (kind == "unknown" and s.name.endswith("_total")):
                        counters[key] = value
                    else:
                        gauges[key] = value
        except (ValueError, TypeError, IndexError) as exc:
            first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise ServerMetricsError(f"not Prometheus text format ({first})") from None

    def finish(self, time_s: float) -> Scrape:
        """The scrape (polled at ``time_s``, Unix time); :class:`ServerMetricsError` without a sample."""
        if not self.counters and not self.gauges:
            raise ServerMetricsError("not Prometheus text format (no samples)")
        histograms = {k: tuple(sorted(v)) for k, v in self.histograms.items()}
        return Scrape(time_s, self.counters, self.gauges, histograms)


def parse(text: str, time_s: float) -> Scrape:
    """Parse a whole page at once (see :class:`Parser`); :class:`ServerMetricsError` when it is not
    Prometheus text format or holds no sample."""
    parser = Parser()
    for piece in pieces(text):
        parser.feed(piece)
    return parser.finish(time_s)


@dataclass(frozen=True, slots=True)
class Engine:
    """An engine's metric names for our canonical view; each field lists alternatives, the first
    present wins (an engine's names changed across versions)."""

    name: str
    prefix: str
    running: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    kv_cache_usage: tuple[str, ...] = ()  # a fraction 0-1
    prompt_tokens: tuple[str, ...] = ()
    generation_tokens: tuple[str, ...] = ()
    preemptions: tuple[str, ...] = ()
    prefix_queries: tuple[str, ...] = ()  # prompt tokens looked up in the prefix cache
    prefix_hits: tuple[str, ...] = ()  # of them, found there
    #: llama.cpp counts cached prompt tokens apart from the others: queries = its prompt + cached
    queries_add_hits: bool = False
    #: canonical latency -> histogram family names (seconds)
    histograms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


ENGINES: tuple[Engine, ...] = (
    Engine(
        "vllm",
        "vllm:",
        running=("vllm:num_requests_running",),
        waiting=("vllm:num_requests_waiting",),
        kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),  # "perc" is 0-1
        prompt_tokens=("vllm:prompt_tokens_total",),
        generation_tokens=("vllm:generation_tokens_total",),
        preemptions=("vllm:num_preemptions_total",),
        prefix_queries=("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
        prefix_hits=("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
        histograms={
            "queue": ("vllm:request_queue_time_seconds",),
            "prefill": ("vllm:request_prefill_time_seconds",),
            "decode": ("vllm:request_decode_time_seconds",),
            "ttft": ("vllm:time_to_first_token_seconds",),
            "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
            "e2e": ("vllm:e2e_request_latency_seconds",),
        },
    ),
    Engine(
        "sglang",
        "sglang:",
        running=("sglang:num_running_reqs",),
        waiting=("sglang:num_queue_reqs",),
        kv_cache_usage=("sglang:token_usage",),
        prompt_tokens=("sglang:prompt_tokens_total",),
        generation_tokens=("sglang:generation_tokens_total",),
        prefix_queries=("sglang:prompt_tokens_total",),
        prefix_hits=("sglang:cached_tokens_total",),
        histograms={
            "queue": ("sglang:queue_time_seconds",),
            "ttft": ("sglang:time_to_first_token_seconds",),
            "itl": ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
            "e2e": ("sglang:e2e_request_latency_seconds",),
        },
    ),
    Engine(
        "llama.cpp",
        "llamacpp:",
        running=("llamacpp:requests_processing",),
        waiting=("llamacpp:requests_deferred",),
        kv_cache_usage=("llamacpp:kv_cache_usage_ratio",),
        prompt_tokens=("llamacpp:prompt_tokens_total",),
        generation_tokens=("llamacpp:tokens_predicted_total",),
        prefix_queries=("llamacpp:prompt_tokens_total",),
        prefix_hits=("llamacpp:prompt_tokens_cached_total",),
        queries_add_hits=True,
    ),
)
#: the canonical latencies, in the order reports show them
LATENCIES = ("queue", "prefill", "decode", "ttft", "itl", "e2e")


def recognise(scrape: Scrape) -> Engine | None:
    """The engine whose prefix most series carry; None when none does."""
    names = [name_of(k) for k in (*scrape.counters, *scrape.gauges)]
    best = max(ENGINES, key=lambda e: sum(n.startswith(e.prefix) for n in names))
    return best if any(n.startswith(best.prefix) for n in names) else None


@dataclass(slots=True)
class _Gauge:
    last: float
    low: float
    high: float

    def add(self, value: float) -> None:
        self.last = value
        self.low = min(self.low, value)
        self.high = max(self.high, value)


class Window:
    """The measured window's scrapes, folded as they come: counter increases, gauge last/min/max."""

    def __init__(self) -> None:
        self.first: Scrape | None = None
        self.last: Scrape | None = None
        self.polls = 0
        self.increases: dict[str, float] = {}
        self.gauges: dict[str, _Gauge] = {}
        #: per name, over its label sets at each poll: (their sum, their max)
        self.by_name: dict[str, tuple[_Gauge, _Gauge]] = {}
        self.histograms: dict[str, tuple[str, ...]] = {}

    def add(self, scrape: Scrape) -> None:
        prev = self.last.counters if self.last is not None else None
        inc = self.increases
        for key, value in scrape.counters.items():
            before = prev.get(key) if prev is not None else None
            if before is None:  # the window's first poll, or a series new in it: counts from here
                inc.setdefault(key, 0.0)
            else:
                inc[key] = inc.get(key, 0.0) + (value - before if value >= before else value)
        per_name: dict[str, tuple[float, float]] = {}
        for key, value in scrape.gauges.items():
            g = self.gauges.get(key)
            if g is None:
                self.gauges[key] = _Gauge(value, value, value)
            else:
                g.add(value)
            name = name_of(key)
            total, high = per_name.get(name, (0.0, -math.inf))
            per_name[name] = (total + value, max(high, value))
        for name, (total, high) in per_name.items():
            both = self.by_name.get(name)
            if both is None:
                self.by_name[name] = (_Gauge(total, total, total), _Gauge(high, high, high))
            else:
                both[0].add(total)
                both[1].add(high)
        for name, buckets in scrape.histograms.items():
            self.histograms[name] = buckets
        if self.first is None:
            self.first = scrape
        self.last = scrape
        self.polls += 1

    @property
    def duration_s(self) -> float:
        if self.first is None or self.last is None:
            return 0.0
        return self.last.time_s - self.first.time_s

    # -- canonical values ----------------------------------------------------------------------
    def increase(self, names: Iterable[str]) -> float | None:
        """The window's increase of the first of ``names`` present, summed over its label sets."""
        for name in names:
            got = [v for k, v in self.increases.items() if name_of(k) == name]
            if got:
                return sum(got)
        return None

    def gauge(self, names: Iterable[str], combine: str = "sum") -> dict[str, float] | None:
        """last/min/max over the polls of the first of ``names`` present, its label sets at each poll
        summed (``combine="sum"``) or their max."""
        for name in names:
            both = self.by_name.get(name)
            if both is not None:
                g = both[0] if combine == "sum" else both[1]
                return {"last": g.last, "min": g.low, "max": g.high}
        return None

    def now(self, names: Iterable[str], combine: str = "sum") -> float | None:
        """The latest poll's value of the first of ``names`` present (see :func:`gauge_now`)."""
        return None if self.last is None else gauge_now(self.last, names, combine)

    def histogram(self, names: Iterable[str]) -> dict[str, Any] | None:
        """count, mean and quantiles (ms) of the first of ``names`` present, from the window's
        bucket increases (summed over label sets); None where it is absent or saw nothing."""
        for name in names:
            keys = self.histograms.get(name)
            if not keys:
                continue
            by_le: dict[float, float] = {}
            for key in keys:
                le = _le_of(key)
                if le is not None:
                    by_le[le] = by_le.get(le, 0.0) + self.increases.get(key, 0.0)
            count = self.increase((f"{name}_count",)) or 0.0
            total_s = self.increase((f"{name}_sum",)) or 0.0
            if count <= 0:
                return {"count": 0, "mean_ms": None, **{_q_field(q): None for q in QUANTILES}}
            buckets = sorted(by_le.items())
            return {
                "count": round(count),
                "mean_ms": total_s / count * 1000.0,
                **{_q_field(q): _ms(quantile(q, buckets)) for q in QUANTILES},
            }
        return None

    def canonical(self, engine: Engine | None) -> dict[str, Any]:
        """Our canonical view of ``engine``'s names (absent values are None)."""
        if engine is None:
            return {}
        hits = self.increase(engine.prefix_hits)
        queries = self.increase(engine.prefix_queries)
        if engine.queries_add_hits and queries is not None and hits is not None:
            queries += hits
        return {
            "running": self.gauge(engine.running),
            "waiting": self.gauge(engine.waiting),
            "kv_cache_usage": self.gauge(engine.kv_cache_usage, combine="max"),
            "prompt_tokens": _int(self.increase(engine.prompt_tokens)),
            "generation_tokens": _int(self.increase(engine.generation_tokens)),
            "preemptions": _int(self.increase(engine.preemptions)),
            "prefix_cache_queries": _int(queries),
            "prefix_cache_hits": _int(hits),
            "prefix_cache_hit_rate": hits / queries if hits is not None and queries else None,
            "latency": {
                lat: got
                for lat in LATENCIES
                if (got := self.histogram(engine.histograms.get(lat, ()))) is not None
            },
        }

    def series(self) -> dict[str, Any]:
        """Every series but histogram buckets: counters' increases, gauges' last/min/max."""
        buckets = {k for keys in self.histograms.values() for k in keys}
        return {
            "counters": {k: _num(v) for k, v in sorted(self.increases.items()) if k not in buckets},
            "gauges": {
                k: {"last": g.last, "min": g.low, "max": g.high} for k, g in sorted(self.gauges.items())
            },
        }


def gauge_now(scrape: Scrape, names: Iterable[str], combine: str = "sum") -> float | None:
    """``scrape``'s value of the first of ``names`` present, its label sets summed or their max."""
    for name in names:
        got = [v for k, v in scrape.gauges.items() if name_of(k) == name]
        if got:
            return sum(got) if combine == "sum" else max(got)
    return None


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: ``buckets`` are (upper bound, cumulative count), sorted,
    the last +Inf; linear interpolation within the bucket the rank falls in (from 0 for the first
    one); a rank in the +Inf bucket gives the highest finite bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if math.isinf(le):
                return lower
            if cum == below:
                return le
            return lower + (le - lower) * (rank - below) / (cum - below)
        lower, below = le, cum
    return lower


def _le_of(key: str) -> float | None:
    start = key.find('le="')
    if start < 0:
        return None
    end = key.find('"', start + 4)
    try:
        return float(key[start + 4 : end])
    except ValueError:
        return None


def _q_field(q: float) -> str:
    return f"p{q * 100:g}_ms"


def _ms(value_s: float | None) -> float | None:
    return None if value_s is None else value_s * 1000.0


def _int(value: float | None) -> int | float | None:
    return None if value is None else _num(value)


def _num(value: float) -> int | float:
    """Token and request counts are whole numbers; keep them so in the JSON."""
    return int(value) if value == int(value) else value
