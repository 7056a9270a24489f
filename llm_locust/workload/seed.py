"""Prompt sets shipped with the package."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def _seed() -> tuple[str, str]:
    return package_text("seed_system.txt"), package_text("seed_prompt.txt")


def seed_messages() -> list[dict[str, str]]:
    """The seed benchmark's messages: its system message and its ~1,000-token essay prompt."""
    system, prompt = _seed()
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


def package_text(name: str) -> str:
    """A text file shipped in ``llm_locust/data``."""
    return resources.files("llm_locust").joinpath("data", name).read_text(encoding="utf-8")
