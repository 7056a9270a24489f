"""Arrival times from the kernel: when a burst of events waits for the event loop, each event still
gets the instant its bytes reached the socket.

A plain-HTTP connection asks Linux for a receive timestamp on every read (``SO_TIMESTAMPNS``). An
event's instant is then ``perf_counter()`` at the moment its line is handled, minus how long its bytes
had been waiting in the kernel (wall clock now - kernel receive time; both read within microseconds,
so clock adjustments do not leak in). Elsewhere (TLS, other systems) it is plain ``perf_counter()``.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent.socket

SO_TIMESTAMPNS = 35  # Linux; the Python socket module does not export it
_MAX_AGE_NS = 1_000_000_000  # a larger age means a stale or bogus timestamp: ignore it
_CMSG_SPACE = 64


class RxTimestampSocket(gevent.socket.socket):  # type: ignore[misc]
    """A gevent socket whose ``recv`` records the kernel's receive time of the data it returns."""

    __slots__ = ("rx_ns",)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancdata, _flags, _addr = self.recvmsg(bufsize, _CMSG_SPACE, flags)
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                sec, nsec = struct.unpack("qq", payload[:16])
                self.rx_ns = sec * 1_000_000_000 + nsec
        return data  # type: ignore[no-any-return]


def supported() -> bool:
    return sys.platform.startswith("linux")


def create_tcp_socket(family: int, socktype: int, protocol: int) -> gevent.socket.socket:
    """Drop-in for geventhttpclient's ``ConnectionPool._create_tcp_socket``."""
    sock = RxTimestampSocket(family, socktype, protocol)
    sock.rx_ns = 0
    with contextlib.suppress(OSError):  # no timestamps: event_clock falls back to perf_counter
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return sock


def event_clock(sock: Any) -> Callable[[], float]:
    """``perf_counter()`` corrected by the kernel-measured wait of the latest data read from ``sock``."""
    if not isinstance(sock, RxTimestampSocket):
        return time.perf_counter
    perf = time.perf_counter
    wall_ns = time.time_ns

    def clock() -> float:
        now: float = perf()
        rx: int = sock.rx_ns
        if rx:
            age = wall_ns() - rx
            if 0 < age < _MAX_AGE_NS:
                return now - age / 1e9
        return now

    return clock
