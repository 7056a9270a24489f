"""The open loop's precise sleep: never early, on a timerfd where Linux has one, gevent's otherwise."""

from __future__ import annotations

import random
import sys
import time

import pytest

from llm_locust.locust import timer
from llm_locust.locust.timer import PreciseTimer


@pytest.mark.parametrize("precise", [True, False], ids=["timerfd", "gevent"])
def test_sleep_until_never_returns_before_the_instant(precise: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not precise:
        monkeypatch.setattr(timer, "_libc", lambda: None)
    t = PreciseTimer()
    assert t.precise == (precise and sys.platform.startswith("linux"))
    rng = random.Random(1)
    due = time.perf_counter()
    try:
        for _ in range(200):
            due += rng.choice((0.0002, 0.001, 0.003, 0.008))  # inside and beyond the fine part
            t.sleep_until(due)
            assert time.perf_counter() >= due
        t.sleep_until(due - 1.0)  # an instant passed: at once
    finally:
        t.close()
    assert not t.precise
