"""The reactor that reads every stream of the process: bytes split anywhere, errors, cancellation."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from gevent.server import StreamServer
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

from llm_locust.wire import reactor, rxclock

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)


def events_body(n: int) -> list[bytes]:
    parts = [b'data: {"n": %d, "text": "t%d"}\n\n' % (i, i) for i in range(n)]
    parts.insert(3, b": keep-alive comment\n\n")
    parts.insert(5, b'data: {"multi":\r\ndata: "line"}\r\n\r\n')
    return [*parts, b"data: [DONE]\n\n"]


Script = Callable[[Any], None]


@pytest.fixture
def server() -> Iterator[Callable[[Script], int]]:
    """``server(script)``: a local HTTP server whose handler runs ``script(socket)``; returns its port."""
    servers: list[StreamServer] = []

    def start(script: Script) -> int:
        def handle(sock: Any, _addr: Any) -> None:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += sock.recv(4096)
            script(sock)

        s = StreamServer(("127.0.0.1", 0), handle)
        s.start()
        servers.append(s)
        return int(s.server_port)

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(autouse=True, params=["compiled", "reactor"])
def body_reader(request: Any) -> Iterator[str]:
    """Every test runs with bodies read by llm_locust._native._speedups and by the Python reactor."""
    reactor.choose_reader(request.param)
    yield request.param
    reactor.choose_reader("auto")


def open_response(port: int) -> Any:
    client = HTTPClient("127.0.0.1", port, concurrency=1, network_timeout=None)
    client._connection_pool._create_tcp_socket = rxclock.create_tcp_socket
    response = client.request("POST", "/v1/chat/completions", body=b"{}")
    response.test_untouched = rxclock.end_headers(response._sock)
    assert reactor.usable(response)
    return response


def read(response: Any, on_event: reactor.OnEvent) -> float:
    compiled = reactor.compiled_for(response, response.test_untouched)
    last = reactor.read_events(response, on_event, reactor.new_body(response) if compiled else None)
    compiled = hasattr(response, "llm_locust_body")
    assert compiled == (reactor.reader_in_use() == "compiled")  # the reader under test read it
    return last


def collect(response: Any) -> tuple[list[tuple[str, str, float]], float]:
    got: list[tuple[str, str, float]] = []

    def on_event(name: str, data: str, at: float) -> bool:
        got.append((name, data, at))
        return data == "[DONE]"

    last = read(response, on_event)
    return got, last


def split_writer(payload: bytes, seed: int) -> Script:
    def script(sock: Any) -> None:
        rng = random.Random(seed)
        sock.sendall(HEAD)
        i = 0
        while i < len(payload):
            j = min(len(payload), i + rng.randint(1, 40))
            sock.sendall(payload[i:j])
            gevent.sleep(0.001)
            i = j
        gevent.sleep(0.2)

    return script


@pytest.mark.parametrize("seed", range(6))
def test_events_split_anywhere_arrive_whole_and_in_order(server: Any, seed: int) -> None:
    parts = events_body(20)
    port = server(split_writer(chunked(*parts) + chunked(b""), seed))
    got, _last = collect(open_response(port))
    datas = [d for _n, d, _at in got]
    assert datas[-1] == "[DONE]"
    assert datas[:3] == ['{"n": 0, "text": "t0"}', '{"n": 1, "text": "t1"}', '{"n": 2, "text": "t2"}']
    assert '{"multi":\n"line"}' in datas  # a two-line data field, CRLF endings
    assert len(datas) == 22  # 20 + the multi-line one + [DONE]; the comment is no event
    stamps = [at for _n, _d, at in got]
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] > 0.01  # stamped as they arrived, not when the body ended


def test_event_names_and_a_body_that_ends_without_done(server: Any) -> None:
    body = chunked(b'event: error\ndata: {"x": 1}\n\n', b'data: {"y": 2}\n\n') + chunked(b"")
    port = server(split_writer(body, 1))
    got, last = collect(open_response(port))
    assert [(n, d) for n, d, _at in got] == [("error", '{"x": 1}'), ("message", '{"y": 2}')]
    assert last >= got[-1][2]


def test_connection_closed_mid_body_raises(server: Any) -> None:
    def script(sock: Any) -> None:
        sock.sendall(HEAD + chunked(b'data: {"n": 1}\n\n'))
        gevent.sleep(0.05)
        sock.close()

    port = server(script)
    got: list[str] = []
    with pytest.raises((HTTPParseError, OSError)):
        read(open_response(port), lambda n, d, at: got.append(d) or False)
    assert got == ['{"n": 1}']


def test_consumer_errors_reach_the_caller(server: Any) -> None:
    port = server(split_writer(chunked(*events_body(5)), 2))

    def on_event(name: str, data: str, at: float) -> bool:
        raise ValueError("bad event")

    with pytest.raises(ValueError, match="bad event"):
        read(open_response(port), on_event)


def test_interrupted_wait_unregisters_the_stream(server: Any) -> None:
    def slow(sock: Any) -> None:
        sock.sendall(HEAD + chunked(b'data: {"n": 1}\n\n'))
        gevent.sleep(5)

    port = server(slow)
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.3):
        read(open_response(port), lambda n, d, at: False)
    the = gevent.get_hub().llm_locust_reactor
    assert the.watched == set()
    # the reactor still serves the next stream
    port2 = server(split_writer(chunked(*events_body(3)), 3))
    got, _ = collect(open_response(port2))
    assert got[-1][1] == "[DONE]"


def test_many_streams_at_once_each_get_their_own_events(server: Any) -> None:
    def body(k: int) -> bytes:
        *parts, done = events_body(30)
        return chunked(*parts, b'data: {"server": %d}\n\n' % k, done)

    ports = [server(split_writer(body(k), k)) for k in range(3)]
    jobs = [gevent.spawn(collect, open_response(ports[k % 3])) for k in range(30)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    for k, job in enumerate(jobs):
        got, _ = job.value
        assert len(got) == 33 and got[-1][1] == "[DONE]"
        assert got[-2][1] == f'{{"server": {k % 3}}}'


def test_the_connection_is_reused_after_each_body_even_when_its_end_comes_late(server: Any) -> None:
    """After [DONE] the rest of the body is drained (here it comes 50 ms later), the response's own
    parser sees the end, and the next request goes out on the same connection."""
    connections = []

    def script(sock: Any) -> None:
        connections.append(sock)
        for k in range(3):
            if k:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += sock.recv(4096)
            sock.sendall(HEAD + chunked(*events_body(3)))
            gevent.sleep(0.05)
            sock.sendall(chunked(b""))
        gevent.sleep(0.5)

    port = server(script)
    client = HTTPClient("127.0.0.1", port, concurrency=1, network_timeout=None)
    client._connection_pool._create_tcp_socket = rxclock.create_tcp_socket
    for _ in range(3):
        response = client.request("POST", "/v1/chat/completions", body=b"{}")
        response.test_untouched = rxclock.end_headers(response._sock)
        got, _ = collect(response)
        assert got[-1][1] == "[DONE]" and len(got) == 5
        assert not response.message_complete
        with gevent.Timeout(2):
            reactor.drain(response)
        assert response.message_complete
    assert len(connections) == 1


def test_a_body_that_is_not_chunked_is_parsed_in_python(server: Any, body_reader: str) -> None:
    """The compiled reader takes only chunked bodies; a Content-Length one falls back to the Python
    parser, with the same events."""
    body = b'data: {"n": 1}\n\ndata: [DONE]\n\n'

    def script(sock: Any) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n"
        sock.sendall(head % len(body))
        gevent.sleep(0.02)
        sock.sendall(body)
        gevent.sleep(0.2)

    response = open_response(server(script))
    assert not reactor.compiled_for(response, response.test_untouched)
    got: list[str] = []
    reactor.read_events(response, lambda n, d, at: got.append(d) or d == "[DONE]")
    assert got == ['{"n": 1}', "[DONE]"] and not hasattr(response, "llm_locust_body")
