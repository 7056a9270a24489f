"""Prometheus exposition: prometheus_client's own parser reads it, and its numbers are the aggregate's."""

from __future__ import annotations

import bisect
import random
import socket
import time
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import FakeClock, make_record
from prometheus_client.parser import text_string_to_metric_families

from llm_locust.locust.exporter import exporter_of, install_route, serve_port
from llm_locust.locust.state import LLMState
from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.histogram import Histogram
from llm_locust.metrics.records import RequestTimer
from llm_locust.reports import prometheus


def parse(text: str) -> dict[str, Any]:
    """Family name -> its samples, as (sample name, labels, value)."""
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)
    }


def buckets_of(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    return {labels["le"]: value for name, labels, value in samples if name.endswith("_bucket")}


def one(samples: list[tuple[str, dict[str, str], float]], suffix: str) -> float:
    (value,) = [v for name, _labels, v in samples if name.endswith(suffix)]
    return value


def varied_aggregate(
    seed: int = 7, n: int = 300, agg: Aggregate | None = None
) -> tuple[Aggregate, list[float], list[float]]:
    """Successful requests with TTFTs spread over vLLM's buckets, and their TTFTs and gaps in ms."""
    rng = random.Random(seed)
    agg = Aggregate() if agg is None else agg
    ttfts: list[float] = []
    gaps: list[float] = []
    for _ in range(n):
        ttft = round(rng.lognormvariate(5.0, 1.5), 1)  # ms: 0.1 ms resolution, never on a bound
        if any(abs(ttft - b * 1000) < 2 for b in prometheus.TTFT_BUCKETS_S):
            ttft += 5.0
        these = tuple(round(rng.uniform(3.0, 160.0), 1) + 0.05 for _ in range(rng.randint(1, 6)))
        agg.record(make_record(ttft_ms=ttft, gaps_ms=these, tokens=len(these) + 1))
        ttfts.append(ttft)
        gaps.extend(these)
    return agg, ttfts, gaps


def expected_cumulative(values_ms: list[float], bounds_s: tuple[float, ...]) -> list[int]:
    ordered = sorted(values_ms)
    return [bisect.bisect_right(ordered, b * 1000) for b in bounds_s]


def test_exposition_parses_and_its_numbers_are_the_aggregates() -> None:
    agg, ttfts, gaps = varied_aggregate()
    clock = FakeClock()
    agg.record(RequestTimer(clock).finish("http_5xx", "HTTP 500"))
    agg.record(RequestTimer(clock).finish("timeout", "slow"))
    agg.record(RequestTimer(clock).finish("cancelled"))
    text = prometheus.text(prometheus.totals(agg), prometheus.Live(users=4, in_flight=2, model="m", api="x"))
    fams = parse(text)

    ttft = fams["llm_locust:time_to_first_token_seconds"]
    got = buckets_of(ttft)
    assert list(got) == [repr(b) for b in prometheus.TTFT_BUCKETS_S] + ["+Inf"]
    assert list(got.values())[:-1] == expected_cumulative(ttfts, prometheus.TTFT_BUCKETS_S)
    assert got["+Inf"] == one(ttft, "_count") == 300 == agg.counts["completed"]
    assert one(ttft, "_sum") == pytest.approx(sum(ttfts) / 1000, abs=1e-6)

    itl = fams["llm_locust:inter_token_latency_seconds"]
    assert list(buckets_of(itl).values())[:-1] == expected_cumulative(gaps, prometheus.PER_TOKEN_BUCKETS_S)
    assert one(itl, "_count") == len(gaps) == agg.hist["itl"].count
    e2e = fams["llm_locust:e2e_request_latency_seconds"]
    assert one(e2e, "_count") == 300
    assert one(e2e, "_sum") == pytest.approx(agg.hist["e2el"].total / 1e6)
    tpot = fams["llm_locust:request_time_per_output_token_seconds"]
    assert one(tpot, "_count") == agg.hist["tpot"].count == 300

    assert fams["llm_locust:prompt_tokens"] == [("llm_locust:prompt_tokens_total", {}, 7 * 300)]
    assert one(fams["llm_locust:generation_tokens"], "_total") == agg.counts["total_output_tokens"]
    by_outcome = {labels["outcome"]: v for _n, labels, v in fams["llm_locust:requests"]}
    assert by_outcome == {"ok": 300, "http_5xx": 1, "timeout": 1, "cancelled": 1}
    assert one(fams["llm_locust:users"], "users") == 4
    assert one(fams["llm_locust:num_requests_in_flight"], "in_flight") == 2
    assert "llm_locust:target_requests_per_second" not in fams  # closed loop: no target rate
    assert fams["llm_locust:test_info"] == [("llm_locust:test_info", {"model_name": "m", "api": "x"}, 1.0)]


def test_names_and_buckets_are_vllms() -> None:
    """So that histogram_quantile over ours and over vLLM's panel the same buckets."""
    names = {"llm_locust:" + e.name for e in prometheus.HISTOGRAMS}
    assert names == {
        "llm_locust:time_to_first_token_seconds",
        "llm_locust:inter_token_latency_seconds",
        "llm_locust:request_time_per_output_token_seconds",
        "llm_locust:e2e_request_latency_seconds",
    }
    assert len(prometheus.TTFT_BUCKETS_S) == 22 and prometheus.TTFT_BUCKETS_S[-1] == 2560.0
    assert len(prometheus.PER_TOKEN_BUCKETS_S) == 19 and len(prometheus.E2E_BUCKETS_S) == 21


def test_bucket_counts_merge_exactly_across_workers() -> None:
    one_process, master = Aggregate(), Aggregate()
    for seed in (3, 4):
        varied_aggregate(seed=seed, n=120, agg=one_process)
        worker, _t, _g = varied_aggregate(seed=seed, n=120)
        master.merge_wire(worker.take_delta())
    assert prometheus.totals(master) == prometheus.totals(one_process)
    assert prometheus.totals(master).histograms[0].count == 240


def test_counts_at_or_below_against_brute_force() -> None:
    rng = random.Random(11)
    h = Histogram()
    values = [rng.uniform(0, 5000) for _ in range(2000)] + [0.0, 1.0, 2.047]
    for v in values:
        h.record(v)
    bounds = [0.5, 1.0, 2.0, 10.0, 100.0, 1000.0, 4000.0, 10_000.0]
    got = h.counts_at_or_below(bounds)
    for bound, n in zip(bounds, got, strict=True):
        lo = sum(v <= bound * 0.999 for v in values)  # within the HDR resolution of the bound: either side
        hi = sum(v <= bound * 1.001 for v in values)
        assert lo <= n <= hi, bound
    assert got[-1] == h.count
    assert Histogram().counts_at_or_below(bounds) == [0] * len(bounds)


def fake_state() -> LLMState:
    env = SimpleNamespace(runner=None, parsed_options=None, events=None)
    return LLMState(env)


def test_counters_stay_monotonic_across_a_stats_reset() -> None:
    state = fake_state()
    exporter = exporter_of(state)
    for _ in range(5):
        state.aggregate.record(make_record())
    before = parse(exporter.scrape().decode())
    state.reset()  # what Locust's reset_stats and --reset-stats do
    assert state.aggregate.counts["completed"] == 0
    state.aggregate.record(make_record(ttft_ms=30.0))
    after = parse(exporter.scrape().decode())
    for name in ("llm_locust:requests", "llm_locust:prompt_tokens", "llm_locust:generation_tokens"):
        assert after[name][0][2] > before[name][0][2]
    ttft = after["llm_locust:time_to_first_token_seconds"]
    assert one(ttft, "_count") == 6
    assert buckets_of(ttft)["0.04"] == 1 and buckets_of(ttft)["0.25"] == 6
    assert all(a >= b for a, b in zip(buckets_of(ttft).values(), buckets_of(before[
        "llm_locust:time_to_first_token_seconds"]).values(), strict=True))  # fmt: skip


def test_scrape_cost_with_a_realistic_histogram() -> None:
    """A long run's histograms (wide ITL and TTFT ranges): a scrape must not hold the master's loop."""
    state = fake_state()
    rng = random.Random(5)
    for _ in range(2000):
        gaps = tuple(rng.lognormvariate(3.0, 0.8) for _ in range(64))
        state.aggregate.record(make_record(ttft_ms=rng.lognormvariate(6.5, 1.2), gaps_ms=gaps, tokens=65))
    exporter = exporter_of(state)
    exporter.scrape()
    start = time.perf_counter()
    for _ in range(20):
        exporter.scrape()
    per_scrape_ms = (time.perf_counter() - start) / 20 * 1000
    assert per_scrape_ms < 20, per_scrape_ms


def test_text_format_even_when_the_scraper_prefers_openmetrics() -> None:
    """prometheus_client's OpenMetrics writer would turn the samples' colons into underscores."""
    env = SimpleNamespace(runner=None, parsed_options=SimpleNamespace(web_base_path=""), events=None)
    state = LLMState(env)
    state.aggregate.record(make_record())
    from flask import Flask

    env.web_ui = SimpleNamespace(app=Flask("t"), auth_required_if_enabled=lambda view: view)
    install_route(env, state)
    prometheus_2_accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    resp = env.web_ui.app.test_client().get("/llm/metrics", headers={"Accept": prometheus_2_accept})
    assert resp.content_type == "text/plain; version=0.0.4; charset=utf-8"
    body = resp.get_data(as_text=True)
    assert 'llm_locust:requests_total{outcome="ok"} 1.0' in body and "llm_locust_" not in body


class _Events:
    def __init__(self) -> None:
        self.quit = SimpleNamespace(add_listener=lambda f: None)


def headless_env() -> SimpleNamespace:
    options = SimpleNamespace(web_host="127.0.0.1")
    return SimpleNamespace(runner=None, parsed_options=options, events=_Events())


def test_a_taken_port_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = headless_env()
        with pytest.raises(SystemExit) as exit_info:
            serve_port(env, LLMState(env), port)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    option = f"--llm-prometheus-port {port}"
    assert err == f"llm-locust: error: {option}: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert "\n" not in err


def test_a_port_out_of_range_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    env = headless_env()
    with pytest.raises(SystemExit):
        serve_port(env, LLMState(env), 70000)
    expected = "llm-locust: error: --llm-prometheus-port 70000 is not a TCP port (1-65535)\n"
    assert capsys.readouterr().err == expected


def test_the_port_serves_the_exposition() -> None:
    import urllib.request

    from conftest import free_port

    port = free_port()
    env = headless_env()
    state = LLMState(env)
    state.aggregate.record(make_record())
    serve_port(env, state, port)
    try:  # locust monkey-patched the socket module: this read lets the server's greenlet run
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        state.exporter.server.stop()
    assert one(parse(body.decode())["llm_locust:requests"], "_total") == 1


def test_web_ui_route_behind_the_login_like_our_other_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    from locust.env import Environment

    monkeypatch.setattr("sys.argv", ["locust"])  # Locust's WebUI parses the command line

    for login in (False, True):
        env = Environment()
        env.create_local_runner()
        web_ui = env.create_web_ui("127.0.0.1", 0, web_login=login, delayed_start=True)
        if login:  # what a locustfile using --web-login sets up (Locust's docs)
            web_ui.app.secret_key = "test"
            web_ui.login_manager.user_loader(lambda user_id: None)
        state = LLMState(env)
        state.aggregate.record(make_record())
        install_route(env, state)
        install_route(env, state)  # idempotent
        client = web_ui.app.test_client()
        resp = client.get("/llm/metrics")
        if login:
            assert resp.status_code == 302 and "/login" in resp.headers["Location"]
            continue
        assert resp.status_code == 200 and resp.content_type.startswith("text/plain; version=0.0.4")
        assert one(parse(resp.get_data(as_text=True))["llm_locust:requests"], "_total") == 1
        env.runner.quit()
