"""llm-locust: a Locust plugin for load-testing LLM inference servers.

Importing this package defines nothing heavy: the public names below are loaded on first use
(so ``llm-locust mock`` does not import Locust), and options and listeners are registered by
:func:`install`, which defining an :class:`LLMUser` subclass calls for you.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The package's version: the one source, which pyproject.toml reads ([tool.setuptools.dynamic]).
__version__ = "0.1.0"

if TYPE_CHECKING:
    from llm_locust.errors import ConfigError, LLMFailure
    from llm_locust.locust.plugin import install, set_level
    from llm_locust.locust.shape import LadderShape
    from llm_locust.locust.state import state_of
    from llm_locust.locust.user import LLMUser
    from llm_locust.metrics.records import RequestRecord
    from llm_locust.workload.seed import seed_messages

_EXPORTS = {
    "ConfigError": "llm_locust.errors",
    "LLMFailure": "llm_locust.errors",
    "LLMUser": "llm_locust.locust.user",
    "LadderShape": "llm_locust.locust.shape",
    "RequestRecord": "llm_locust.metrics.records",
    "install": "llm_locust.locust.plugin",
    "seed_messages": "llm_locust.workload.seed",
    "set_level": "llm_locust.locust.plugin",
    "state_of": "llm_locust.locust.state",
}

__all__ = [
    "ConfigError",
    "LLMFailure",
    "LLMUser",
    "LadderShape",
    "RequestRecord",
    "install",
    "seed_messages",
    "set_level",
    "state_of",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_locust' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
