"""Read batching: under heavy load, let the event loop collect readable streams for up to 1 ms.

Every token otherwise costs the client its own wake-up of the event loop (an ``epoll_wait``, a
context switch, the loop's bookkeeping). Where the compiled reader reads every stream, each read is
stamped with the kernel's receive time of its bytes, so reading a little later does not change when
a token is said to have arrived. libev's *io collect interval* then lets the loop sleep up to 1 ms
before it polls, and one wake-up serves many streams: about a fifth less client CPU at 512 streams.

What it could cost, and how that is avoided:

- Two tokens of one stream that arrive less than 1 ms apart would be read together and stamped
  with the later arrival. The bodies count reads that brought two or more text events (plain or
  not: reasoning tokens count too); where more than 1 % of reads did in a second, batching stops for
  the rest of the process (and says so once). Where tokens already come together without it (a
  server that streams faster than that, or bursts), it does not start.
- Streams without kernel timestamps (TLS, the greenlet reader) are stamped when read: one such
  stream stops batching for the rest of the process.
- Timers are never delayed (libev shortens the sleep to the next timer), so the loop-lag probe and
  any timed schedule keep their time. Light load gains nothing, so batching is on only while the
  process's bodies read at least 5,000 tokens/s (off again below 2,500).

``LLM_LOCUST_READ_BATCHING=off`` turns it off (for comparisons).
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any

from llm_locust._native import speedups

INTERVAL_S = 0.001
ON_AT_TOKENS_PER_S = 5000.0
OFF_BELOW_TOKENS_PER_S = 2500.0
MAX_COALESCED_SHARE = 0.01
MIN_READS = 200
CHECK_EVERY_S = 1.0

log = logging.getLogger(__name__)


def _collect_setter(loop: Any) -> Any:
    """``ev_set_io_collect_interval`` of gevent's libev loop as a callable(seconds), or None."""
    if type(loop).__module__ != "gevent.libev.corecext" or not isinstance(getattr(loop, "ptr", None), int):
        return None
    try:
        import gevent.libev.corecext as corecext

        fn = ctypes.CDLL(corecext.__file__).ev_set_io_collect_interval
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_double]
    fn.restype = None
    ptr = loop.ptr
    return lambda seconds: fn(ptr, seconds)


class ReadBatching:
    """Turns libev's io collect interval on and off for this process's event loop (see the module)."""

    def __init__(self, loop: Any) -> None:
        self._set = _collect_setter(loop)
        self._module = speedups.module()
        self.on = False
        self.stopped_because: str | None = None
        self._last: tuple[int, int, int] = (0, 0, 0)
        self._timer: Any = None
        if self._set is None or self._module is None:
            self.stopped_because = "not available with this event loop or without the compiled reader"
            return
        if os.environ.get("LLM_LOCUST_READ_BATCHING", "auto") == "off":
            self.stopped_because = "turned off (LLM_LOCUST_READ_BATCHING=off)"
            return
        self._last = self._module.read_counts()
        self._timer = loop.timer(CHECK_EVERY_S, CHECK_EVERY_S, ref=False)
        self._timer.start(self._check)

    def stop(self, reason: str) -> None:
        """No batching from now on in this process."""
        if self.stopped_because is not None:
            return
        self.stopped_because = reason
        self._turn(False)
        if self._timer is not None:
            self._timer.stop()
        log.info("read batching off: %s", reason)

    def _turn(self, on: bool) -> None:
        if on != self.on and self._set is not None:
            self._set(INTERVAL_S if on else 0.0)
            self.on = on

    def _check(self) -> None:
        """Every second, in the event loop's timer callback (never raises)."""
        try:
            self.decide(self._module.read_counts(), CHECK_EVERY_S)
        except Exception:  # pragma: no cover - a bug here must not reach the hub
            log.exception("read batching check failed")
            self.stop("its check failed")

    def decide(self, counts: tuple[int, int, int], window_s: float) -> None:
        """One window's verdict from the bodies' cumulative (reads, text events, coalesced reads)."""
        if self.stopped_because is not None:
            return
        reads, tokens, coalesced = (now - then for now, then in zip(counts, self._last, strict=True))
        self._last = counts
        together = reads >= MIN_READS and coalesced > MAX_COALESCED_SHARE * reads
        if self.on and together:
            self.stop(
                f"{coalesced} of {reads} reads in a second took two or more tokens of one stream "
                "(they arrive less than 1 ms apart)"
            )
            return
        rate = tokens / window_s
        if not self.on and rate >= ON_AT_TOKENS_PER_S and not together:
            self._turn(True)
        elif self.on and rate < OFF_BELOW_TOKENS_PER_S:
            self._turn(False)
