"""llm-locust: a Locust plugin for load-testing LLM inference servers.

Importing this package only defines names; options and listeners are registered by
:func:`install`, which defining an :class:`LLMUser` subclass calls for you.
"""

from llm_locust.errors import ConfigError, LLMFailure
from llm_locust.plugin import install, set_level, state_of
from llm_locust.records import RequestRecord
from llm_locust.shape import LadderShape
from llm_locust.user import LLMUser
from llm_locust.workloads import seed_messages

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
