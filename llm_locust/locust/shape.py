"""``LadderShape``: the seed benchmark's ladder (:mod:`llm_locust.load.ladder`) as a Locust load shape.

Requests are grouped by the level that was current when they were sent; the end-of-run summary
prints one row per level (per-stream tok/s min/median/max, TTFT, aggregate tok/s).
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape, events

from llm_locust.load.ladder import DEFAULT_LEVELS, Ladder
from llm_locust.locust.plugin import set_level

_ladder_installed = False


def _add_ladder_arguments(parser: Any) -> None:
    parser.add_argument(
        "--levels",
        env_var="LOCUST_LEVELS",
        default=DEFAULT_LEVELS,
        help=f"Comma-separated numbers of users, one level each (default {DEFAULT_LEVELS})",
    )
    # --level-duration is llm-locust's own option (the rate ladder has levels too)


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
        users = Ladder.parse(options.levels, options.level_duration).users_at(self.get_run_time())  # type: ignore[no-untyped-call]
        if users is None:
            return None
        if users != self._current:
            self._current = users
            set_level(environment, str(users))
        return users, float(max(users, 1))
