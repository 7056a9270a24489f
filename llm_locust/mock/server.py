"""``llm-locust mock``: a server of every API flavor llm-locust speaks, for demos and tests (no GPU).

A minimal HTTP/1.1 server on gevent: keep-alive, chunked streaming, one greenlet per connection.
Routes: ``POST /v1/chat/completions`` (openai-chat), ``POST /v1/completions`` (openai-completions),
``POST /v1/responses`` (openai-responses), ``POST /api/chat`` (ollama-chat), ``POST /api/generate``
(ollama-generate), ``POST /v1/messages`` (anthropic-messages), each streaming and not (see
:mod:`llm_locust.mock.flavors` for each API's shapes); ``GET /v1/models`` and ``GET /api/tags`` (the
model, in OpenAI's and Ollama's lists); ``GET /health``;
``GET /metrics`` with ``--metrics vllm|llamacpp`` (:mod:`llm_locust.mock.metrics`: what it served, in
that engine's Prometheus names); ``GET /mock/stats`` (what it served, in
total and per flavor, for exact comparisons); ``POST /mock/reset`` (forgets what it served and
cached). Paths match exactly: a client
whose host ends in ``/v1`` asks for ``/v1/...`` once (``wire.urls.join_path``).

Every flavor is served by the same engine (:mod:`llm_locust.mock.engine`) with the same faults
(:data:`FAULTS`; :data:`FAULT_OUTCOMES` says what a client should make of each), in its own API's
shapes. ``/mock/stats`` counts every fault as it is injected (``injected:KIND``), so a run can be
compared with its client exactly.

A prefix cache (:mod:`llm_locust.mock.cache`, ``--prefix-cache-block``) reports the prompt tokens an
earlier request already sent, in each API's cached-tokens field, and ``cached_prompt_tokens`` in
``/mock/stats``. With ``--record-prompts``, ``/mock/stats`` ``served`` also has ``prompts``: the digest
(:func:`llm_locust.mock.prompts.digest`) of each request's last user message -> how many requests
carried it, so a test can tell that every prompt was sent exactly once. With ``--record-arrivals``
(:mod:`llm_locust.mock.arrivals`), ``served`` also has ``arrivals_s``: the sorted instants at which
every generation request (any flavor's route, not ``/health`` or the others) reached the socket, on
``time.perf_counter``'s clock (CLOCK_MONOTONIC on Linux, comparable with a client's on the same host),
and ``peak_in_flight``: the most of them in flight at once, each from its arrival until the mock
began writing its answer's last bytes (or the connection failed or was cut off; see
:class:`~llm_locust.mock.arrivals.StampedSocket`); one still in flight counts until the snapshot.
Both are over all ``--workers``; each process keeps its last 1,000,000 requests (the oldest are
dropped), and ``/mock/reset`` forgets them.

As one of ``--workers N`` processes (:meth:`MockServer.join_workers`, :mod:`llm_locust.mock.workers`)
``/mock/stats`` is the sum over all workers, with each worker's ``served`` in ``workers``, and
``/mock/reset`` resets all.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import gevent.ssl
from gevent.server import StreamServer

from llm_locust.mock.answers import answer
from llm_locust.mock.arrivals import INTERVALS, ArrivalLog, StampedSocket, publish
from llm_locust.mock.cache import PrefixCache
from llm_locust.mock.engine import Engine
from llm_locust.mock.faults import FAULT_HELP, FAULT_OUTCOMES, FAULTS
from llm_locust.mock.flavors import FLAVORS, ROUTES
from llm_locust.mock.httpio import Connection, send, send_json
from llm_locust.mock.metrics import CONTENT_TYPE, MockMetrics
from llm_locust.mock.prompts import PromptCounter, digest
from llm_locust.mock.workers import WORKER_RESET, WORKER_STATS, ask, merge
from llm_locust.wire import rxclock

__all__ = ["FAULTS", "FAULT_HELP", "FAULT_OUTCOMES", "MockServer"]

_MAX_BODY = 16 * 1024 * 1024
#: the time the mock's models were "modified", for Ollama's list (a fixed instant)
_MODIFIED_AT = "2025-01-01T00:00:00Z"
#: prompts whose (count, block hashes) are kept, so a repeated prompt is not tokenized again
_KNOWN_PROMPTS = 256


class MockServer:
    """The mock: ``engine`` times every answer; ``reasoning_tokens``: the first that many tokens of
    every answer are reasoning text (in each API's reasoning field; completions sends them as text);
    ``faults``: kind -> probability of injecting it into a request; ``stall_s``: how long ``stall``
    and ``slow_headers`` stay silent; ``prefix_cache_block``: the prefix cache's block, in tokens (0:
    no cache); ``record_prompts``: count each request's last user message in ``prompts``;
    ``record_arrivals``: keep when each generation request arrived and ended, for ``arrivals_s`` and
    ``peak_in_flight``; ``metrics``: the names of ``GET /metrics`` (``vllm``, ``llamacpp``; ``off``: none)."""

    def __init__(
        self,
        engine: Engine,
        *,
        model: str = "mock",
        faults: dict[str, float] | None = None,
        stall_s: float = 30.0,
        seed: int | None = None,
        reasoning_tokens: int = 0,
        prefix_cache_block: int = 16,
        record_prompts: bool = False,
        record_arrivals: bool = False,
        metrics: str = "off",
    ) -> None:
        if reasoning_tokens < 0:
            raise ValueError(f"--reasoning-tokens must be >= 0, not {reasoning_tokens}")
        if prefix_cache_block < 0:
            raise ValueError(f"--prefix-cache-block must be >= 0 (0: no cache), not {prefix_cache_block}")
        self.engine = engine
        self.model = model
        self.faults = faults or {}
        self.stall_s = stall_s
        self.reasoning_tokens = reasoning_tokens
        #: what was served, in total (``served`` in /mock/stats) and per flavor
        self.stats: Counter[str] = Counter()
        self.stats_by_flavor: dict[str, Counter[str]] = {f.name: Counter() for f in FLAVORS}
        self.ids = itertools.count(1)
        self.prompts = PromptCounter()
        self.prefix_cache = PrefixCache(prefix_cache_block) if prefix_cache_block else None
        #: (model, prompt) -> (its tokens, its block hashes), for the last few hundred prompts
        self._known: dict[tuple[str, str], tuple[int, list[int]]] = {}
        #: digest of the last user message -> requests that carried it (None: not recorded)
        self.received: Counter[str] | None = Counter() if record_prompts else None
        #: (arrived_s, ended_s) of each generation request (None: not recorded)
        self.arrivals: ArrivalLog | None = ArrivalLog() if record_arrivals else None
        self._rng = random.Random(seed)
        self.metrics: MockMetrics | None = None if metrics == "off" else MockMetrics(metrics)
        self._server: StreamServer | None = None
        self._side: StreamServer | None = None
        self._tls: ssl.SSLContext | None = None
        #: this worker's index and every worker's side port (one worker: no others to ask)
        self._index = 0
        self._side_ports: tuple[int, ...] = ()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(
        self,
        host: str,
        port: int,
        tls: tuple[str, str] | None = None,
        *,
        listener: socket.socket | None = None,
    ) -> int:
        """Bind and start serving in the background (after the prompt tokenizer has loaded);
        ``tls``: (certificate file, key file) to serve HTTPS; ``listener``: a listening socket to
        serve instead of binding ``host:port``."""
        self.prompts.wait_ready()
        if tls:
            self._tls = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(certfile=tls[0], keyfile=tls[1])
        if listener is not None:
            self._server = StreamServer(listener, self._handle)
        else:
            self._server = StreamServer((host, port), self._handle, backlog=4096)
        self._server.start()
        with contextlib.suppress(OSError):  # accepted sockets inherit it: requests are stamped on arrival
            self._server.socket.setsockopt(socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS, 1)
        return int(self._server.server_port)

    def join_workers(self, index: int, side_ports: Sequence[int], side: socket.socket) -> None:
        """Serve as worker ``index`` of ``len(side_ports)``: plain HTTP on ``side`` (a listening
        socket on 127.0.0.1, at ``side_ports[index]``) for the other workers, whose side ports are the
        rest; response ids are unique over all workers (this one's are ``index + 1`` modulo the
        number of workers)."""
        self._index = index
        self._side_ports = tuple(side_ports)
        self.ids = itertools.count(index + 1, len(side_ports))
        self._side = StreamServer(side, self._handle_side)
        self._side.start()

    def serve_forever(self) -> None:
        assert self._server is not None
        self._server.serve_forever()

    def stop(self) -> None:
        if self._side is not None:
            self._side.stop(timeout=1)
        if self._server is not None:
            self._server.stop(timeout=1)

    # -- what was served -----------------------------------------------------------------------
    def count(self, flavor: str, key: str, n: int = 1) -> None:
        """Count ``n`` of ``key`` for a request of ``flavor``, in the totals and the flavor's own."""
        self.stats[key] += n
        self.stats_by_flavor[flavor][key] += n

    def snapshot(self) -> dict[str, Any]:
        """``/mock/stats``: ``served`` (totals), ``served_by_flavor`` (flavor name -> the same
        counters, for that flavor's routes only), and the engine's ``running`` and ``waiting``.
        Counters are absent while 0; ``cached_prompt_tokens`` are those of ``prompt_tokens`` that the
        prefix cache had. With ``--record-prompts``, ``served`` also has ``prompts`` (totals only):
        the :func:`digest` of each request's last user message -> how many requests carried it.
        With ``--record-arrivals``, ``served`` also has this worker's raw intervals
        (:data:`~llm_locust.mock.arrivals.INTERVALS`), which :meth:`all_snapshot` publishes."""
        served: dict[str, Any] = dict(self.stats)
        if self.received is not None:
            served["prompts"] = dict(self.received)
        if self.arrivals is not None:
            served[INTERVALS] = self.arrivals.snapshot(time.perf_counter())
        return {
            "served": served,
            "served_by_flavor": {name: dict(c) for name, c in self.stats_by_flavor.items()},
            "running": self.engine.running,
            "waiting": self.engine.waiting,
        }

    def all_snapshot(self) -> dict[str, Any]:
        """``/mock/stats``: :meth:`snapshot`, summed over every worker with ``--workers``, and then
        ``workers``: each worker's ``served`` (without ``prompts`` and arrivals), by index. With
        ``--record-arrivals``, ``served`` has ``arrivals_s`` and ``peak_in_flight`` over all workers
        (:func:`~llm_locust.mock.arrivals.publish`). OSError when a worker does not answer."""
        if not self._side_ports:
            total = self.snapshot()
        else:
            snaps = [
                self.snapshot() if i == self._index else ask(port, "GET", WORKER_STATS)
                for i, port in enumerate(self._side_ports)
            ]
            total = merge(snaps)
            own = ("prompts", INTERVALS)
            total["workers"] = [{k: v for k, v in s["served"].items() if k not in own} for s in snaps]
        publish(total["served"])
        return total

    def reset_all(self) -> None:
        """``/mock/reset``: :meth:`reset` this worker and every other one; OSError when one does not
        answer."""
        self.reset()
        for i, port in enumerate(self._side_ports):
            if i != self._index:
                ask(port, "POST", WORKER_RESET)

    def reset(self) -> None:
        """Forget what was served, the prompts and arrivals recorded and the prefix cache."""
        self.stats.clear()
        for c in self.stats_by_flavor.values():
            c.clear()
        if self.received is not None:
            self.received.clear()
        if self.arrivals is not None:
            self.arrivals.clear()
        if self.prefix_cache is not None:
            self.prefix_cache.clear()
        if self.metrics is not None:
            self.metrics.reset()

    def record(self, last_user: str) -> None:
        """Count a request that carried ``last_user`` (with ``--record-prompts``)."""
        if self.received is not None:
            self.received[digest(last_user)] += 1

    def prompt_tokens(self, model: str, prompt: str) -> tuple[int, int | None]:
        """(prompt tokens, of them cached) of a request for ``model``; cached is None without a
        prefix cache. The request's blocks are remembered for the next ones."""
        cache = self.prefix_cache
        if cache is None:
            return self.prompts.count(prompt), None
        key = (model, prompt)
        known = self._known.get(key)
        if known is None:
            tokens = self.prompts.encode(prompt)
            known = (self.prompts.remember(prompt, tokens), cache.block_hashes(model, tokens))
            if len(self._known) >= _KNOWN_PROMPTS:
                self._known.clear()
            self._known[key] = known
        return known[0], cache.hit(known[1])

    def pick_fault(self, flavor: str, req: Any) -> str | None:
        """The request's ``mock_fault``, else one drawn from ``--fault``; counted as injected."""
        fault = req.get("mock_fault")
        if not fault:
            for kind, prob in self.faults.items():
                if self._rng.random() < prob:
                    fault = kind
                    break
        if fault:
            self.count(flavor, f"injected:{fault}")
            return str(fault)
        return None

    # -- HTTP ------------------------------------------------------------------------------------
    def _handle(self, sock: socket.socket, _addr: Any) -> None:
        self._serve(sock, self._tls)

    def _handle_side(self, sock: socket.socket, _addr: Any) -> None:
        self._serve(sock, None)  # from the other workers, on 127.0.0.1: never TLS

    def _serve(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):  # e.g. a client that does not trust the certificate
                sock.close()
                return
        conn = Connection(sock)
        try:
            while True:
                line = conn.readline(65537)
                if not line:
                    return
                arrived = conn.arrived_s
                late_s = time.perf_counter() - arrived
                if late_s > 0.005:  # the request waited in the kernel: the mock's own loop was busy
                    self.stats["requests_read_late_over_5ms"] += 1
                parts = line.decode("latin-1").split()
                if len(parts) != 3:
                    return
                method, target, version = parts
                headers: dict[str, str] = {}
                while True:
                    h = conn.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length > _MAX_BODY:
                    send_json(sock, 413, {"error": {"message": "body too large"}}, close=True)
                    return
                body = conn.read(length) if length else b""
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                path = target.split("?", 1)[0]
                if not self._route(sock, method, path, headers, body, arrived) or not keep:
                    return
        except OSError:
            return
        finally:
            sock.close()

    def _route(
        self,
        sock: socket.socket,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        arrived_s: float,
    ) -> bool:
        """Serve one request; return False when the connection must close."""
        if method == "POST":
            flavor = ROUTES.get(path)
            if flavor is not None:
                log = self.arrivals
                if log is None:
                    return answer(self, sock, flavor, body, headers, arrived_s)
                token = log.start(arrived_s)
                out = StampedSocket(sock)
                keep = False
                try:  # every admitted request ends: answered, failed or the client gone
                    keep = answer(self, cast(socket.socket, out), flavor, body, headers, arrived_s)
                    return keep
                finally:  # answered whole: when its last write began; else when it was cut off
                    log.end(token, out.wrote_s if keep and out.wrote_s else out.closed_s or None)
            if path == "/mock/reset":
                try:
                    self.reset_all()
                except OSError as exc:
                    return send_json(sock, 500, {"error": {"message": f"not every worker reset: {exc}"}})
                return send_json(sock, 200, {"reset": True})
            if path == WORKER_RESET:
                self.reset()
                return send_json(sock, 200, {"reset": True})
        elif method == "GET":
            if path == "/health":
                return send_json(sock, 200, {"status": "ok"})
            if path == "/metrics" and self.metrics is not None:
                return send(sock, 200, self.metrics.render(self), CONTENT_TYPE)
            if path == "/v1/models":
                data = [{"id": self.model, "object": "model", "owned_by": "llm-locust-mock"}]
                return send_json(sock, 200, {"object": "list", "data": data})
            if path == "/api/tags":
                return send_json(sock, 200, {"models": [self._ollama_model()]})
            if path == "/mock/stats":
                try:
                    return send_json(sock, 200, self.all_snapshot())
                except OSError as exc:
                    return send_json(sock, 500, {"error": {"message": f"not every worker answered: {exc}"}})
            if path == WORKER_STATS:
                return send_json(sock, 200, self.snapshot())
        return send_json(sock, 404, {"error": {"message": f"no route {method} {path}"}})

    def _ollama_model(self) -> dict[str, Any]:
        """The model as Ollama's ``/api/tags`` lists one (``api.ListModelResponse``)."""
        return {
            "name": self.model,
            "model": self.model,
            "modified_at": _MODIFIED_AT,
            "size": 0,
            "digest": "0" * 64,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": "mock",
                "families": ["mock"],
                "parameter_size": "0B",
                "quantization_level": "none",
            },
        }
