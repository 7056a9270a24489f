"""Arrival times from the kernel: when a burst of events waits for the event loop, each event still
gets the instant its bytes reached the socket.

A plain-HTTP connection asks Linux for a receive timestamp on every read (``SO_TIMESTAMPNS``). An
event's instant is then ``perf_counter()`` at the moment its line is handled, minus how long its bytes
had been waiting in the kernel (wall clock now - kernel receive time; both read within microseconds,
so clock adjustments do not leak in). Elsewhere (TLS, other systems) it is plain ``perf_counter()``.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent.monkey
import gevent.socket

SO_TIMESTAMPNS = 35  # Linux; the Python socket module does not export it
#: The most bytes of response headers read before a request fails (geventhttpclient's parser has no
#: limit: a server sending endless headers would grow one string, quadratically, until the deadline).
MAX_HEADER_BYTES = 64 * 1024
_MAX_AGE_NS = 1_000_000_000  # a larger age means a stale or bogus timestamp: ignore it
#: ``recvmsg``'s ancillary buffer size for one ``SO_TIMESTAMPNS`` message
CMSG_SPACE = 64


def receive_ns(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The kernel receive time (Unix ns) in ``recvmsg``'s ancillary data; 0 when there is none."""
    rx = 0
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = struct.unpack("qq", payload[:16])
            rx = sec * 1_000_000_000 + nsec
    return rx


def corrected(now_perf_s: float, rx_ns: int) -> float:
    """``now_perf_s`` (a ``perf_counter`` just read) moved back by how long the data waited in the
    kernel since ``rx_ns``; unchanged without a plausible receive time."""
    if rx_ns:
        age = time.time_ns() - rx_ns
        if 0 < age < _MAX_AGE_NS:
            return now_perf_s - age / 1e9
    return now_perf_s


class RxTimestampSocket(gevent.socket.socket):  # type: ignore[misc]
    """A gevent socket whose ``recv`` records the kernel's receive time of the data it returns.

    After each request is sent (``sendall``) the socket is in *header mode* until
    :func:`end_headers`: every ``recv`` peeks first and returns at most up to the end of a header
    block (the empty line), so the response's parser has consumed exactly the headers and nothing
    of the body when they are complete. The compiled reader (:mod:`llm_locust.wire.reactor`) can then
    take over the body from its first byte.
    """

    __slots__ = ("_tail", "header_left", "header_mode", "rx_ns", "sent_at_s")
    sent_at_s: float | None

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.header_mode = True
        self.header_left = MAX_HEADER_BYTES
        self._tail = b""
        self.sent_at_s = time.perf_counter()  # metrics.md's s_i: just before the request is written
        super().sendall(data, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self.header_mode and not flags:
            bufsize = self._header_bytes(bufsize)
        data, ancdata, _flags, _addr = self.recvmsg(bufsize, CMSG_SPACE, flags)
        rx = receive_ns(ancdata)
        if rx:
            self.rx_ns = rx
        if self.header_mode and not flags:
            self.header_left = count_header_bytes(self.header_left, data)
        return data  # type: ignore[no-any-return]

    def _header_bytes(self, bufsize: int) -> int:
        """How many of the waiting bytes to read: up to the end of the header block, if it is there."""
        waiting: bytes = self.recvmsg(bufsize, 0, socket.MSG_PEEK)[0]
        seen = self._tail + waiting
        ends = [i for i in (seen.find(b"\n\r\n"), seen.find(b"\n\n")) if i >= 0]
        if not ends:  # all header bytes (but no more: more may have arrived since the peek)
            self._tail = seen[-3:]
            return max(len(waiting), 1)
        i = min(ends)
        end = i + (3 if seen.startswith(b"\n\r\n", i) else 2)
        self._tail = b""
        return max(end - (len(seen) - len(waiting)), 1)


def count_header_bytes(left: int, data: bytes) -> int:
    """What is left of :data:`MAX_HEADER_BYTES` after ``data``; raises ``HTTPParseError`` past it."""
    left -= len(data)
    if left < 0:
        from geventhttpclient.response import HTTPParseError

        raise HTTPParseError(f"the response headers are over {MAX_HEADER_BYTES >> 10} KiB")
    return left


def sent_at(sock: Any) -> float | None:
    """When the last request was written to ``sock`` (``perf_counter`` s); None if not one of ours."""
    return sock.sent_at_s if isinstance(sock, RxTimestampSocket) else None


def socket_alive(sock: Any) -> bool:
    """geventhttpclient's idle-connection check (not readable while idle, else FIN or dirty) without
    its ``gevent.select`` call, which yields to the hub when nothing is ready: under load the request
    then waited a whole loop iteration before being sent."""
    try:
        if sock is None or sock.fileno() < 0:
            return False
        readable, _, _ = _select(sock.fileno())
        return not readable
    except (OSError, ValueError):
        return False


def _select(fd: int) -> tuple[list[int], list[int], list[int]]:
    select = _original_select()
    return select([fd], [], [], 0.0)  # type: ignore[no-any-return]


@functools.cache
def _original_select() -> Any:
    return gevent.monkey.get_original("select", "select")


def end_headers(sock: Any) -> bool:
    """Leave header mode (the response's headers are complete). True when the socket was in header
    mode for the whole response, i.e. no byte of the body has been read yet."""
    if not isinstance(sock, RxTimestampSocket):
        if getattr(sock, "header_mode", False):  # a TLS socket of llm_locust.wire.tls: its headers are read
            sock.header_mode = False
        return False
    if not sock.header_mode:
        return False
    sock.header_mode = False
    return True


def supported() -> bool:
    return sys.platform.startswith("linux")


def create_tcp_socket(family: int, socktype: int, protocol: int) -> gevent.socket.socket:
    """Drop-in for geventhttpclient's ``ConnectionPool._create_tcp_socket``."""
    sock = RxTimestampSocket(family, socktype, protocol)
    sock.rx_ns = 0
    sock.sent_at_s = None
    sock.header_mode = False
    sock.header_left = MAX_HEADER_BYTES
    sock._tail = b""
    with contextlib.suppress(OSError):  # no timestamps: event_clock falls back to perf_counter
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return sock


def event_clock(sock: Any) -> Callable[[], float]:
    """``perf_counter()`` corrected by the kernel-measured wait of the latest data read from ``sock``."""
    if not isinstance(sock, RxTimestampSocket):
        return time.perf_counter
    perf = time.perf_counter

    def clock() -> float:
        return corrected(perf(), sock.rx_ns)

    return clock
