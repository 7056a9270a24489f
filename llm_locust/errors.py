"""Exceptions of llm-locust.

ConfigError
    An option has a value we cannot use; the message names the option and says what is expected.
"""


class ConfigError(ValueError):
    """Raised for a bad option value; its message is shown to the user as one line."""


class LLMFailure(Exception):
    """A failed request as Locust reports it; ``str()`` is ``"<category>: <detail>"``."""

    def __init__(self, category: str, detail: str) -> None:
        super().__init__(f"{category}: {detail}" if detail else category)
        self.category = category
