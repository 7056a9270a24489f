"""THE list of metrics: one :class:`Metric` per histogram, and where each one is shown.

Every report is built from this list: the aggregate records each metric's values from a
:class:`~llm_locust.metrics.records.RequestRecord` through its accessor, the results dict gets its
statistics under vLLM's keys (``mean_ttft_ms``, ``p99_ttft_ms``, ``count_ttft``...), and the terminal
summary, the CSV, the HTML report, the web UI's LLM tab, the charts and ``llm-locust compare`` pick
the metrics whose :attr:`Metric.views` name them, in this order. The definitions are those of
``docs/metrics.md``.

A metric marked :attr:`Metric.optional` (the server's own timings) has values only when the server
reports them; the reports show it only when it has samples, so a run against a server that reports
nothing looks as if these metrics did not exist.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from llm_locust.metrics.histogram import Summary
from llm_locust.metrics.records import RequestRecord

Better = Literal["lower", "higher"]
Unit = Literal["ms", "tok/s"]


class View(enum.Enum):
    """A place where a metric can appear."""

    SUMMARY = "summary"  # the summary table (terminal and HTML report) and its JSON statistics
    CSV = "csv"  # a row of --llm-csv
    LEVEL = "level"  # recorded per ladder level: its level_stats in each row of results["levels"]
    WINDOW = "window"  # recorded per time-series bucket: its window percentiles in each point
    OVER_TIME = "over_time"  # drawn over time (the HTML report and the live charts page)
    WEB = "web"  # a row of the web UI's LLM tab (and its CSV)
    COMPARE = "compare"  # rows of llm-locust compare: its compare_stats
    BINS = "bins"  # its distribution in results["histograms"]
    REPORT_DISTRIBUTION = "report_distribution"  # a distribution chart of the HTML report
    COMPARE_DISTRIBUTION = "compare_distribution"  # overlaid distributions of compare --html


#: The statistics in the results dict, in the JSON's order (plus ``count_<stem>``).
STATS: tuple[str, ...] = ("mean", "median", "std", "min", "max", "p90", "p95", "p99")
#: The percentiles computed for them.
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0)
#: How a statistic is named in a table heading or a row label.
STAT_LABELS: dict[str, str] = {
    "mean": "mean",
    "median": "p50",
    "std": "std",
    "min": "min",
    "max": "max",
    "p90": "p90",
    "p95": "p95",
    "p99": "p99",
}
LATENCY_STATS: tuple[str, ...] = ("mean", "median", "p90", "p99")
RATE_STATS: tuple[str, ...] = ("mean", "median")


def stat(summary: Summary, name: str) -> float:
    """Statistic ``name`` of :data:`STATS` (``"p99"`` needs 99.0 among the summary's percentiles)."""
    if name == "median":
        return summary.median
    if name[0] == "p" and name[1:].isdigit():
        return summary.percentiles.get(float(name[1:]), math.nan)
    value: float = getattr(summary, name)
    return value


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: what it is, how a record gives its values, and where it is shown."""

    name: str  # its histogram in an Aggregate (``agg.hist[name]``)
    stem: str  # its key stem in the results: mean_<stem>_ms (vLLM's stems where vLLM has the metric)
    label: str  # as the summary shows it, before the unit: "TTFT"
    unit: Unit
    definition: str  # one line (docs/metrics.md has the full text)
    better: Better
    #: a RequestRecord attribute (a property's name) or a function of the record; None: no value
    accessor: str | Callable[[RequestRecord], Any]
    views: frozenset[View]
    pooled: bool = False  # the accessor gives many values per request (ITL: one per gap)
    optional: bool = False  # only the server's report gives it values; shown only with samples
    title: str = ""  # its long name, for chart titles ("Time to first token"); default label
    short: str = ""  # its name in compare's row labels ("E2E"); default label
    web_label: str = ""  # its label in the web UI's LLM tab; default label
    per: str = "request"  # what one sample is: "request", "gap"
    level_stats: tuple[str, ...] = ()  # View.LEVEL: the statistics each level row holds
    window: tuple[tuple[float, str], ...] = ()  # View.WINDOW: (percentile, field of the Point)
    compare_stats: tuple[str, ...] = ()  # View.COMPARE: a row per statistic
    _read: Callable[[RequestRecord], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.accessor, str):
            if not hasattr(RequestRecord, self.accessor):
                raise ValueError(f"metric {self.name!r}: RequestRecord has no attribute {self.accessor!r}")
            read: Callable[[RequestRecord], Any] = attrgetter(self.accessor)
        else:
            read = self.accessor
        object.__setattr__(self, "_read", read)
        for view, detail in (
            (View.LEVEL, self.level_stats),
            (View.WINDOW, self.window),
            (View.COMPARE, self.compare_stats),
        ):
            if (view in self.views) != bool(detail):
                raise ValueError(f"metric {self.name!r}: {view} in views exactly when its details are given")
        if View.OVER_TIME in self.views and View.WINDOW not in self.views:
            raise ValueError(f"metric {self.name!r}: drawn over time, so it needs View.WINDOW")
        unknown = {s for s in (*self.level_stats, *self.compare_stats) if s not in STAT_LABELS}
        if unknown:
            raise ValueError(f"metric {self.name!r}: unknown statistics {sorted(unknown)}")

    # -- reading a record --------------------------------------------------------------------
    @property
    def read(self) -> Callable[[RequestRecord], Any]:
        """The accessor as a function: a value or None, or (pooled) a sequence of values."""
        return self._read

    def values(self, rec: RequestRecord) -> Sequence[float]:
        """The values one record gives (none, one, or many for a pooled metric)."""
        got = self._read(rec)
        if self.pooled:
            return got  # type: ignore[no-any-return]
        return () if got is None else (got,)

    # -- names in the results and the reports ------------------------------------------------
    def shown_in(self, view: View) -> bool:
        return view in self.views

    @property
    def suffix(self) -> str:
        """What follows the stem in its statistics' keys: ``_ms`` for latencies."""
        return "_ms" if self.unit == "ms" else ""

    def key(self, stat_name: str) -> str:
        """Its key in the results: ``key("p99")`` is ``p99_ttft_ms``; ``key("count")`` is ``count_ttft``."""
        if stat_name == "count":
            return f"count_{self.stem}"
        return f"{stat_name}_{self.stem}{self.suffix}"

    @property
    def bins_key(self) -> str:
        """Its key in ``results["histograms"]``: ``ttft_ms``, ``tokens_per_s``."""
        return f"{self.stem}{self.suffix}"

    @property
    def display(self) -> str:
        """Label and unit, as the summary shows it: ``TTFT (ms)``."""
        return f"{self.label} ({self.unit})"

    @property
    def web_name(self) -> str:
        return self.web_label or self.label

    @property
    def long_name(self) -> str:
        return self.title or self.label

    def stat_label(self, stat_name: str) -> str:
        """One statistic as a row label or heading: ``TTFT p99 (ms)``, ``Per-stream tok/s p50``."""
        short = self.short or self.label
        unit = "" if self.unit in short else f" ({self.unit})"
        return f"{short} {STAT_LABELS[stat_name]}{unit}"


_TABLES = (View.SUMMARY, View.CSV, View.WEB, View.COMPARE)

TTFT = Metric(
    name="ttft",
    stem="ttft",
    label="TTFT",
    unit="ms",
    definition="first text event − send",
    better="lower",
    accessor="ttft_ms",
    views=frozenset(
        {
            *_TABLES,
            View.LEVEL,
            View.WINDOW,
            View.OVER_TIME,
            View.BINS,
            View.REPORT_DISTRIBUTION,
            View.COMPARE_DISTRIBUTION,
        }
    ),
    title="Time to first token",
    level_stats=("median", "p99"),
    window=((50.0, "ttft_p50_ms"), (95.0, "ttft_p95_ms")),
    compare_stats=LATENCY_STATS,
)
TPOT = Metric(
    name="tpot",
    stem="tpot",
    label="TPOT",
    unit="ms",
    definition="(e2e − TTFT) / (output tokens − 1)",
    better="lower",
    accessor="tpot_ms",
    views=frozenset({*_TABLES, View.LEVEL, View.WINDOW, View.OVER_TIME, View.BINS, View.REPORT_DISTRIBUTION}),
    title="Time per output token",
    level_stats=("median", "p99"),
    window=((50.0, "tpot_p50_ms"), (95.0, "tpot_p95_ms")),
    compare_stats=LATENCY_STATS,
)
ITL = Metric(
    name="itl",
    stem="itl",
    label="ITL",
    unit="ms",
    definition="gap between text events, pooled",
    better="lower",
    accessor="itl_ms",
    pooled=True,
    per="gap",
    views=frozenset({*_TABLES, View.LEVEL, View.BINS, View.COMPARE_DISTRIBUTION}),
    title="Inter-token latency",
    level_stats=("mean", "median", "p99"),
    compare_stats=LATENCY_STATS,
)
E2EL = Metric(
    name="e2el",
    stem="e2el",
    label="E2E latency",
    unit="ms",
    definition="last text event − send",
    better="lower",
    accessor="e2e_ms",
    views=frozenset({*_TABLES, View.LEVEL, View.WINDOW, View.BINS, View.REPORT_DISTRIBUTION}),
    title="End-to-end latency",
    short="E2E",
    level_stats=("median", "p99"),
    window=((50.0, "e2el_p50_ms"), (95.0, "e2el_p95_ms")),
    compare_stats=LATENCY_STATS,
)
TTFB = Metric(
    name="ttfb",
    stem="ttfb",
    label="TTFB (headers)",
    unit="ms",
    definition="response headers − send",
    better="lower",
    accessor="ttfb_ms",
    views=frozenset({View.SUMMARY, View.CSV}),
    title="Time to first byte (headers)",
)
TTFVT = Metric(
    name="ttfvt",
    stem="ttfvt",
    label="TTFVT (visible)",
    unit="ms",
    definition="first visible (non-reasoning) text − send",
    better="lower",
    accessor="ttfvt_ms",
    views=frozenset({View.SUMMARY, View.CSV}),
    title="Time to first visible token",
)
TOKENS_PER_S = Metric(
    name="tokens_per_s",
    stem="tokens_per_s",
    label="Per-stream tok/s",
    unit="tok/s",
    definition="output tokens / e2e, per request",
    better="higher",
    accessor="tokens_per_s",
    views=frozenset({*_TABLES, View.LEVEL, View.WINDOW, View.BINS}),
    title="Per-stream output tokens/s",
    web_label="Per-stream output",
    level_stats=("min", "median", "max"),
    window=((50.0, "stream_tokens_per_s_p50"),),
    compare_stats=RATE_STATS,
)
DECODE_TOKENS_PER_S = Metric(
    name="decode_tokens_per_s",
    stem="decode_tokens_per_s",
    label="Decode tok/s",
    unit="tok/s",
    definition="1000 / TPOT, per request",
    better="higher",
    accessor="decode_tokens_per_s",
    views=frozenset({View.SUMMARY, View.CSV}),
    title="Decode tokens/s",
)
# -- the server's own timing, beside ours: values only where the server reports it ---------------
SERVER_PREFILL = Metric(
    name="server_prefill",
    stem="server_prefill",
    label="Server prefill",
    unit="ms",
    definition="the server's own prompt processing time, per request",
    better="lower",
    accessor="server_prefill_ms",
    optional=True,
    views=frozenset(_TABLES),
    compare_stats=LATENCY_STATS,
)
SERVER_DECODE_TOKENS_PER_S = Metric(
    name="server_decode_tokens_per_s",
    stem="server_decode_tokens_per_s",
    label="Server decode tok/s",
    unit="tok/s",
    definition="the server's decode tokens / its decode time, per request",
    better="higher",
    accessor="server_decode_tokens_per_s",
    optional=True,
    views=frozenset(_TABLES),
    compare_stats=RATE_STATS,
)
CLIENT_TTFT_SHARE = Metric(
    name="client_ttft_share",
    stem="client_ttft_share",
    label="TTFT − server prefill",
    unit="ms",
    definition="TTFT − the server's prefill: the client's and the network's share",
    better="lower",
    accessor="client_ttft_share_ms",
    optional=True,
    views=frozenset(_TABLES),
    compare_stats=LATENCY_STATS,
)
SERVER_TPOT = Metric(
    name="server_tpot",
    stem="server_tpot",
    label="Server time per token",
    unit="ms",
    definition="the server's decode time / its decode tokens: its own TPOT, beside ours (a difference "
    "per request can be negative, which a histogram cannot hold: compare the two)",
    better="lower",
    accessor="server_tpot_ms",
    optional=True,
    views=frozenset(_TABLES),
    compare_stats=LATENCY_STATS,
)

# -- open loop: the schedule, and latencies from it (coordinated omission shown, not hidden) -------
SCHEDULE_LAG = Metric(
    name="schedule_lag",
    stem="schedule_lag",
    label="Schedule lag",
    unit="ms",
    definition="open loop: send − scheduled arrival (the client held a due request)",
    better="lower",
    accessor="schedule_lag_ms",
    optional=True,
    views=frozenset({*_TABLES, View.LEVEL, View.WINDOW, View.BINS}),
    title="Schedule lag (send − scheduled)",
    level_stats=("median", "p99"),
    window=((99.0, "schedule_lag_p99_ms"),),
    compare_stats=LATENCY_STATS,
)
TTFT_FROM_SCHEDULE = Metric(
    name="ttft_from_schedule",
    stem="ttft_from_schedule",
    label="TTFT from schedule",
    unit="ms",
    definition="open loop: first text event − scheduled arrival (TTFT + schedule lag)",
    better="lower",
    accessor="ttft_from_schedule_ms",
    optional=True,
    views=frozenset(_TABLES),
    compare_stats=LATENCY_STATS,
)
E2EL_FROM_SCHEDULE = Metric(
    name="e2el_from_schedule",
    stem="e2el_from_schedule",
    label="E2E from schedule",
    unit="ms",
    definition="open loop: last text event − scheduled arrival (E2E + schedule lag)",
    better="lower",
    accessor="e2e_from_schedule_ms",
    optional=True,
    views=frozenset(_TABLES),
    compare_stats=LATENCY_STATS,
)

#: Every metric, in the summary's order: what a run's aggregate records.
CATALOG: tuple[Metric, ...] = (
    TTFT,
    TPOT,
    ITL,
    E2EL,
    TTFB,
    TTFVT,
    TOKENS_PER_S,
    DECODE_TOKENS_PER_S,
    SERVER_PREFILL,
    SERVER_DECODE_TOKENS_PER_S,
    CLIENT_TTFT_SHARE,
    SERVER_TPOT,
    SCHEDULE_LAG,
    TTFT_FROM_SCHEDULE,
    E2EL_FROM_SCHEDULE,
)
BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOG}


