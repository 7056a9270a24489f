"""Open-loop arrivals, as pure schedules: when each request of a run is due, over all its processes.

The run's arrivals are one global sequence, the same in every process. Arrival ``k`` is due at the
run time where the plan's expected arrivals reach ``s_k`` (time rescaling: a rate that changes over
time, a ladder of rates or a ramp, stretches one unit-rate process). ``s_0 = 0`` (the first request
is sent at the start, as ``vllm bench serve`` does) and each further gap of ``s`` is drawn from
Gamma(shape=B, scale=1/B), mean 1: at a constant rate R the gaps in seconds are Gamma(B, 1/(R·B)),
vLLM's definition (B = 1: Poisson; large B: nearly constant).

Gaps come from a random stream per block of :data:`BLOCK` arrivals (seeded by the run's seed and the
block's number), so a process can start anywhere in the sequence from a checkpoint ``(k, s_k)``:
every process adds the same floats in the same order and agrees on every instant. A process takes
its share of the sequence, ``k % count == index`` from a given ``k`` on (:class:`Share`), so the
arrivals of all processes together are exactly the requested process, however many there are.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from llm_locust.errors import ConfigError

BLOCK = 64
Curve = Literal["constant", "linear", "exponential"]


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the plan: from ``start_s`` to ``end_s`` (run time; ``math.inf``: open-ended) the
    rate goes from ``start_per_s`` to ``end_per_s`` along ``curve``. ``label`` names its level in the
    per-level table."""

    start_s: float
    end_s: float
    start_per_s: float
    end_per_s: float
    curve: Curve
    label: str

    def rate_at(self, t_s: float) -> float:
        if self.curve == "constant" or not math.isfinite(self.end_s):
            return self.start_per_s
        f = (t_s - self.start_s) / (self.end_s - self.start_s)
        if self.curve == "linear":
            return self.start_per_s + (self.end_per_s - self.start_per_s) * f
        return float(self.start_per_s * (self.end_per_s / self.start_per_s) ** f)

    def expected(self, t_s: float) -> float:
        """Expected arrivals from the segment's start to ``t_s`` (inside it)."""
        d = t_s - self.start_s
        r0 = self.start_per_s
        if self.curve == "constant" or d <= 0:
            return r0 * max(d, 0.0)
        span = self.end_s - self.start_s
        if self.curve == "linear":
            return r0 * d + (self.end_per_s - r0) * d * d / (2 * span)
        k = math.log(self.end_per_s / r0) / span
        return r0 * d if k == 0 else r0 * math.expm1(k * d) / k

    def time_of(self, n: float) -> float:
        """The run time at which ``n`` (>= 0) expected arrivals have come since the segment's start."""
        r0 = self.start_per_s
        if self.curve == "constant" or not math.isfinite(self.end_s):
            return self.start_s + n / r0
        span = self.end_s - self.start_s
        if self.curve == "linear":
            a = (self.end_per_s - r0) / span
            if n <= 0:
                return self.start_s
            if abs(a) < 1e-12:
                return self.start_s + n / r0
            # r0 d + a d^2 / 2 = n, the root that grows with n
            return self.start_s + 2 * n / (r0 + math.sqrt(r0 * r0 + 2 * a * n))
        k = math.log(self.end_per_s / r0) / span
        if k == 0:
            return self.start_s + n / r0
        inner = 1 + k * n / r0
        return self.start_s + (math.log(inner) / k if inner > 0 else math.inf)


