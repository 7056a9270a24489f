"""Records made on a fake clock, for tests of everything that reads them (metrics, reports)."""

from __future__ import annotations

from llm_locust.metrics.records import RequestRecord, RequestTimer


class FakeClock:
    """A perf_counter that moves only when a test moves it."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make_record(
    ttft_ms: float = 200.0,
    gaps_ms: tuple[float, ...] = (20.0, 30.0, 10.0),
    tokens: int = 4,
    reasoning_first: int = 0,
) -> RequestRecord:
    """A successful request sent at t=100 s: headers 5 ms later, the first text event ``ttft_ms``
    after the send, then one event per gap; events before ``reasoning_first`` are reasoning."""
    clock = FakeClock()
    timer = RequestTimer(clock)
    clock.t += 0.005
    timer.headers()
    at = 100.0 + ttft_ms / 1000
    timer.text(at, visible=reasoning_first == 0)
    for i, gap in enumerate(gaps_ms, start=1):
        at += gap / 1000
        timer.text(at, visible=i >= reasoning_first)
    clock.t = at + 0.001
    return timer.finish(
        "ok",
        done_at_s=at + 0.0005,
        output_tokens=tokens,
        output_tokens_source="usage",
        input_tokens=7,
        input_tokens_source="usage",
    )
