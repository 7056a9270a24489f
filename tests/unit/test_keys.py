"""Where the API key may go (llm_locust.locust.keys), decided without any server."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llm_locust.locust.keys import (
    RESOLVED,
    SECRET_PLACEHOLDER,
    KeyBinding,
    key_of,
    origin,
    resolve,
    resolve_for_test,
)

HOME = "https://api.example.test/v1"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://API.example.test/v1", ("https", "api.example.test", 443)),
        ("https://api.example.test:443", ("https", "api.example.test", 443)),
        ("http://127.0.0.1:8000/", ("http", "127.0.0.1", 8000)),
        ("http://[::1]:8000", ("http", "::1", 8000)),
        ("", None),
        ("not a url", None),
        ("http://host:notaport", None),
    ],
)
def test_origin(url: str, expected: tuple[str, str, int] | None) -> None:
    assert origin(url) == expected


@pytest.mark.parametrize("value", ["", None, SECRET_PLACEHOLDER, "sk-start"])
def test_the_startup_key_goes_to_its_host_only(value: str | None) -> None:
    binding = KeyBinding("sk-start", HOME)
    assert resolve(value, "https://api.example.test/other/prefix", binding).key == "sk-start"
    for elsewhere in (
        "http://api.example.test/v1",
        "https://api.example.test:8443/v1",
        "https://evil.test/v1",
    ):
        held = resolve(value, elsewhere, binding)
        assert held.key == "" and f"sent only to {HOME}" in held.note and elsewhere in held.note


def test_a_key_of_the_form_is_sent_to_the_forms_host() -> None:
    assert resolve("sk-form", "https://evil.test", KeyBinding("sk-start", HOME)).key == "sk-form"
    assert resolve("sk-form", "https://evil.test", KeyBinding("", None)).key == "sk-form"


def test_without_a_startup_host_the_startup_key_goes_nowhere() -> None:
    held = resolve(SECRET_PLACEHOLDER, "https://any.test", KeyBinding("sk-start", None))
    assert held.key == "" and "none was" in held.note


def test_no_key_no_note() -> None:
    assert resolve("", "https://any.test", KeyBinding("", HOME)) == resolve(
        "", "https://any.test", KeyBinding("", None)
    )
    assert resolve("", "https://any.test", KeyBinding("", HOME)).note == ""


def test_the_environment_key_is_a_startup_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    binding = KeyBinding.at_startup("", HOME)
    assert binding.key == "sk-env" and "sk-env" not in repr(binding)
    assert resolve("", "https://evil.test", binding).key == ""


def test_workers_use_the_owners_decision_not_their_own_key(monkeypatch: pytest.MonkeyPatch) -> None:
    options = SimpleNamespace(api_key=SECRET_PLACEHOLDER)
    resolved = resolve_for_test(options, "https://evil.test", KeyBinding("sk-start", HOME))
    assert resolved.key == "" and options.api_key == "" and getattr(options, RESOLVED) is True
    monkeypatch.setenv("OPENAI_API_KEY", "sk-worker-env")  # a worker's own key is not used
    assert key_of(options, "https://evil.test", KeyBinding("sk-worker", "https://evil.test")) == ""