@dataclass(frozen=True, slots=True)
class RatePlan:
    """The run's rate over time: consecutive segments from run time 0; the run ends with the last
    one's ``end_s`` (``math.inf``: when it is stopped). ``burst`` (``--request-rate inf``): every
    arrival is due at the start."""

    segments: tuple[Segment, ...]
    burstiness: float = 1.0
    burst: bool = False

    @property
    def end_s(self) -> float:
        return 0.0 if self.burst else self.segments[-1].end_s

    def segment_at(self, t_s: float) -> Segment:
        for seg in self.segments:
            if t_s < seg.end_s:
                return seg
        return self.segments[-1]

    def rate_at(self, t_s: float) -> float:
        return math.inf if self.burst else self.segment_at(t_s).rate_at(t_s)

    def label_at(self, t_s: float) -> str:
        return self.segment_at(t_s).label

    def time_of(self, s: float) -> float | None:
        """The run time of operational time ``s`` (expected arrivals since the start); None past the
        plan's end."""
        if self.burst:
            return 0.0
        for seg in self.segments:
            span = seg.expected(seg.end_s) if math.isfinite(seg.end_s) else math.inf
            if s < span:
                t = seg.time_of(s)
                return t if t < seg.end_s else None if seg is self.segments[-1] else seg.end_s
            s -= span
        return None

    def changed_at(self, at_s: float, rate_per_s: float) -> RatePlan:
        """The plan with its rate set to ``rate_per_s`` from ``at_s`` on, open-ended (a change
        mid-run, from the web UI)."""
        check_rate(rate_per_s, "the new rate")
        if self.burst:
            raise ConfigError("--request-rate inf sends everything at the start: its rate cannot change")
        kept = []
        for seg in self.segments:
            if seg.start_s >= at_s:
                break
            if seg.end_s > at_s:
                seg = Segment(seg.start_s, at_s, seg.start_per_s, seg.rate_at(at_s), seg.curve, seg.label)
            kept.append(seg)
        kept.append(Segment(at_s, math.inf, rate_per_s, rate_per_s, "constant", rate_label(rate_per_s)))
        return RatePlan(tuple(kept), self.burstiness)

    def to_wire(self) -> dict[str, object]:
        return {
            "segments": [
                [
                    s.start_s,
                    s.end_s if math.isfinite(s.end_s) else None,
                    s.start_per_s,
                    s.end_per_s,
                    s.curve,
                    s.label,
                ]
                for s in self.segments
            ],
            "burstiness": self.burstiness,
            "burst": self.burst,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, object]) -> RatePlan:
        segs = tuple(
            Segment(float(a), math.inf if b is None else float(b), float(r0), float(r1), curve, str(label))
            for a, b, r0, r1, curve, label in wire["segments"]  # type: ignore[attr-defined]
        )
        return cls(segs, float(wire["burstiness"]), bool(wire["burst"]))  # type: ignore[arg-type]


def rate_label(rate_per_s: float) -> str:
    return f"{rate_per_s:g} req/s"


def check_rate(rate_per_s: float, option: str) -> None:
    if not (rate_per_s > 0) or not math.isfinite(rate_per_s):
        raise ConfigError(f"{option} {rate_per_s:g} must be a number of requests/s > 0")


def constant(rate_per_s: float, burstiness: float = 1.0) -> RatePlan:
    """``--request-rate``: one rate until the run is stopped; ``math.inf``: all at once."""
    if math.isinf(rate_per_s) and rate_per_s > 0:
        return RatePlan(
            (Segment(0.0, math.inf, math.inf, math.inf, "constant", "inf req/s"),), burstiness, True
        )
    check_rate(rate_per_s, "--request-rate")
    return RatePlan(
        (Segment(0.0, math.inf, rate_per_s, rate_per_s, "constant", rate_label(rate_per_s)),), burstiness
    )


def ladder(rates_per_s: Sequence[float], level_duration_s: float, burstiness: float = 1.0) -> RatePlan:
    """``--rates``: each rate for ``level_duration_s``, then the end (like the users ladder)."""
    if not rates_per_s:
        raise ConfigError("--rates needs at least one rate, e.g. --rates 1,2,4,8")
    for r in rates_per_s:
        check_rate(r, "--rates: each rate")
    d = level_duration_s
    return RatePlan(
        tuple(
            Segment(i * d, (i + 1) * d, r, r, "constant", rate_label(r)) for i, r in enumerate(rates_per_s)
        ),
        burstiness,
    )


