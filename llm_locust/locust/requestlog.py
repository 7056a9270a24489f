"""``--llm-requests``: every finished request as one JSON line, written off the request path.

:meth:`RequestLog.add` only appends the record to a list (the request path pays nothing else). A
flusher greenlet takes the list every :data:`FLUSH_S` (sooner once :data:`BATCH` records wait),
encodes it with orjson in slices of :data:`SLICE` records, yielding between slices so that no
stream's reads wait behind a long encode, and then either writes the lines to the file (a
single process, or the master: the write itself runs in gevent's thread pool) or, on a worker,
sends them to the master in an ``llm_requests`` message, which the master appends to its file as
they are. A worker sends its last lines before its final LLM report (``llm_final``, see
:mod:`llm_locust.locust.distributed`), so the master has every line when the test's stop is done;
the master closes the file at quit, after a last line that describes the run
(:data:`~llm_locust.metrics.lines.RUN_KEY`). Each request is added once, where it is counted, so
no line is written twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import IO, Any

import gevent
import orjson
from gevent.event import Event
from gevent.lock import Semaphore
from locust.runners import MasterRunner, WorkerRunner

from llm_locust.errors import ConfigError
from llm_locust.locust.paths import tagged
from llm_locust.metrics.aggregate import clock_offset_s
from llm_locust.metrics.lines import RUN_KEY, to_line
from llm_locust.metrics.records import RequestRecord

logger = logging.getLogger("llm_locust")

#: seconds between two flushes at most
FLUSH_S = 1.0
#: records waiting that wake the flusher before FLUSH_S; also the most lines in one write or message
BATCH = 512
#: records encoded between two yields to the event loop
SLICE = 32
MESSAGE = "llm_requests"


class RequestLog:
    """The lines of one process: written to ``file`` (owner of the test), or handed to ``send``
    (a worker: one bytes object of whole lines per call)."""

    def __init__(self, worker: str, file: IO[bytes] | None, send: Callable[[bytes], None] | None) -> None:
        self.worker = worker
        self.file = file
        self.send = send
        self.offset_s = clock_offset_s()
        self._pending: list[tuple[RequestRecord, str | None, bool]] = []
        self._wake = Event()
        self._lock = Semaphore()  # one batch at a time: lines stay in order, a flush waits for the flusher
        self._closing = False
        self._flusher: gevent.Greenlet | None = gevent.spawn(self._run)
        self.lines = 0  # written or sent by this process

    def add(self, rec: RequestRecord, level: str | None, warmup: bool) -> None:
        """One finished request (the request path: an append)."""
        pending = self._pending
        pending.append((rec, level, warmup))
        if len(pending) >= BATCH:
            self._wake.set()

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(FLUSH_S)
            self._wake.clear()
            try:
                self.flush(yielding=True)
            except OSError as exc:
                logger.error("--llm-requests: cannot write: %s", exc)

    def flush(self, yielding: bool = False) -> None:
        """Encode and write (or send) what is pending; with ``yielding``, give the event loop a turn
        after each slice."""
        with self._lock:
            pending = self._pending
            while pending:  # at most BATCH lines a write or a message to the master
                batch = pending[:BATCH]
                del pending[:BATCH]
                chunks = []
                for start in range(0, len(batch), SLICE):
                    chunks.append(self._encode(batch[start : start + SLICE]))
                    if yielding:
                        gevent.sleep(0)
                self._out(b"".join(chunks))
                self.lines += len(batch)

    def _encode(self, batch: list[tuple[RequestRecord, str | None, bool]]) -> bytes:
        worker, offset = self.worker, self.offset_s
        return b"".join(
            orjson.dumps(to_line(rec, level, warmup, worker, offset), option=orjson.OPT_APPEND_NEWLINE)
            for rec, level, warmup in batch
        )

    def _out(self, data: bytes) -> None:
        if self.send is not None:
            self.send(data)
        elif self.file is not None:
            self.write(data)

    def write(self, data: bytes) -> None:
        """Lines to the file, in the thread pool (a slow disk holds a thread, not the event loop)."""
        file = self.file
        if file is not None and data:
            gevent.get_hub().threadpool.apply(file.write, (data,))

    def close(self, run: dict[str, Any] | None) -> None:
        """Write what is pending and ``run`` (the run's metadata) as the last line; close the file."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:  # not killed: a batch it has taken would be lost
            self._closing = True
            self._wake.set()
            flusher.join()
        self.flush()
        file, self.file = self.file, None
        if file is None:
            return
        try:
            if run is not None:
                file.write(orjson.dumps({RUN_KEY: run}, default=str, option=orjson.OPT_APPEND_NEWLINE))
        finally:
            file.close()


def start(state: Any) -> None:
    """At a test's start: the process's log, where --llm-requests is given (once per process; a
    later test of the same process appends). Raises ConfigError when the file cannot be opened."""
    config = state.require_config()
    if not config.llm_requests or state.request_log is not None:
        return
    runner = state.environment.runner
    if isinstance(runner, WorkerRunner):

        def send(data: bytes) -> None:
            runner.send_message(MESSAGE, {"lines": data})

        state.request_log = RequestLog(runner.client_id, None, send)
        return
    path = tagged(config.llm_requests, state.environment.parsed_options)
    try:
        file = open(path, "wb")  # noqa: SIM115 (open for the whole run, closed at quit)
    except OSError as exc:
        raise ConfigError(f"--llm-requests {path!r}: {exc.strerror or exc}") from None
    state.request_log = RequestLog("local", file, None)


def listen(runner: Any, state: Any) -> None:
    """The master: append the lines that workers send."""
    if isinstance(runner, MasterRunner):
        runner.register_message(MESSAGE, lambda environment, msg, **kw: on_lines(state, msg.data))


def on_lines(state: Any, data: dict[str, Any]) -> None:
    log = state.request_log
    lines = data.get("lines") if isinstance(data, dict) else None
    if log is None or not isinstance(lines, bytes):
        return
    try:
        log.write(lines)
    except OSError as exc:
        logger.error("--llm-requests: cannot write: %s", exc)


def flush(state: Any) -> None:
    """A worker at its test's stop: send every pending line now (before its final report)."""
    log = state.request_log
    if log is not None:
        log.flush()


def close(state: Any, run: dict[str, Any] | None) -> None:
    log, state.request_log = state.request_log, None
    if log is None:
        return
    try:
        log.close(run)
    except OSError as exc:
        logger.error("--llm-requests: cannot write: %s", exc)
