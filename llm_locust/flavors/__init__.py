"""API flavors: how a request is built and how one streamed event decodes, one module per API.

:data:`FLAVORS` maps each ``--api`` name to its module; :func:`flavor` loads one. A new flavor is
one module with a ``FLAVOR`` object (see :class:`llm_locust.flavors.base.Flavor`), one entry here,
one mock encoder (``llm_locust/mock``) and its tests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from llm_locust.errors import ConfigError

if TYPE_CHECKING:
    from llm_locust.flavors.base import Flavor

#: ``--api`` name -> the module that defines its ``FLAVOR``.
FLAVORS: dict[str, str] = {
    "openai-chat": "llm_locust.flavors.openai_chat",
    "openai-completions": "llm_locust.flavors.openai_completions",
    "openai-responses": "llm_locust.flavors.openai_responses",
    "ollama-chat": "llm_locust.flavors.ollama_chat",
    "ollama-generate": "llm_locust.flavors.ollama_generate",
    "anthropic-messages": "llm_locust.flavors.anthropic_messages",
}
AUTO = "auto"
#: The choices of ``--api``.
API_CHOICES: tuple[str, ...] = (AUTO, *FLAVORS)


def flavor(name: str) -> Flavor:
    """The flavor called ``name``; :class:`ConfigError` naming the choices if there is none."""
    module = FLAVORS.get(name)
    if module is None:
        raise ConfigError(f"--api {name!r} is unknown; choose one of {', '.join(API_CHOICES)}")
    found: Flavor = importlib.import_module(module).FLAVOR
    return found
