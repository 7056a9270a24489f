"""The APIs the mock serves, one module each, by route (see :mod:`.base` for what a flavor is)."""

from __future__ import annotations

from llm_locust.mock.flavors.anthropic_messages import AnthropicMessages
from llm_locust.mock.flavors.base import MockFlavor
from llm_locust.mock.flavors.ollama import OllamaChat, OllamaGenerate
from llm_locust.mock.flavors.openai_chat import OpenAIChat
from llm_locust.mock.flavors.openai_completions import OpenAICompletions
from llm_locust.mock.flavors.openai_responses import OpenAIResponses

#: every flavor, in the order /mock/stats lists them
FLAVORS: tuple[MockFlavor, ...] = (
    OpenAIChat(),
    OpenAICompletions(),
    OpenAIResponses(),
    OllamaChat(),
    OllamaGenerate(),
    AnthropicMessages(),
)
#: POST path -> its flavor
ROUTES: dict[str, MockFlavor] = {flavor.path: flavor for flavor in FLAVORS}

__all__ = ["FLAVORS", "ROUTES", "MockFlavor"]
