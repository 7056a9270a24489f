"""``llm-locust mock --workers N``: N mock processes on one port, and ``/mock/stats`` summed over them.

The parent (:func:`supervise`) binds N listening sockets to one port with ``SO_REUSEPORT`` (Linux:
the kernel spreads new connections evenly over them; with ``--port 0`` the first one picks the port
and the others join it), and one *side* socket per worker on ``127.0.0.1`` (port 0). It starts each
worker as ``llm-locust mock ... --worker INDEX:LISTEN_FD:SIDE_FD:SIDE_PORTS`` with only its own two
sockets, so every port is bound before any worker runs, and announces the port once every worker
answers ``/health`` on its side socket. It stops its workers on SIGTERM and SIGINT, and stops all
when one of them exits.

A worker that receives ``/mock/stats`` asks every other one for its own counters on its side port
(``GET /mock/worker/stats``) and answers their sum (:func:`merge`): exact, because every counter is
an integer kept by exactly one process. With ``--record-arrivals`` each worker also sends its
(arrived_s, ended_s) intervals: they are joined, and the peak in flight is computed over all of them.
``POST /mock/reset`` resets every worker the same way (``POST /mock/worker/reset``).

A worker's stdin is a pipe from the parent that the parent never writes to: when the parent dies,
even by SIGKILL, the pipe reads end-of-file and the worker stops (:func:`exit_with_parent`).

What each worker models is its own: ``--engine slots`` and ``--engine batching`` (``--max-seqs``)
have N times the capacity, as N replicas behind a load balancer would; the prefix cache is per
worker, so a repeated prompt is cached only when it reaches a worker that saw it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import orjson

from llm_locust.mock.arrivals import INTERVALS

__all__ = [
    "WORKER_RESET",
    "WORKER_STATS",
    "WorkerSpec",
    "ask",
    "exit_with_parent",
    "merge",
    "supervise",
]

#: a worker's own counters, on its side port (or any port: harmless)
WORKER_STATS = "/mock/worker/stats"
#: resets one worker only
WORKER_RESET = "/mock/worker/reset"
#: how long the parent waits for every worker to answer /health (the prompt tokenizer loads first)
_READY_TIMEOUT_S = 60.0
#: how long a terminated worker has to exit before it is killed
_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WorkerSpec:
    """What the parent tells worker ``index``: the fds of its listening and side sockets, and the side
    ports of all workers (its own at ``index``)."""

    index: int
    listen_fd: int
    side_fd: int
    side_ports: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.index}:{self.listen_fd}:{self.side_fd}:{','.join(map(str, self.side_ports))}"

    @classmethod
    def parse(cls, text: str) -> WorkerSpec:
        try:
            index, listen_fd, side_fd, ports = text.split(":")
            spec = cls(int(index), int(listen_fd), int(side_fd), tuple(int(p) for p in ports.split(",")))
        except ValueError:
            raise ValueError(f"--worker {text!r}: expected INDEX:LISTEN_FD:SIDE_FD:PORT,PORT,...") from None
        if not 0 <= spec.index < len(spec.side_ports):
            n = len(spec.side_ports)
            raise ValueError(f"--worker {text!r}: index {spec.index} is not one of the {n}")
        return spec


# -- in a worker (gevent) ---------------------------------------------------------------------------
def merge(snapshots: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of workers' ``/mock/stats`` snapshots: every counter of ``served`` (and its
    ``prompts``), of each flavor's ``served_by_flavor``, and ``running`` and ``waiting``; the
    workers' arrival intervals (:data:`~llm_locust.mock.arrivals.INTERVALS`) joined."""
    served: Counter[str] = Counter()
    prompts: Counter[str] | None = None
    intervals: list[Any] | None = None
    by_flavor: dict[str, Counter[str]] = {}
    running = waiting = 0
    for snap in snapshots:
        for key, value in snap["served"].items():
            if key == "prompts":
                prompts = prompts if prompts is not None else Counter()
                prompts.update(value)
            elif key == INTERVALS:
                intervals = intervals if intervals is not None else []
                intervals.extend(value)
            else:
                served[key] += value
        for name, counts in snap["served_by_flavor"].items():
            by_flavor.setdefault(name, Counter()).update(counts)
        running += snap["running"]
        waiting += snap["waiting"]
    total: dict[str, Any] = dict(served)
    if prompts is not None:
        total["prompts"] = dict(prompts)
    if intervals is not None:
        total[INTERVALS] = intervals
    return {
        "served": total,
        "served_by_flavor": {name: dict(c) for name, c in by_flavor.items()},
        "running": running,
        "waiting": waiting,
    }


