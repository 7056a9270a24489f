"""Read batching (llm_locust.wire.batching): on only under load, off for good when tokens of one stream
arrive together or a stream has no kernel timestamps; timers keep their time; a batched read still
stamps each token with its arrival."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import pytest

from llm_locust._native import speedups
from llm_locust.wire import batching, reactor, rxclock

pytestmark = pytest.mark.skipif(speedups.module() is None, reason="llm_locust._native._speedups is not built")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[batching.ReadBatching, list[float]]]:
    set_to: list[float] = []
    monkeypatch.setattr(batching, "_collect_setter", lambda loop: set_to.append)
    b = batching.ReadBatching(gevent.get_hub().loop)
    b._last = (0, 0, 0)
    yield b, set_to
    if b._timer is not None:
        b._timer.stop()


def test_on_under_load_and_off_again_when_load_falls(fake: Any) -> None:
    b, set_to = fake
    b.decide((1000, 4000, 0), 1.0)  # 4,000 tokens/s: not worth it
    assert not b.on and set_to == []
    b.decide((3000, 9000, 0), 1.0)  # 5,000 tokens/s
    assert b.on and set_to == [batching.INTERVAL_S]
    b.decide((4000, 12000, 0), 1.0)  # 3,000 tokens/s: stays on (hysteresis)
    assert b.on
    b.decide((5000, 14000, 0), 1.0)  # 2,000 tokens/s
    assert not b.on and set_to == [batching.INTERVAL_S, 0.0]


def test_it_does_not_start_where_tokens_already_come_together(fake: Any) -> None:
    b, set_to = fake
    b.decide((1000, 10000, 11), 1.0)  # 10,000 tokens/s, but 1.1 % of reads took two or more
    assert not b.on and set_to == [] and b.stopped_because is None
    b.decide((2000, 20000, 21), 1.0)  # 1 %: fine
    assert b.on


def test_tokens_of_one_stream_read_together_stop_it_for_good(fake: Any) -> None:
    b, set_to = fake
    b.decide((1000, 10000, 0), 1.0)
    assert b.on
    b.decide((2000, 20000, 10), 1.0)  # 1 % of reads: still fine
    assert b.on
    b.decide((3000, 30000, 21), 1.0)  # 11 of 1,000 reads
    assert not b.on and set_to[-1] == 0.0
    assert b.stopped_because is not None and "11 of 1000 reads" in b.stopped_because
    b.decide((4000, 90000, 21), 1.0)  # load alone does not bring it back
    assert not b.on


def test_a_stream_without_kernel_timestamps_stops_it(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    b, set_to = fake
    monkeypatch.setattr(reactor, "_unstamped", [False])
    hub: Any = gevent.get_hub()
    monkeypatch.setattr(hub, "llm_locust_reactor", type("R", (), {"batching": b})(), raising=False)
    b.decide((1000, 10000, 0), 1.0)
    assert b.on
    reactor.read_unstamped()
    assert not b.on and "kernel receive timestamps" in str(b.stopped_because)
    # a reactor created afterwards in this process starts without batching
    monkeypatch.setattr(hub, "llm_locust_reactor", None)
    monkeypatch.setattr(batching, "_collect_setter", lambda loop: set_to.append)
    assert reactor.Reactor(hub).batching.stopped_because is not None  # type: ignore[union-attr]


@pytest.fixture
def collecting() -> Iterator[float]:
    """The real event loop with a 50 ms collect interval (back to 0 afterwards)."""
    setter = batching._collect_setter(gevent.get_hub().loop)
    if setter is None:
        pytest.skip("not gevent's libev loop")
    setter(0.05)
    yield 0.05
    setter(0.0)


def test_timers_keep_their_time_while_reads_are_collected(collecting: float) -> None:
    late = []
    for _ in range(5):
        t = time.perf_counter()
        gevent.sleep(0.005)
        late.append(time.perf_counter() - t - 0.005)
    assert max(late) < 0.004  # not up to the 50 ms collect interval


def test_a_collected_read_still_stamps_each_event_with_its_arrival(collecting: float) -> None:
    """The body reads the event up to 50 ms late, and stamps it when it reached the socket."""
    server = socket.create_server(("127.0.0.1", 0))
    client = rxclock.create_tcp_socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    client.connect(server.getsockname())
    peer, _ = server.accept()
    body = speedups.module().Body(client.fileno(), True)
    arrived = gevent.event.Event()
    got: list[Any] = []
    body.notify = lambda events: (got.extend(events), arrived.set())
    watcher = gevent.get_hub().loop.io(client.fileno(), 1)
    watcher.start(body.pump)
    try:
        read_late = []
        for i in range(3):
            arrived.clear()
            gevent.sleep(0.002)  # the loop polls, then may sleep up to the interval
            chunk = b"data: not a chunk %d\n\n" % i  # handed to Python (notify), with its stamp
            sent_at = time.perf_counter()
            peer.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            arrived.wait()  # no timer of ours meanwhile: the loop sleeps the whole interval
            read_late.append(time.perf_counter() - sent_at)
            _name, data, at = got[-1]
            assert data == f"not a chunk {i}"
            assert -0.0005 < at - sent_at < 0.002
        assert max(read_late) > 0.02  # the reads were indeed held back by the interval
    finally:
        watcher.stop()
        body.notify = None
        for s in (client, peer, server):
            s.close()


def test_pump_counts_the_text_events_each_read_brought_python_s_too() -> None:
    """Two tokens in one read count as coalesced, also when Python records them (reasoning tokens
    are not plain chunks: they reach notify and come back through body.text)."""
    a, b = socket.socketpair()
    b.setblocking(False)
    body = speedups.module().Body(b.fileno(), True)
    body.notify = lambda events: [body.text(at, False, "r") for _n, d, at in events if "reasoning" in d]
    plain = b'data: {"choices":[{"delta":{"content":"t"}}]}\n\n'
    reasoning = b'data: {"choices":[{"delta":{"reasoning_content":"r"}}]}\n\n'
    try:
        for event in (plain, reasoning):
            frame = b"%x\r\n%s\r\n" % (len(event), event)
            before = speedups.module().read_counts()
            a.sendall(frame * 2)  # one write: one read brings both
            body.pump()
            after = speedups.module().read_counts()
            assert [x - y for x, y in zip(after, before, strict=True)] == [1, 2, 1]
            a.sendall(frame)
            body.pump()
            assert [x - y for x, y in zip(speedups.module().read_counts(), after, strict=True)] == [1, 1, 0]
        body.pump()  # nothing waiting: not a read
        assert body.timing()[0] == 6
    finally:
        body.notify = None
        a.close()
        b.close()
