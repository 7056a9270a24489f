"""What the mock reports about prompts, in every flavor: prompt tokens equal to the tokenizer's count
of the input text, the prefix cache's cached tokens in each API's own field (streamed and whole), the
``short`` fault's answers, and ``--record-prompts``' counts. In-process on port 0, as
test_mock_flavors.py (whose readers these tests use)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from test_mock_flavors import NAMES, Mock, count, exchange, summary

from llm_locust.mock.cache import PrefixCache
from llm_locust.mock.engine import WORDS, Engine, Timing
from llm_locust.mock.faults import short_tokens
from llm_locust.mock.prompts import digest

BLOCK = 16


def words(n: int, start: int = 0) -> str:
    """A text of exactly ``n`` cl100k_base tokens (the mock's own one-token words)."""
    return "".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def body(
    name: str, turns: list[tuple[str, str]], n: int = 3, **extra: Any
) -> tuple[str, dict[str, str], bytes]:
    """(path, headers, body) of a request of flavor ``name`` whose conversation is ``turns`` ((role,
    text) pairs), no system prompt; completions and generate send the conversation's text as one
    prompt."""
    messages = [{"role": role, "content": text} for role, text in turns]
    text = "".join(t for _, t in turns)
    routes: dict[str, tuple[str, dict[str, Any]]] = {
        "openai-chat": ("/v1/chat/completions", {"messages": messages, "max_tokens": n,
                                                 "stream_options": {"include_usage": True}}),
        "openai-completions": ("/v1/completions", {"prompt": text, "max_tokens": n,
                                                   "stream_options": {"include_usage": True}}),
        "openai-responses": ("/v1/responses", {"input": messages, "max_output_tokens": n}),
        "ollama-chat": ("/api/chat", {"messages": messages, "options": {"num_predict": n}}),
        "ollama-generate": ("/api/generate", {"prompt": text, "options": {"num_predict": n}}),
        "anthropic-messages": ("/v1/messages", {"messages": messages, "max_tokens": n}),
    }  # fmt: skip
    path, fields = routes[name]
    headers = {"anthropic-version": "2023-06-01"} if name == "anthropic-messages" else {}
    return path, headers, orjson.dumps({"model": "mock", "stream": True, **fields, **extra})


def send(m: Mock, name: str, turns: list[tuple[str, str]], **extra: Any) -> Any:
    """The stream's Summary, or the whole answer's JSON object when ``stream`` is False."""
    path, headers, data = body(name, turns, **extra)
    raw = exchange(m.port, data, path, headers)
    assert raw.status == 200, raw.body[:300]
    return orjson.loads(raw.body) if extra.get("stream") is False else summary(name, raw.body)


def usage_of(name: str, obj: Any) -> dict[str, Any]:
    """The usage object of a whole answer, or of the stream event that carries the prompt's usage."""
    if name == "openai-responses":
        return dict((obj.get("response") or obj)["usage"])
    if name == "anthropic-messages" and obj.get("type") == "message_start":
        return dict(obj["message"]["usage"])
    if name.startswith("ollama"):
        return {k: v for k, v in obj.items() if k.startswith("prompt_eval") or "cache" in k}
    return dict(obj["usage"])


def usage_event(name: str, s: Any) -> Any:
    if name in ("openai-chat", "openai-completions"):
        return next(o for o in s.objs if o.get("usage"))
    if name == "openai-responses":
        return s.objs[-1]
    return s.objs[0] if name == "anthropic-messages" else s.objs[-1]


def cached_of(name: str, usage: dict[str, Any]) -> int | None:
    """The cached prompt tokens in the API's own field; None where it has none (or it is absent)."""
    if name in ("openai-chat", "openai-completions"):
        details = usage.get("prompt_tokens_details")
        return None if details is None else int(details["cached_tokens"])
    if name == "openai-responses":
        return int(usage["input_tokens_details"]["cached_tokens"])
    if name == "anthropic-messages":
        assert usage["cache_creation_input_tokens"] == 0
        return int(usage["cache_read_input_tokens"])
    assert set(usage) == {"prompt_eval_count", "prompt_eval_duration"}  # Ollama: no cache field
    return None


def prompt_of(name: str, usage: dict[str, Any]) -> int:
    key = {"openai-responses": "input_tokens", "anthropic-messages": "input_tokens"}.get(
        name, "prompt_tokens"
    )
    return int(usage["prompt_eval_count" if name.startswith("ollama") else key])


def streamed(m: Mock, name: str, turns: list[tuple[str, str]]) -> tuple[int, int | None, str]:
    """(prompt tokens, cached tokens, answer text) of one streamed request."""
    s = send(m, name, turns)
    usage = usage_of(name, usage_event(name, s))
    return prompt_of(name, usage), cached_of(name, usage), s.text


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    with Mock(Engine("fixed", Timing(ttft_ms=2, itl_ms=1)), record_prompts=True) as m:
        yield m


# -- prompt tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_single_turn_prompt_of_n_tokens_reports_n_prompt_tokens(mock: Mock, name: str) -> None:
    mock.server.reset()
    for text in (words(100), "Hello, world! Ünïcode, numbers 12345 and\nnew lines.", "x"):
        assert streamed(mock, name, [("user", text)])[0] == count(text)
        assert prompt_of(name, usage_of(name, send(mock, name, [("user", text)], stream=False))) == count(
            text
        )
    assert count(words(100)) == 100


# -- the prefix cache ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_repeated_prompt_reports_its_whole_blocks_cached(mock: Mock, name: str) -> None:
    mock.server.reset()
    cache = None if name.startswith("ollama") else 0
    first, again, other = words(40), words(40), words(40, start=20)
    assert streamed(mock, name, [("user", first)])[:2] == (40, cache)
    assert streamed(mock, name, [("user", again)])[:2] == (40, None if cache is None else 32)
    assert streamed(mock, name, [("user", other)])[:2] == (40, cache)  # another prompt: nothing cached
    shares = words(20) + words(30, start=50)  # its first block is the first prompt's
    assert streamed(mock, name, [("user", shares)])[:2] == (50, None if cache is None else BLOCK)
    answer = send(mock, name, [("user", first)], stream=False)  # the whole answer reports it too
    assert cached_of(name, usage_of(name, answer)) == (None if cache is None else 32)
    served = mock.server.snapshot()["served"]  # the mock counts them whether the API reports them or not
    assert served["cached_prompt_tokens"] == 32 + BLOCK + 32 and served["prompt_tokens"] == 40 * 4 + 50


@pytest.mark.parametrize("name", NAMES)
def test_a_conversations_second_turn_has_the_first_turns_blocks_cached(mock: Mock, name: str) -> None:
    mock.server.reset()
    question = words(37)
    tokens, cached, answer = streamed(mock, name, [("user", question)])
    assert tokens == 37 and answer
    turns = [("user", question), ("assistant", answer), ("user", words(9, start=30))]
    tokens, cached, _ = streamed(mock, name, turns)
    assert tokens == count("".join(t for _, t in turns)) == 37 + 3 + 9
    assert cached == (None if name.startswith("ollama") else 32)  # the question's 2 whole blocks


@pytest.mark.parametrize("name", NAMES)
def test_prefix_cache_block_0_reports_nothing_cached(name: str) -> None:
    with Mock(Engine("fixed", Timing(ttft_ms=2, itl_ms=1)), prefix_cache_block=0) as m:
        for _ in range(2):
            _, cached, _ = streamed(m, name, [("user", words(40))])
        whole = usage_of(name, send(m, name, [("user", words(40))], stream=False))
        assert "cached_prompt_tokens" not in m.server.snapshot()["served"]
    zero = {"openai-responses": 0, "anthropic-messages": 0}.get(name)  # chat: no prompt_tokens_details
    assert cached == cached_of(name, whole) == zero


def test_the_cache_forgets_a_prompts_last_blocks_first_and_keeps_models_apart() -> None:
    cache = PrefixCache(4, capacity_blocks=4)
    a, b = list(range(12)), list(range(100, 112))  # 3 blocks each
    assert cache.hit(cache.block_hashes("m", a)) == 0 and cache.hit(cache.block_hashes("m", b)) == 0
    assert len(cache) == 4  # a's last two blocks went first: what is left of it is a prefix
    assert cache.hit(cache.block_hashes("m", a)) == 4
    assert cache.hit(cache.block_hashes("m", a[:11])) == 8  # 2 whole blocks of 11 tokens, both known
    assert cache.hit(cache.block_hashes("other", a)) == 0
    assert cache.block_hashes("m", a[:3]) == [] and cache.hit([]) == 0
    with pytest.raises(ValueError, match="--prefix-cache-block must be >= 1"):
        PrefixCache(0)


# -- short answers --------------------------------------------------------------------------------------
STOPPED = {"openai-responses": ("status", "completed"), "anthropic-messages": ("stop_reason", "end_turn")}


@pytest.mark.parametrize("name", NAMES)
def test_a_short_whole_answer_stops_by_itself_with_the_usage_of_what_it_sent(mock: Mock, name: str) -> None:
    mock.server.reset()
    for n in (7, 1):
        obj = send(mock, name, [("user", "hi")], n=n, stream=False, mock_fault="short")
        if name == "openai-responses":
            text = "".join(p["text"] for item in obj["output"] for p in item["content"])
            out = obj["usage"]["output_tokens"]
        elif name == "anthropic-messages":
            text, out = obj["content"][0]["text"], obj["usage"]["output_tokens"]
        elif name.startswith("ollama"):
            text = obj["message"]["content"] if name == "ollama-chat" else obj["response"]
            out = obj["eval_count"]
        else:
            choice = obj["choices"][0]
            text = choice["message"]["content"] if name == "openai-chat" else choice["text"]
            out = obj["usage"]["completion_tokens"]
        key, value = STOPPED.get(
            name, ("done_reason" if name.startswith("ollama") else "finish_reason", "stop")
        )
        assert (obj if key in obj else obj["choices"][0])[key] == value
        assert count(text) == out == short_tokens(n) == (n + 1) // 2
    mine = mock.server.snapshot()["served_by_flavor"][name]
    assert (mine["injected:short"], mine["ok"], mine["output_tokens"]) == (2, 2, 4 + 1)


# -- what the mock received ------------------------------------------------------------------------------
def test_record_prompts_counts_each_requests_last_user_message(mock: Mock) -> None:
    mock.server.reset()
    one, two = words(5), words(6, start=3)
    for name in NAMES:
        send(mock, name, [("user", one)])
    for name in ("openai-chat", "openai-responses", "ollama-chat", "anthropic-messages"):
        send(mock, name, [("user", one), ("assistant", "ok"), ("user", two)], stream=False)
    path, headers, data = body("openai-chat", [("user", two)], mock_fault="http_500")
    assert exchange(mock.port, data, path, headers).status == 500  # refused by a fault: still received
    served = mock.get("/mock/stats")["served"]
    assert served["prompts"] == {digest(one): 6, digest(two): 5} and served["requests"] == 11
    assert digest(one) == hashlib.sha256(one.encode()).hexdigest()[:16]
    with Mock(Engine("fixed", Timing(ttft_ms=2, itl_ms=1))) as m:  # not recorded unless asked
        send(m, "openai-chat", [("user", one)])
        assert "prompts" not in m.server.snapshot()["served"]