def shown_in(view: View) -> tuple[Metric, ...]:
    """The metrics a view shows, in catalog order."""
    return tuple(m for m in CATALOG if view in m.views)


#: What a ladder level's aggregate records, and a time-series bucket's.
LEVEL: tuple[Metric, ...] = shown_in(View.LEVEL)
WINDOW: tuple[Metric, ...] = shown_in(View.WINDOW)
#: What a conversation turn's aggregate records (TTFT and TPOT by turn are where a prefix cache
#: shows), and the statistics each row of ``results["turns"]`` holds for each of them.
TURN: tuple[Metric, ...] = (TTFT, TPOT, ITL, E2EL)
TURN_STATS: tuple[str, ...] = ("mean", "median", "p95", "p99")

#: A percentile from fewer samples than this is flagged: it is close to the largest sample, not
#: the tail it names (p99 of 30 requests is their maximum).
FEW_SAMPLES: dict[str, int] = {"p95": 20, "p99": 100}
FEW_SAMPLES_LEGEND = "* fewer than 100 samples (p99) / 20 (p95): the value is near the maximum"


def few_samples(stat_name: str, count: int) -> bool:
    """Whether statistic ``stat_name`` of ``count`` (> 0) samples is to be flagged."""
    return 0 < count < FEW_SAMPLES.get(stat_name, 0)