def ask(port: int, method: str, path: str, timeout_s: float = 5.0) -> Any:
    """Send ``method path`` to the worker on side port ``port`` (from a greenlet) and return its JSON
    answer; OSError when it does not answer 200."""
    from gevent import socket as gsocket

    request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    data = bytearray()
    with gsocket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request.encode("latin-1"))
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 200"):
        raise OSError(f"{method} {path} on 127.0.0.1:{port} answered {status!r}, expected 200")
    return orjson.loads(body)


def exit_with_parent(stop: Callable[[], None]) -> None:
    """Call ``stop`` (in a greenlet) when stdin, the parent's pipe, reads end-of-file."""
    import gevent
    from gevent.socket import wait_read

    def watch() -> None:
        wait_read(sys.stdin.fileno())
        stop()

    gevent.spawn(watch)


# -- in the parent (no gevent) ----------------------------------------------------------------------
def listeners(host: str, port: int, n: int) -> tuple[int, list[socket.socket]]:
    """``n`` listening sockets on ``host:port`` with SO_REUSEPORT (port 0: the first picks a free
    one) and the port; OSError when it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(4096)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return port, socks


class _Stop(Exception):
    """SIGTERM or SIGINT reached the parent: stop the workers."""


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
            return True
    except OSError:
        return False


def _stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def supervise(argv: Sequence[str], n: int, host: str, port: int, announce: Callable[[int], None]) -> int:
    """Run ``llm-locust mock *argv`` as ``n`` workers on ``host:port``; call ``announce(port)`` once all
    serve; return when stopped by SIGTERM/SIGINT (0) or when a worker exits (1)."""
    try:
        port, socks = listeners(host, port, n)
    except OSError as exc:
        print(f"llm-locust mock: error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    sides: list[socket.socket] = []
    for _ in range(n):
        side = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        side.bind(("127.0.0.1", 0))
        side.listen(128)
        side.setblocking(False)
        sides.append(side)
    side_ports = tuple(s.getsockname()[1] for s in sides)
    procs: list[subprocess.Popen[bytes]] = []
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for i in range(n):
            spec = WorkerSpec(i, socks[i].fileno(), sides[i].fileno(), side_ports)
            cmd = [sys.executable, "-m", "llm_locust", *argv, "--worker", str(spec)]
            fds = (spec.listen_fd, spec.side_fd)
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, pass_fds=fds))
        for sock in (*socks, *sides):  # the workers hold them now
            sock.close()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        waiting = list(range(n))
        while waiting:
            waiting = [i for i in waiting if not _ready(side_ports[i])]
            if _exited(procs) or (waiting and time.monotonic() > deadline):
                print(f"llm-locust mock: error: workers {waiting} did not start", file=sys.stderr)
                return 1
            if waiting:
                time.sleep(0.05)
        announce(port)
        while not _exited(procs):
            time.sleep(0.2)
        return 1
    except _Stop:
        return 0
    finally:
        with contextlib.suppress(_Stop):  # a second signal while stopping: go on stopping
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            _stop_all(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in (*socks, *sides):
            sock.close()


def _exited(procs: Sequence[subprocess.Popen[bytes]]) -> bool:
    """True (after saying which) when a worker has exited."""
    for i, proc in enumerate(procs):
        rc = proc.poll()
        if rc is not None:
            print(f"llm-locust mock: error: worker {i} exited with {rc}; stopping the rest", file=sys.stderr)
            return True
    return False
