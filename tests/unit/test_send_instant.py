"""metrics.md's s_i is taken just before the request is written to the socket: time spent before
that (taking or opening a connection, the client's own event loop) is not the server's latency."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from locust import events
from locust.argument_parser import parse_options
from locust.env import Environment

from llm_locust.locust import plugin
from llm_locust.locust.options import config_from_options
from llm_locust.locust.state import state_of
from llm_locust.locust.user import LLMUser
from llm_locust.mock.engine import Engine, Timing
from llm_locust.mock.server import MockServer


@pytest.fixture
def user() -> Iterator[Any]:
    """An LLMUser in this process, against an in-process mock; Locust's global events are restored
    afterwards (other tests build parsers without llm-locust's options registered)."""
    was_installed = plugin._installed

    class ChatUser(LLMUser):  # registers llm-locust's options on Locust's global events
        pass

    # The mock shares this process's event loop: a full collection of the heap the earlier tests
    # left (a 5 ms pause in the suite, once) would hold its first token. Collected now instead.
    gc.collect()
    server = MockServer(Engine("fixed", Timing(ttft_ms=50, itl_ms=5, output_tokens=5)))
    port = server.start("127.0.0.1", 0)
    host = f"http://127.0.0.1:{port}"
    try:
        env = Environment(user_classes=[ChatUser], events=events, host=host)
        env.parsed_options = parse_options(args=["--model", "mock", "--host", host])
        state_of(env).configure(config_from_options(env.parsed_options, host))
        yield ChatUser(env)
    finally:
        server.stop()
        if not was_installed:
            events.init_command_line_parser.remove_listener(plugin.add_arguments)
            events.init.remove_listener(plugin._on_init)
            plugin._installed = False


def test_time_before_the_request_is_written_is_not_ttft(user: Any) -> None:
    first = user.chat()  # opens the connection
    assert first.ok and first.ttft_ms == pytest.approx(50, abs=5)
    pool = user._connection(user._llm.require_config()).http()._connection_pool
    taken = pool.get_socket

    def slow_pool() -> Any:
        gevent.sleep(0.08)  # e.g. a busy event loop, or a connection being opened
        return taken()

    pool.get_socket = slow_pool
    rec = user.chat()
    assert rec.ok
    assert rec.ttft_ms == pytest.approx(50, abs=5)  # not 130
    assert rec.e2e_ms == pytest.approx(50 + 4 * 5, abs=6)