def ramp(
    start_per_s: float,
    end_per_s: float,
    duration_s: float,
    curve: Curve,
    level_duration_s: float,
    burstiness: float = 1.0,
) -> RatePlan:
    """``--ramp-up-strategy``: from ``start_per_s`` to ``end_per_s`` over ``duration_s``, then the end;
    cut into levels of ``level_duration_s`` for the per-level table (each named by its rates)."""
    if curve == "exponential":
        check_rate(start_per_s, "--ramp-up-start-rps")
    elif not (start_per_s >= 0 and math.isfinite(start_per_s)):
        raise ConfigError(f"--ramp-up-start-rps {start_per_s:g} must be >= 0 requests/s")
    check_rate(end_per_s, "--ramp-up-end-rps")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ConfigError("a ramp needs its duration: --ramp-up-duration SECONDS (or --run-time)")
    if start_per_s == end_per_s:
        curve = "constant"
    whole = Segment(0.0, duration_s, start_per_s, end_per_s, curve, "")
    cuts = max(1, math.ceil(duration_s / level_duration_s - 1e-9))
    segs = []
    for i in range(cuts):
        a, b = i * level_duration_s, min((i + 1) * level_duration_s, duration_s)
        ra, rb = whole.rate_at(a), whole.rate_at(b)
        segs.append(Segment(a, b, ra, rb, curve, f"{ra:.3g}-{rb:.3g} req/s"))
    return RatePlan(tuple(segs), burstiness)


def _block_rng(seed: int, block: int) -> random.Random:
    return random.Random(seed * 1_000_003 + block)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Arrival ``k``'s operational time ``s`` (where a process starts following the sequence)."""

    k: int = 0
    s: float = 0.0


class UnitSequence:
    """The global unit-rate sequence ``s_k`` from a checkpoint on, one arrival at a time."""

    __slots__ = ("_rng", "_scale", "_seed", "_shape", "k", "s")

    def __init__(self, seed: int, burstiness: float, at: Checkpoint = Checkpoint()) -> None:
        if not (burstiness > 0 and math.isfinite(burstiness)):
            raise ConfigError(f"--burstiness {burstiness:g} must be > 0")
        self._shape = burstiness
        self._scale = 1.0 / burstiness
        self.k = at.k
        self.s = at.s
        self._rng = _block_rng(seed, at.k // BLOCK)
        self._seed = seed
        for _ in range(at.k % BLOCK):
            self._rng.gammavariate(self._shape, self._scale)

    def advance(self) -> None:
        """Move to arrival ``k + 1``: its gap is draw ``k % BLOCK`` of block ``k // BLOCK``'s stream."""
        j = self.k
        if j % BLOCK == 0:
            self._rng = _block_rng(self._seed, j // BLOCK)
        self.s += self._rng.gammavariate(self._shape, self._scale)
        self.k = j + 1

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.k, self.s)


@dataclass(frozen=True, slots=True)
class Share:
    """From arrival ``from_k`` on, a process takes the arrivals ``k % count == index``."""

    index: int
    count: int
    from_k: int = 0

    def takes(self, k: int) -> bool:
        return k >= self.from_k and k % self.count == self.index


@dataclass(frozen=True, slots=True)
class Arrival:
    """One due request: its number in the run's sequence and its run time."""

    k: int
    at_s: float


def arrivals(
    plan: RatePlan,
    seed: int,
    share: Share,
    at: Checkpoint = Checkpoint(),
    limit: int | None = None,
) -> Iterator[Arrival]:
    """This share's arrivals from checkpoint ``at`` on, in order, until the plan ends or ``limit``
    arrivals (global: ``k < limit``) were due. Lazy: one gamma draw per global arrival."""
    seq = UnitSequence(seed, plan.burstiness, at)
    while limit is None or seq.k < limit:
        if share.takes(seq.k):
            t = plan.time_of(seq.s)
            if t is None:
                return
            yield Arrival(seq.k, t)
        elif plan.time_of(seq.s) is None:
            return
        seq.advance()


def checkpoint_after(plan: RatePlan, seed: int, after_s: float, at: Checkpoint = Checkpoint()) -> Checkpoint:
    """The first arrival due at or after run time ``after_s`` (from ``at`` on): where a new share
    starts when the processes change."""
    seq = UnitSequence(seed, plan.burstiness, at)
    while True:
        t = plan.time_of(seq.s)
        if t is None or t >= after_s:
            return seq.checkpoint
        seq.advance()
