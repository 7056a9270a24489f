"""What Locust's request event carries to its listeners (locust-plugins' Timescale listener,
locust-cloud): our per-request fields in ``context`` over the User's own, the send's Unix time as
``start_time``, a ``url`` without credentials; and the ids the server sees and sends."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

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
from llm_locust.wire.urls import public_url


class _SeenServer(MockServer):
    """The mock, keeping the x-request-id of each generation request it was sent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_ids: list[str | None] = []

    def _route(self, sock: Any, method: str, path: str, headers: dict[str, str], *rest: Any) -> bool:
        if method == "POST":
            self.request_ids.append(headers.get("x-request-id"))
        return super()._route(sock, method, path, headers, *rest)


@pytest.fixture
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[Any, _SeenServer, list[dict[str, Any]]]]:
    was_installed = plugin._installed
    api = getattr(request, "param", "openai-chat")

    class TenantUser(LLMUser):
        def context(self) -> dict[str, Any]:
            return {"tenant": "blue", "outcome": "the user's, overridden by the request's"}

    gc.collect()
    server = _SeenServer(Engine("fixed", Timing(ttft_ms=20, itl_ms=2, output_tokens=5)))
    port = server.start("127.0.0.1", 0)
    host = f"http://127.0.0.1:{port}"
    seen: list[dict[str, Any]] = []

    def listener(**kw: Any) -> None:
        seen.append(kw)

    events.request.add_listener(listener)
    try:
        env = Environment(user_classes=[TenantUser], events=events, host=host)
        env.parsed_options = parse_options(args=["--model", "mock", "--host", host, "--api", api])
        state_of(env).configure(config_from_options(env.parsed_options, host))
        yield TenantUser(env), server, seen
    finally:
        events.request.remove_listener(listener)
        server.stop()
        if not was_installed:
            events.init_command_line_parser.remove_listener(plugin.add_arguments)
            events.init.remove_listener(plugin._on_init)
            plugin._installed = False


def test_the_request_event_carries_our_fields_start_time_and_url(setup: Any) -> None:
    user, server, seen = setup
    before = time.time()
    recs = [user.chat(), user.chat()]
    assert all(r.ok for r in recs)
    assert len(seen) == 2
    for rec, kw in zip(recs, seen, strict=True):
        ctx = kw["context"]
        assert ctx["tenant"] == "blue"  # the User's context() is merged in
        assert ctx["outcome"] == "ok"  # ... and ours wins where both say
        assert (ctx["ttft_ms"], ctx["tpot_ms"], ctx["e2e_ms"]) == (rec.ttft_ms, rec.tpot_ms, rec.e2e_ms)
        assert (ctx["output_tokens"], ctx["input_tokens"]) == (rec.output_tokens, rec.input_tokens)
        assert ctx["flavor"] == "openai-chat"
        assert ctx["request_id"] == rec.request_id and ctx["response_id"] == rec.response_id
        assert kw["response_time"] == rec.e2e_ms
        assert before <= kw["start_time"] <= before + 5  # the send's Unix time, not the end's
        assert kw["start_time"] < time.time() - rec.e2e_ms / 1000 + 0.005
        assert kw["url"] == user.environment.host + "/v1/chat/completions"
    # the id in the record is the one the server got, unique per request; the server's own id is kept
    assert server.request_ids == [r.request_id for r in recs]
    assert len(set(server.request_ids)) == 2
    assert all(r.response_id and r.response_id.startswith("chatcmpl-") for r in recs)


def test_the_url_never_carries_credentials() -> None:
    assert public_url("https://me:s3cret@api.example.com:8443/v1?key=abc#x", "/v1/chat/completions") == (
        "https://api.example.com:8443/v1/chat/completions"
    )
    assert public_url("http://[::1]:8000", "/api/chat") == "http://[::1]:8000/api/chat"


@pytest.mark.parametrize(
    ("setup", "prefix"),
    [
        ("openai-chat", "chatcmpl-"),
        ("openai-completions", "cmpl-"),
        ("openai-responses", "resp_"),
        ("anthropic-messages", "msg_"),
        ("ollama-chat", None),  # Ollama's API has no answer id
    ],
    indirect=["setup"],
)
def test_the_servers_answer_id_is_kept_per_flavor(setup: Any, prefix: str | None) -> None:
    user, server, _seen = setup
    first, second = user.chat(), user.chat()
    whole = user.chat(stream=False)  # a server that answers in one JSON body
    assert first.ok and second.ok and whole.ok and not whole.streamed
    assert server.request_ids == [first.request_id, second.request_id, whole.request_id]
    if prefix is None:
        assert first.response_id is whole.response_id is None
    else:
        assert all(r.response_id and r.response_id.startswith(prefix) for r in (first, second, whole))
        assert len({first.response_id, second.response_id, whole.response_id}) == 3
