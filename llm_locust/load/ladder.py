"""The seed benchmark's ladder of concurrency levels (1 -> 8 -> 32 -> 256 -> 1024), as a pure schedule:
which level holds at a given time of the run. :class:`llm_locust.locust.shape.LadderShape` drives
Locust with it."""

from __future__ import annotations

from dataclasses import dataclass

from llm_locust.errors import ConfigError

DEFAULT_LEVELS = "1,8,32,256,1024"
DEFAULT_LEVEL_DURATION_S = 60.0


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError as exc:
        raise ConfigError(f"--levels {text!r} must be comma-separated whole numbers, e.g. 1,8,32") from exc
    if not levels or min(levels) < 1:
        raise ConfigError(f"--levels {text!r} needs at least one level, each >= 1 user")
    return levels


@dataclass(frozen=True)
class Ladder:
    """Each of ``levels`` users for ``level_duration_s`` seconds, then the end."""

    levels: tuple[int, ...]
    level_duration_s: float

    @classmethod
    def parse(cls, levels: str, level_duration_s: float) -> Ladder:
        duration = float(level_duration_s)
        if not duration > 0:
            raise ConfigError(f"--level-duration {duration:g} must be > 0 seconds")
        return cls(tuple(parse_levels(levels)), duration)

    def users_at(self, run_time_s: float) -> int | None:
        """The users of the level that holds ``run_time_s`` into the run; None once the ladder ended."""
        index = int(run_time_s // self.level_duration_s)
        return self.levels[index] if index < len(self.levels) else None
