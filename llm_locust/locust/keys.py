"""Where the API key may go: only to the host it was given for.

A key given at start-up (``--api-key``, ``LOCUST_API_KEY``, a config file, or ``$OPENAI_API_KEY``)
is bound to the ``--host`` given at start-up, compared by origin (scheme, host, port: a path
prefix such as ``/v1`` may differ). Locust's web UI form can change the host for the next test;
the start-up key then stays behind (the run goes without a key and says so) unless the form
supplies a key of its own, which is the form user's to send. Without a start-up host, a start-up
key goes nowhere until one is given.

The process that owns a test (a single process, or the master) decides once per test, at test
start, and writes the result into the options it sends to its workers (Locust sends every option
to them with each spawn message), marked resolved; workers use it as it is and never fall back to a
key of their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: Shown in the web UI form instead of the start-up key; submitting it means "the start-up key".
SECRET_PLACEHOLDER = "********"
#: The attribute of the parsed options that says the key in them was resolved by the owner of the test.
RESOLVED = "llm_api_key_resolved"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | None) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, lower case, the default port filled in; None if none."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port


@dataclass(frozen=True)
class KeyBinding:
    """The key given at start-up and the host it was given for."""

    key: str = field(repr=False)
    host: str | None

    @classmethod
    def at_startup(cls, option_value: str | None, host: str | None) -> KeyBinding:
        value = option_value if option_value and option_value != SECRET_PLACEHOLDER else ""
        return cls(value or os.environ.get("OPENAI_API_KEY", ""), host)


@dataclass(frozen=True)
class Resolved:
    """The key one test sends (``""``: none) and, when the start-up key was held back, why."""

    key: str = field(repr=False)
    note: str = ""


def resolve(value: str | None, host: str | None, binding: KeyBinding) -> Resolved:
    """The key for a test against ``host``, given the option's ``value`` now (from the command line,
    or the form: the placeholder or nothing means "the start-up key")."""
    if value and value != SECRET_PLACEHOLDER and value != binding.key:
        return Resolved(value)  # the form's own key, for the form's host
    if not binding.key:
        return Resolved("")
    bound = origin(binding.host)
    if bound is not None and bound == origin(host):
        return Resolved(binding.key)
    where = f"only to {binding.host}" if binding.host else "only to the --host given at start-up (none was)"
    return Resolved(
        "",
        f"the API key given at start-up is sent {where}; this test's host {host} gets no key "
        "(enter a key for it in the form to send one)",
    )


def resolve_for_test(options: Any, host: str | None, binding: KeyBinding) -> Resolved:
    """On the owner of a test: decide the test's key and put it into ``options`` for the workers."""
    resolved = resolve(options.api_key, host, binding)
    options.api_key = resolved.key
    setattr(options, RESOLVED, True)
    return resolved


def key_of(options: Any, host: str | None, binding: KeyBinding | None) -> str:
    """The key a test's requests carry: the owner's decision when the options carry one, else
    this process's own start-up binding (a test started without a plugin-managed start)."""
    if getattr(options, RESOLVED, False):
        return str(options.api_key or "")
    if binding is None:
        binding = KeyBinding.at_startup(options.api_key, host)
    return resolve(options.api_key, host, binding).key
