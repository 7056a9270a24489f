"""Token-length distributions of options such as ``--input-tokens`` and ``--output-tokens``.

An option value is ``"512"`` (always 512), ``"128:2048"`` (uniform over 128..2048, both ends
included) or a fixed value with a separate standard deviation (``--input-tokens 512
--input-tokens-stdev 64``: normal around 512, rounded, never below 1 token).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from llm_locust.errors import ConfigError


@dataclass(frozen=True)
class LengthDist:
    """A distribution of token counts: uniform over ``low_tokens..high_tokens``, or normal around
    ``low_tokens`` (== ``high_tokens``) when ``stdev_tokens > 0``. Every draw is >= 1."""

    low_tokens: int
    high_tokens: int
    stdev_tokens: float = 0.0

    def __post_init__(self) -> None:
        if self.low_tokens < 1 or self.high_tokens < self.low_tokens:
            raise ValueError(f"LengthDist needs 1 <= low <= high, got {self.low_tokens}:{self.high_tokens}")
        if self.stdev_tokens < 0 or not math.isfinite(self.stdev_tokens):
            raise ValueError(f"LengthDist needs a finite stdev >= 0, got {self.stdev_tokens}")
        if self.stdev_tokens and self.low_tokens != self.high_tokens:
            raise ValueError("LengthDist: a stdev applies to a fixed value, not a range")

    @classmethod
    def fixed(cls, tokens: int) -> LengthDist:
        return cls(tokens, tokens)

    @property
    def is_fixed(self) -> bool:
        """True when every draw returns the same value."""
        return self.low_tokens == self.high_tokens and not self.stdev_tokens

    @property
    def mean_tokens(self) -> float:
        """The mean before clipping (the clip at 1 token only matters when stdev is near the mean)."""
        return (self.low_tokens + self.high_tokens) / 2

    def draw(self, rng: random.Random) -> int:
        """One token count from ``rng``; a fixed value consumes no randomness."""
        if self.stdev_tokens:
            return max(1, round(rng.gauss(self.low_tokens, self.stdev_tokens)))
        if self.low_tokens == self.high_tokens:
            return self.low_tokens
        return rng.randint(self.low_tokens, self.high_tokens)

    def describe(self) -> str:
        """The canonical option text, e.g. ``512``, ``128:2048`` or ``512~64`` (normal)."""
        if self.stdev_tokens:
            return f"{self.low_tokens}~{self.stdev_tokens:g}"
        if self.low_tokens == self.high_tokens:
            return str(self.low_tokens)
        return f"{self.low_tokens}:{self.high_tokens}"


def parse_length(option_name: str, text: str, stdev: float = 0.0) -> LengthDist:
    """Parse ``N`` or ``LOW:HIGH`` given to ``option_name``; ``stdev`` comes from the separate
    ``{option_name}-stdev`` option. Raises :class:`ConfigError` naming the option."""
    where = f"{option_name} {text!r}"
    body = text.strip()
    if not body:
        raise ConfigError(f"{where}: expected a token count like 512 or a range like 128:2048")
    parts = body.split(":")
    if len(parts) > 2:
        raise ConfigError(f"{where}: expected N or LOW:HIGH, with one ':' at most")
    low, high = (_count(where, p) for p in (parts[0], parts[-1]))
    if low > high:
        raise ConfigError(f"{where}: the low end is above the high end")
    if not math.isfinite(stdev) or stdev < 0:
        raise ConfigError(f"{option_name}-stdev {stdev!r}: expected a number of tokens >= 0")
    if stdev and low != high:
        raise ConfigError(
            f"{option_name}-stdev {stdev:g} applies to a fixed {option_name}, not the range {body!r}"
        )
    return LengthDist(low, high, float(stdev))


def _count(where: str, part: str) -> int:
    part = part.strip()
    if not (part.isascii() and part.isdigit()):  # also refuses signs, decimals and empty ends such as '128:'
        raise ConfigError(f"{where}: {part!r} is not a whole number of tokens")
    value = int(part)
    if value < 1:
        raise ConfigError(f"{where}: a token count must be at least 1")
    return value
