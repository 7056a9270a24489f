"""Locust's tags in the paths of report files: ``{u}`` (users, ``-u``), ``{r}`` (spawn rate, ``-r``)
and ``{t}`` (run time in seconds, ``-t``), as Locust's ``--html`` takes them."""

from __future__ import annotations

from typing import Any

#: tag -> the option of Locust's it stands for
TAGS = {"{u}": "num_users", "{r}": "spawn_rate", "{t}": "run_time"}


def tagged(path: str, options: Any) -> str:
    """``path`` with Locust's tags replaced as Locust replaces them in ``--html`` (an integral value
    without its ".0"; a tag whose option is unset is left as it is)."""
    for tag, name in TAGS.items():
        value = getattr(options, name, None)
        if value is not None and tag in path:
            number = float(value)
            path = path.replace(tag, str(int(number)) if number.is_integer() else str(value))
    return path
