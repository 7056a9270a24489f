"""``llm-locust mock``: an OpenAI-compatible server for demos and tests (no GPU).

A minimal HTTP/1.1 server on gevent: keep-alive, chunked streaming, one greenlet per connection.
Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions`` (streaming and not),
``GET /mock/stats`` (what it served, for exact comparisons), ``POST /mock/reset``.

Fault injection, per request with ``"mock_fault": KIND`` in the body (e.g. via --extra-body) or at
random with ``--fault KIND:PROBABILITY``; :data:`FAULTS` lists them and :data:`FAULT_OUTCOMES` says
what a client should make of each. ``/mock/stats`` counts every fault as it is injected
(``injected:KIND``), so a run can be compared with its client exactly.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import ssl
import struct
import threading
import time
import zlib
from collections import Counter
from typing import Any

import brotli
import gevent
import gevent.ssl
import orjson
from gevent.server import StreamServer

from llm_locust.mock.engine import WORDS, Engine, sleep_until
from llm_locust.wire import rxclock

#: fault -> what it does, and the outcome a client should report (llm-locust's categories).
_FAULTS: dict[str, tuple[str, str]] = {
    "http_500": ("HTTP 500 with a JSON error", "http_5xx"),
    "http_429": ("HTTP 429 with Retry-After", "http_429"),
    "http_400": ("HTTP 400 with a JSON error", "http_4xx"),
    "reset": ("a TCP reset half-way through the stream", "reset_mid_stream"),
    "malformed": ("an event that is not JSON", "bad_event"),
    "error_event": ('an {"error": ...} event half-way', "server_error_event"),
    "stall": ("--stall-s of silence half-way (longer than the client's timeout)", "timeout"),
    "truncated": ("the body ends half-way, without finish_reason or [DONE]", "truncated"),
    "empty": ("a stream without any text", "empty"),
    "redirect": ("HTTP 302 to another host", "http_3xx"),
    "html": ("200 with an HTML login page", "not_a_stream"),
    "no_stream": ('one JSON completion, ignoring "stream": true', "ok"),
    "gzip": ("the stream gzip-compressed (one flush per event)", "ok"),
    "deflate": ("the stream deflate-compressed (one flush per event)", "ok"),
    "br": ("the stream brotli-compressed (one flush per event)", "ok"),
    "slow_headers": ("a status line, then --stall-s of silence", "timeout"),
    "huge_event": ("an event line of 2 MiB", "bad_event"),
    "huge_headers": ("a header of 2 MiB", "connect"),
}
FAULTS: tuple[str, ...] = tuple(_FAULTS)
#: fault -> the outcome a client should report for it ("ok": it must still read the answer)
FAULT_OUTCOMES: dict[str, str] = {kind: outcome for kind, (_what, outcome) in _FAULTS.items()}
FAULT_HELP = "; ".join(f"{kind}: {what}" for kind, (what, _outcome) in _FAULTS.items())
_COMPRESSED = ("gzip", "deflate", "br")
_HUGE_EVENT_BYTES = 2 << 20
_LOGIN_PAGE = b"<html><body><h1>Login required</h1><form action='/login'></form></body></html>"
_MAX_BODY = 16 * 1024 * 1024
_STATUS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class _PromptCounter:
    """cl100k_base counts of prompts, loaded in a thread at start-up and cached per prompt."""

    def __init__(self) -> None:
        self._encode: Any = None
        self._ready = threading.Event()
        self._cache: dict[str, int] = {}
        threading.Thread(target=self._load, daemon=True).start()

    def _load(self) -> None:
        try:
            from llm_locust.workload.tokenizer import load_tokenizer

            self._encode = load_tokenizer("cl100k_base").count
        finally:
            self._ready.set()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        self._ready.wait(timeout_s)

    def count(self, text: str) -> int:
        n = self._cache.get(text)
        if n is None:
            while not self._ready.is_set():
                gevent.sleep(0.01)
            n = self._encode(text) if self._encode else len(text.split())
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[text] = n
        return n


class MockServer:
    def __init__(
        self,
        engine: Engine,
        *,
        model: str = "mock",
        faults: dict[str, float] | None = None,
        stall_s: float = 30.0,
        seed: int | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.faults = faults or {}
        self.stall_s = stall_s
        self.stats: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)
        self._prompts = _PromptCounter()
        self._server: StreamServer | None = None
        self._tls: ssl.SSLContext | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, host: str, port: int, tls: tuple[str, str] | None = None) -> int:
        """Bind and start serving in the background (after the prompt tokenizer has loaded);
        ``tls``: (certificate file, key file) to serve HTTPS."""
        self._prompts.wait_ready()
        if tls:
            self._tls = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(certfile=tls[0], keyfile=tls[1])
        self._server = StreamServer((host, port), self._handle, backlog=4096)
        self._server.start()
        with contextlib.suppress(OSError):  # accepted sockets inherit it: requests are stamped on arrival
            self._server.socket.setsockopt(socket.SOL_SOCKET, rxclock.SO_TIMESTAMPNS, 1)
        return int(self._server.server_port)

    def serve_forever(self) -> None:
        assert self._server is not None
        self._server.serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=1)

    # -- HTTP ------------------------------------------------------------------------------------
    def _handle(self, sock: socket.socket, _addr: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):  # e.g. a client that does not trust the certificate
                sock.close()
                return
        conn = _Connection(sock)
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
                    self._send_json(sock, 413, {"error": {"message": "body too large"}}, close=True)
                    return
                body = conn.read(length) if length else b""
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                if not self._route(sock, method, target.split("?", 1)[0], body, arrived) or not keep:
                    return
        except OSError:
            return
        finally:
            sock.close()

    def _route(self, sock: socket.socket, method: str, path: str, body: bytes, arrived_s: float) -> bool:
        """Serve one request; return False when the connection must close."""
        if method == "GET" and path == "/health":
            return self._send_json(sock, 200, {"status": "ok"})
        if method == "GET" and path == "/v1/models":
            data = [{"id": self.model, "object": "model", "owned_by": "llm-locust-mock"}]
            return self._send_json(sock, 200, {"object": "list", "data": data})
        if method == "GET" and path == "/mock/stats":
            return self._send_json(sock, 200, self.snapshot())
        if method == "POST" and path == "/mock/reset":
            self.stats.clear()
            return self._send_json(sock, 200, {"reset": True})
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(sock, body, arrived_s)
        return self._send_json(sock, 404, {"error": {"message": f"no route {method} {path}"}})

    def snapshot(self) -> dict[str, Any]:
        return {
            "served": dict(self.stats),
            "running": self.engine.running,
            "waiting": self.engine.waiting,
        }

    @staticmethod
    def _send_json(
        sock: socket.socket, status: int, obj: Any, *, close: bool = False, extra: str = ""
    ) -> bool:
        return MockServer._send(sock, status, orjson.dumps(obj), "application/json", close=close, extra=extra)

    @staticmethod
    def _send(
        sock: socket.socket, status: int, payload: bytes, media: str, *, close: bool = False, extra: str = ""
    ) -> bool:
        head = (
            f"HTTP/1.1 {status} {_STATUS.get(status, 'Error')}\r\nContent-Type: {media}\r\n"
            f"Content-Length: {len(payload)}\r\n{extra}"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
        )
        sock.sendall(head.encode("latin-1") + payload)
        return not close

    # -- chat completions ------------------------------------------------------------------------
    def _pick_fault(self, req: dict[str, Any]) -> str | None:
        fault = req.get("mock_fault")
        if not fault:
            for kind, prob in self.faults.items():
                if self._rng.random() < prob:
                    fault = kind
                    break
        if fault:
            self.stats[f"injected:{fault}"] += 1
            return str(fault)
        return None

    def _chat(self, sock: socket.socket, body: bytes, arrived_s: float) -> bool:
        try:
            req = orjson.loads(body)
            messages = req["messages"]
            prompt = "".join(str(m.get("content") or "") for m in messages)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.stats["bad_request"] += 1
            return self._send_json(sock, 400, {"error": {"message": "body must be JSON with 'messages'"}})
        fault = self._pick_fault(req)
        self.stats["requests"] += 1
        if fault in ("http_500", "http_429", "http_400"):
            self.stats[fault] += 1
            self.stats["responses"] += 1
            status = int(fault[5:])
            extra = "Retry-After: 1\r\n" if status == 429 else ""
            err = {"message": f"mock fault {fault}", "type": "mock", "code": status}
            return self._send_json(sock, status, {"error": err}, extra=extra)
        if fault == "redirect":
            self.stats["responses"] += 1
            extra = "Location: http://127.0.0.1:9/v1/chat/completions\r\n"
            return self._send(sock, 302, b"", "text/plain", extra=extra)
        if fault == "html":
            self.stats["responses"] += 1
            return self._send(sock, 200, _LOGIN_PAGE, "text/html; charset=utf-8")
        if fault == "huge_headers":
            sock.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: ")
            for _ in range(_HUGE_EVENT_BYTES // 65536):
                sock.sendall(b"h" * 65536)
            return False
        if fault == "slow_headers":
            sock.sendall(b"HTTP/1.1 200 OK\r\n")
            gevent.sleep(self.stall_s)
            return False
        requested = req.get("max_completion_tokens") or req.get("max_tokens")
        n_tokens = self.engine.output_tokens(requested)
        prompt_tokens = self._prompts.count(prompt)
        rid = f"chatcmpl-mock-{next(self._ids)}"
        if not req.get("stream") or fault == "no_stream":
            return self._complete(sock, rid, n_tokens, prompt_tokens, fault, arrived_s)
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        try:
            outcome = self._stream(sock, rid, n_tokens, prompt_tokens, include_usage, fault, arrived_s)
        except OSError:
            self.stats["aborted"] += 1  # the client went away mid-stream
            return False
        if outcome in _COMPRESSED:
            outcome = "ok"  # a client that decodes it reads a normal stream
        self.stats[outcome] += 1
        self.stats["responses"] += 1
        if outcome == "ok":
            self.stats["output_tokens"] += n_tokens
            self.stats["prompt_tokens"] += prompt_tokens
        return outcome in ("ok", "truncated", "malformed", "error_event", "empty", "stall")

    def _complete(
        self, sock: socket.socket, rid: str, n: int, prompt_tokens: int, fault: str | None, arrived_s: float
    ) -> bool:
        with self.engine.admitted(arrived_s) as start:
            at = start
            for at, _ in zip(self.engine.schedule(start), range(n), strict=False):  # noqa: B007 (last one)
                pass
            sleep_until(at)
        text = "".join(WORDS[i % len(WORDS)] for i in range(n))
        self.stats["ok"] += 1
        self.stats["output_tokens"] += n
        self.stats["prompt_tokens"] += prompt_tokens
        return self._send_json(
            sock,
            200,
            {
                "id": rid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": n,
                    "total_tokens": prompt_tokens + n,
                },
            },
        )

    def _stream(
        self,
        sock: socket.socket,
        rid: str,
        n: int,
        prompt_tokens: int,
        include_usage: bool,
        fault: str | None,
        arrived_s: float,
    ) -> str:
        """Write one SSE stream; return the outcome counted in /mock/stats."""
        coding = fault if fault in _COMPRESSED else None
        out = _Encoder(coding)
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            + (b"Content-Encoding: %s\r\n" % coding.encode() if coding else b"")
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        prefix = (
            f'data: {{"id":"{rid}","object":"chat.completion.chunk","created":{int(time.time())},'
            f'"model":"{self.model}","choices":[{{"index":0,"delta":'
        ).encode()
        role = prefix + b'{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
        sock.sendall(head + _chunk(out.encode(role)))
        fault_at = n // 2
        # prefill starts when the request reached the socket, or later once it holds a slot
        with self.engine.admitted(arrived_s) as start:
            if fault == "empty":
                n = 0
            offset = hash(rid) % len(WORDS)
            for k, at in zip(range(n), self.engine.schedule(start), strict=False):
                if fault is not None and k == fault_at:
                    result = self._fault_mid_stream(sock, fault)
                    if result is not None:
                        return result
                sleep_until(at)
                self.stats["tokens_sent"] += 1
                late = time.perf_counter() - at
                if late > 0.005:
                    self.stats["tokens_late_over_5ms"] += 1
                    if k == 0:
                        self.stats["first_tokens_late_over_5ms"] += 1
                if late > 0.02:
                    self.stats["tokens_late_over_20ms"] += 1
                word = WORDS[(offset + k) % len(WORDS)]
                sock.sendall(
                    _chunk(
                        out.encode(
                            prefix + b'{"content":"' + word.encode() + b'"},"logprobs":null,'
                            b'"finish_reason":null}]}\n\n'
                        )
                    )
                )
        tail = prefix + b'{},"logprobs":null,"finish_reason":"' + (b"length" if n else b"stop") + b'"}]}\n\n'
        if include_usage:
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": n,
                "total_tokens": prompt_tokens + n,
            }
            tail += (
                f'data: {{"id":"{rid}","object":"chat.completion.chunk","model":"{self.model}",'
                f'"choices":[],"usage":{orjson.dumps(usage).decode()}}}\n\n'
            ).encode()
        sock.sendall(_chunk(out.encode(tail + b"data: [DONE]\n\n") + out.finish()) + b"0\r\n\r\n")
        return fault or "ok"

    def _fault_mid_stream(self, sock: socket.socket, fault: str) -> str | None:
        if fault == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST: the client sees a connection reset mid-stream
            return "reset"
        if fault == "truncated":
            sock.sendall(b"0\r\n\r\n")  # a clean end of body, without finish_reason or [DONE]
            return "truncated"
        if fault == "malformed":
            sock.sendall(_chunk(b'data: {"choices": [{"delta": {"content": "x"\n\n'))
        elif fault == "error_event":
            err = {"error": {"message": "mock error event", "type": "server_error", "code": 500}}
            sock.sendall(_chunk(b"data: " + orjson.dumps(err) + b"\n\n"))
        elif fault == "stall":
            gevent.sleep(self.stall_s)
        elif fault == "huge_event":
            piece = b"x" * 65536
            sock.sendall(_chunk(b'data: {"choices": [{"delta": {"content": "'))
            for _ in range(_HUGE_EVENT_BYTES // len(piece)):
                sock.sendall(_chunk(piece))
            return "huge_event"  # the client gave up on the line; the rest is not sent
        return None


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Encoder:
    """A stream's Content-Encoding, flushed after every write so that each event goes out at once
    (as a server that compresses event streams must)."""

    def __init__(self, coding: str | None) -> None:
        self.coding = coding
        if coding == "br":
            self._br = brotli.Compressor()
        elif coding is not None:
            self._z = zlib.compressobj(wbits=31 if coding == "gzip" else 15)

    def encode(self, data: bytes) -> bytes:
        if self.coding is None:
            return data
        if self.coding == "br":
            return self._br.process(data) + self._br.flush()  # type: ignore[no-any-return]
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        if self.coding is None:
            return b""
        if self.coding == "br":
            return self._br.finish()  # type: ignore[no-any-return]
        return self._z.flush()


class _Connection:
    """A connection's bytes, read with the kernel's receive time, so that a request's schedule starts
    when it reached the socket even when this process was busy and read it late."""

    __slots__ = ("arrived_s", "buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.arrived_s = time.perf_counter()  # of the first bytes of the request being read

    def _fill(self) -> bool:
        ancdata: list[tuple[int, int, bytes]] = []
        if isinstance(self.sock, ssl.SSLSocket | gevent.ssl.SSLSocket):  # TLS: no recvmsg, no rx times
            data = self.sock.recv(65536)
        else:
            data, ancdata, _flags, _addr = self.sock.recvmsg(65536, rxclock.CMSG_SPACE)
        if not data:
            return False
        if not self.buf:
            self.arrived_s = rxclock.corrected(time.perf_counter(), rxclock.receive_ns(ancdata))
        self.buf += data
        return True

    def readline(self, limit: int) -> bytes:
        """One line with its LF (at most ``limit`` bytes); what is left at the end of the stream."""
        buf = self.buf
        while True:
            i = buf.find(b"\n", 0, limit)
            n = i + 1 if i >= 0 else limit if len(buf) >= limit else 0
            if n or not self._fill():
                n = n or len(buf)
                line = bytes(buf[:n])
                del buf[:n]
                return line

    def read(self, n: int) -> bytes:
        while len(self.buf) < n and self._fill():
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out
