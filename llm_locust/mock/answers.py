"""One request to a flavor's route: the faults that come before an answer, the whole answer, and the
stream on the engine's schedule. Counted in ``/mock/stats`` (totals and per flavor) as they happen.

The flavor only reads the request and writes bytes; everything that makes answers comparable across
flavors lives here: the engine's admission and absolute schedule, the words (one cl100k_base token
each, the first ``--reasoning-tokens`` of them reasoning), where each fault strikes, the prompt's
tokens and those the prefix cache had, and what is counted.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import gevent
import orjson

from llm_locust.mock.engine import WORDS, sleep_until
from llm_locust.mock.faults import COMPRESSED, HTTP_ERRORS, short_tokens
from llm_locust.mock.flavors.base import Ask, BadRequest, MockFlavor, Reply, StreamWriter
from llm_locust.mock.httpio import END, Encoder, chunk, send, send_json, stream_head

if TYPE_CHECKING:
    from llm_locust.mock.server import MockServer

_HUGE_EVENT_BYTES = 2 << 20
_LOGIN_PAGE = b"<html><body><h1>Login required</h1><form action='/login'></form></body></html>"
#: outcomes after which the connection can serve another request
_KEEPS_CONNECTION = ("ok", "truncated", "malformed", "error_event", "empty", "stall")


def answer(
    srv: MockServer,
    sock: socket.socket,
    flavor: MockFlavor,
    body: bytes,
    headers: Mapping[str, str],
    arrived_s: float,
) -> bool:
    """Serve one request of ``flavor``; return False when the connection must close."""
    name = flavor.name
    try:
        req = orjson.loads(body)
        ask = flavor.ask(req, headers)
    except orjson.JSONDecodeError:
        return _refuse(srv, sock, flavor, BadRequest(400, "body must be JSON"))
    except BadRequest as exc:
        return _refuse(srv, sock, flavor, exc)
    fault = srv.pick_fault(name, req)
    srv.count(name, "requests")
    srv.record(ask.last_user)
    if fault is not None and _before_answer(srv, sock, flavor, fault):
        return fault in HTTP_ERRORS or fault in ("redirect", "html")
    n = srv.engine.output_tokens(ask.max_tokens)
    streamed = ask.stream and fault != "no_stream"
    if streamed and fault == "empty":
        n = 0
    if fault == "short":  # streamed or whole: the answer ends by itself, early
        n = short_tokens(n)
    prompt_tokens, cached_tokens = srv.prompt_tokens(str(req.get("model") or srv.model), ask.prompt)
    reply = Reply(
        rid=f"{flavor.id_prefix}mock-{next(srv.ids)}",
        model=srv.model,
        created=int(time.time()),
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        n_tokens=n,
        n_reasoning=min(srv.reasoning_tokens, n) if flavor.reasoning else 0,
        arrived_s=arrived_s,
        stopped=fault == "short",
    )
    if not streamed:
        return _whole(srv, sock, flavor, ask, reply)
    try:
        outcome = _stream(srv, sock, flavor, ask, reply, fault)
    except OSError:
        srv.count(name, "aborted")  # the client went away mid-stream
        return False
    if outcome in COMPRESSED or outcome == "short":
        outcome = "ok"  # a client that decodes it reads a normal stream (short: a shorter one)
    srv.count(name, outcome)
    srv.count(name, "responses")
    if outcome == "ok":
        _count_usage(srv, name, reply)
    return outcome in _KEEPS_CONNECTION


def _count_usage(srv: MockServer, name: str, reply: Reply) -> None:
    """An ok answer's usage, in /mock/stats (cached prompt tokens only when there are some)."""
    srv.count(name, "output_tokens", reply.n_tokens)
    srv.count(name, "prompt_tokens", reply.prompt_tokens)
    if reply.cached:
        srv.count(name, "cached_prompt_tokens", reply.cached)
    if srv.metrics is not None:
        srv.metrics.answered(reply)


def _refuse(srv: MockServer, sock: socket.socket, flavor: MockFlavor, exc: BadRequest) -> bool:
    srv.count(flavor.name, "bad_request")
    return send_json(sock, exc.status, flavor.error_body(exc.status, exc.message, fault=False))


