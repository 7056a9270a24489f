"""A worker whose master is gone stops within seconds, with one line that says why.

Locust's worker waits 60 s without a heartbeat from its master before it quits: a master killed
mid-run leaves its workers sending requests to the server for a minute that nobody measures. The
master answers every worker heartbeat (one a second), so a few seconds of silence mean it is gone
(killed, or its network is); Locust's master itself drops a worker after 3 missed heartbeats.

Only while users run (spawning or running): the heartbeats are read by the worker's message loop,
which Locust's own ``stop`` and ``quit`` handling holds while the users stop (up to
``--stop-timeout``), so silence then says nothing about the master; and a stopping worker sends no
more requests anyway.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.runners import STATE_RUNNING, STATE_SPAWNING

logger = logging.getLogger("llm_locust")

#: Seconds without a heartbeat from the master after which a worker stops.
MASTER_SILENCE_S = 5.0
_CHECK_EVERY_S = 0.5
_USERS_RUN = (STATE_SPAWNING, STATE_RUNNING)


def watch(environment: Any) -> gevent.Greenlet:
    """Start watching the master's heartbeats from this worker (its runner is a WorkerRunner)."""
    return gevent.spawn(_watch, environment)


def _watch(environment: Any) -> None:
    runner = environment.runner
    while True:
        gevent.sleep(_CHECK_EVERY_S)
        last = runner.last_heartbeat_timestamp  # None until the first heartbeat
        if last is None or time.time() - last < MASTER_SILENCE_S or runner.state not in _USERS_RUN:
            continue
        logger.error(
            "no heartbeat from the master at %s:%s for %.0f s: it is gone; stopping this worker "
            "(what it measured since its last report is lost)",
            runner.master_host,
            runner.master_port,
            time.time() - last,
        )
        environment.stop_timeout = 0  # nobody would receive what the streams still running measure
        runner.quit()
        return
