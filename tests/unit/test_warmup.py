"""--warmup in a closed loop, where each process decides: requests sent within its seconds of the
test start, or this process's share of its first requests, go into the time series only."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from fakes import make_record

from llm_locust.locust.budget import share_of
from llm_locust.locust.load_options import LoadConfig
from llm_locust.locust.state import LLMState
from llm_locust.metrics.records import CANCELLED, RequestRecord


def state_with(load: LoadConfig) -> LLMState:
    state = LLMState(None)
    state.config = SimpleNamespace(load=load)  # type: ignore[assignment]
    return state


def cancelled_sent_at(sent_s: float) -> RequestRecord:  # recorded with no Locust environment
    return dataclasses.replace(make_record(), outcome=CANCELLED, sent_at_s=sent_s, ended_at_s=sent_s + 1)


def test_seconds_from_this_process_s_start_are_left_out() -> None:
    state = state_with(LoadConfig(warmup_s=2.0))
    state.started_at_perf_s = 1000.0
    for sent in (1000.1, 1001.9, 1002.0, 1005.0):
        state.record(cancelled_sent_at(sent))
    assert state.aggregate.counts["warmup_excluded"] == 2
    assert state.aggregate.counts["cancelled"] == 2  # the two after the warm-up count
    assert state.timeseries._current.counts["cancelled"] == 4  # the time series keeps them all


def test_a_share_of_the_first_requests_is_left_out() -> None:
    state = state_with(LoadConfig(warmup_requests=5))
    state.warmup_share = share_of(5, 1, 2) or 0  # the second of two processes: 2 of the 5
    for _ in range(4):
        state.record(cancelled_sent_at(1.0))
    assert state.warmup_share == 2
    assert state.aggregate.counts["warmup_excluded"] == 2 and state.aggregate.counts["cancelled"] == 2
    assert [share_of(5, i, 2) for i in range(2)] == [3, 2] and share_of(None, 0, 3) is None


def test_an_explicit_decision_wins_and_no_warmup_counts_everything() -> None:
    state = state_with(LoadConfig())
    state.record(cancelled_sent_at(1.0))
    state.record(cancelled_sent_at(1.0), warmup=True)  # an open-loop arrival within its warm-up
    assert state.aggregate.counts["warmup_excluded"] == 1 and state.aggregate.counts["cancelled"] == 1