def _before_answer(srv: MockServer, sock: socket.socket, flavor: MockFlavor, fault: str) -> bool:
    """The faults that replace the answer; True when ``fault`` was one of them (and was sent)."""
    name = flavor.name
    if fault in HTTP_ERRORS:
        srv.count(name, fault)
        srv.count(name, "responses")
        status = int(fault[5:])
        extra = "Retry-After: 1\r\n" if status == 429 else ""
        send_json(sock, status, flavor.error_body(status, f"mock fault {fault}", fault=True), extra=extra)
    elif fault == "redirect":
        srv.count(name, "responses")
        send(sock, 302, b"", "text/plain", extra=f"Location: http://127.0.0.1:9{flavor.path}\r\n")
    elif fault == "html":
        srv.count(name, "responses")
        send(sock, 200, _LOGIN_PAGE, "text/html; charset=utf-8")
    elif fault == "huge_headers":
        sock.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: ")
        for _ in range(_HUGE_EVENT_BYTES // 65536):
            sock.sendall(b"h" * 65536)
    elif fault == "slow_headers":
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        gevent.sleep(srv.stall_s)
    else:
        return False
    return True


def _whole(srv: MockServer, sock: socket.socket, flavor: MockFlavor, ask: Ask, reply: Reply) -> bool:
    """The whole answer, sent when its last token would have been."""
    n = reply.n_tokens
    with srv.engine.admitted(reply.arrived_s) as start:
        reply.start_s = at = start
        for k, (at, _) in enumerate(zip(srv.engine.schedule(start), range(n), strict=False)):
            if k == 0:
                reply.first_s = at
        sleep_until(at)
    if n:
        reply.last_s = at
    words = [WORDS[i % len(WORDS)] for i in range(n)]
    k = reply.n_reasoning
    srv.count(flavor.name, "ok")
    srv.count(flavor.name, "whole_tokens", n)  # generated, not streamed (/metrics counts them)
    _count_usage(srv, flavor.name, reply)
    return send_json(sock, 200, flavor.whole(reply, ask, "".join(words[:k]), "".join(words[k:])))


def _stream(
    srv: MockServer, sock: socket.socket, flavor: MockFlavor, ask: Ask, reply: Reply, fault: str | None
) -> str:
    """Write one stream; return the outcome counted in /mock/stats."""
    coding = fault if fault in COMPRESSED else None
    out = Encoder(coding)
    writer = flavor.writer(reply, ask)
    first = out.encode(writer.start())
    sock.sendall(stream_head(flavor.media_type, coding) + (chunk(first) if first else b""))
    n = reply.n_tokens
    reasoning = reply.n_reasoning
    fault_at = n // 2
    total, mine = srv.stats, srv.stats_by_flavor[flavor.name]
    # prefill starts when the request reached the socket, or later once it holds a slot
    with srv.engine.admitted(reply.arrived_s) as start:
        reply.start_s = start
        offset = hash(reply.rid) % len(WORDS)
        for k, at in zip(range(n), srv.engine.schedule(start), strict=False):
            if fault is not None and k == fault_at:
                result = _fault_mid_stream(srv, sock, flavor, writer, fault)
                if result is not None:
                    return result
            sleep_until(at)
            now = time.perf_counter()
            total["tokens_sent"] += 1
            mine["tokens_sent"] += 1
            late = now - at
            if late > 0.005:
                srv.count(flavor.name, "tokens_late_over_5ms")
                if k == 0:
                    srv.count(flavor.name, "first_tokens_late_over_5ms")
            if late > 0.02:
                srv.count(flavor.name, "tokens_late_over_20ms")
            if k == 0:
                reply.first_s = now
            reply.last_s = now
            word = WORDS[(offset + k) % len(WORDS)]
            sock.sendall(chunk(out.encode(writer.token(word, k < reasoning))))
    sock.sendall(chunk(out.encode(writer.end()) + out.finish()) + END)
    return fault or "ok"


def _fault_mid_stream(
    srv: MockServer, sock: socket.socket, flavor: MockFlavor, writer: StreamWriter, fault: str
) -> str | None:
    """A fault half-way through the stream: its outcome when the stream ends there, else None."""
    if fault == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST: the client sees a connection reset mid-stream
        return "reset"
    if fault == "truncated":
        sock.sendall(END)  # a clean end of body, before the API's end of stream
        return "truncated"
    if fault == "malformed":
        sock.sendall(chunk(writer.malformed()))
    elif fault == "error_event":
        if flavor.ends_after_error:
            sock.sendall(chunk(writer.error_event()) + END)
            return "error_event"
        sock.sendall(chunk(writer.error_event()))
    elif fault == "stall":
        gevent.sleep(srv.stall_s)
    elif fault == "huge_event":
        piece = b"x" * 65536
        sock.sendall(chunk(writer.huge_event_start()))
        for _ in range(_HUGE_EVENT_BYTES // len(piece)):
            sock.sendall(chunk(piece))
        return "huge_event"  # the client gave up on the line; the rest is not sent
    return None
