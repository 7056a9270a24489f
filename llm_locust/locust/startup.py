"""Ending a run that cannot start: a bad option found before any test."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, NoReturn

#: How long the forked workers of --processes get to stop on SIGTERM before they are killed
WORKERS_STOP_S = 3.0


def exit_at_start(message: str, options: Any) -> NoReturn:
    """One line on stderr, then exit code 1. The forked workers of ``--processes`` are stopped first:
    Locust's own exit handler takes a worker that has not exited yet for one that has and leaves it
    running, and it waits 60 s for its gone master (holding the terminal's, or a CI step's, output
    open meanwhile)."""
    sys.stderr.write(f"llm-locust: error: {message}\n")
    sys.stderr.flush()
    if getattr(options, "processes", None) and not getattr(options, "worker", False):
        stop_forked_workers()
    sys.exit(1)


def stop_forked_workers() -> None:
    """SIGTERM this process's children, and SIGKILL those still running after
    :data:`WORKERS_STOP_S`. They are not reaped here: Locust's exit handler waits for them (and
    takes their exit codes), and a child reaped before would be an error there."""
    import psutil  # Locust's own dependency

    children = psutil.Process().children()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    deadline = time.monotonic() + WORKERS_STOP_S
    running = children
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [c for c in running if _running(c)]
    for child in running:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def _running(child: Any) -> bool:
    import psutil

    try:
        return bool(child.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
