"""Prompt sets shipped with the package."""

from __future__ import annotations

import functools

from llm_locust.options import package_text


@functools.cache
def _seed() -> tuple[str, str]:
    return package_text("seed_system.txt"), package_text("seed_prompt.txt")


def seed_messages() -> list[dict[str, str]]:
    """The seed benchmark's messages: its system message and its ~1,000-token essay prompt."""
    system, prompt = _seed()
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
