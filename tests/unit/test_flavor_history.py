"""A conversation's history in each API's own request shape: the system message where the API wants
it, then the user turns and the server's answers in order (the next turn's request)."""

from __future__ import annotations

import orjson
import pytest

from llm_locust.flavors import FLAVORS, flavor
from llm_locust.flavors.base import RequestOptions, Sample

HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "Seven."},
    {"role": "user", "content": "Another?"},
]
TURNS = [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "Seven."},
         {"role": "user", "content": "Another?"}]  # fmt: skip


@pytest.mark.parametrize("api", list(FLAVORS))
def test_history_in_each_api_s_shape(api: str) -> None:
    body = orjson.loads(flavor(api).request(Sample(messages=HISTORY, max_tokens=9), RequestOptions("m")).body)
    if api in ("openai-chat", "ollama-chat"):
        assert body["messages"] == HISTORY
    elif api == "anthropic-messages":
        assert body["system"] == "Be brief." and body["messages"] == TURNS
    elif api == "openai-responses":
        assert body["instructions"] == "Be brief." and body["input"] == TURNS
    elif api == "openai-completions":  # one prompt: the conversation's text in order
        assert body["prompt"] == "Be brief.\n\nName a prime.\n\nSeven.\n\nAnother?"
    else:  # ollama-generate: the system apart, the turns as one prompt
        assert body["system"] == "Be brief." and body["prompt"] == "Name a prime.\n\nSeven.\n\nAnother?"
