"""``LadderShape``: the seed benchmark's ladder of concurrency levels (1 -> 8 -> 32 -> 256 -> 1024).

Requests are grouped by the level that was current when they were sent; the end-of-run summary
prints one row per level (per-stream tok/s min/median/max, TTFT, aggregate tok/s).
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape, events

from llm_locust.errors import ConfigError
from llm_locust.plugin import set_level

DEFAULT_LEVELS = "1,8,32,256,1024"
_ladder_installed = False


def _add_ladder_arguments(parser: Any) -> None:
    parser.add_argument(
        "--levels",
        env_var="LOCUST_LEVELS",
        default=DEFAULT_LEVELS,
        help=f"Comma-separated numbers of users, one level each (default {DEFAULT_LEVELS})",
    )
    parser.add_argument(
        "--level-duration",
        env_var="LOCUST_LEVEL_DURATION",
        type=float,
        default=60.0,
        help="Seconds spent at each level (default 60)",
    )


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError as exc:
        raise ConfigError(f"--levels {text!r} must be comma-separated whole numbers, e.g. 1,8,32") from exc
    if not levels or min(levels) < 1:
        raise ConfigError(f"--levels {text!r} needs at least one level, each >= 1 user")
    return levels


def install_ladder() -> None:
    global _ladder_installed
    if not _ladder_installed:
        _ladder_installed = True
        events.init_command_line_parser.add_listener(_add_ladder_arguments)  # type: ignore[no-untyped-call]


class LadderShape(LoadTestShape):
    """Hold each of ``--levels`` users for ``--level-duration`` seconds, then stop."""

    abstract = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        install_ladder()

    _current: int | None = None

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        environment = self.runner.environment
        options: Any = environment.parsed_options
        levels = parse_levels(options.levels)
        duration = float(options.level_duration)
        if duration <= 0:
            raise ConfigError(f"--level-duration {duration:g} must be > 0 seconds")
        index = int(self.get_run_time() // duration)  # type: ignore[no-untyped-call]
        if index >= len(levels):
            return None
        users = levels[index]
        if users != self._current:
            self._current = users
            set_level(environment, str(users))
        return users, float(max(users, 1))
