"""The server's Prometheus metrics: parsing, increases over the window (resets as Prometheus'
``increase()``), histogram quantiles, the engines' names -> our canonical view."""

from __future__ import annotations

import pytest

from llm_locust.metrics.server import ENGINES, ServerMetricsError, Window, parse, quantile, recognise

VLLM = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="m"}} {running}
vllm:num_requests_running{{engine="1",model_name="m"}} {running1}
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}
# TYPE vllm:{kv} gauge
vllm:{kv}{{engine="0",model_name="m"}} {usage}
vllm:{kv}{{engine="1",model_name="m"}} 0.1
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="m"}} {gen}
# TYPE vllm:generation_tokens_created gauge
vllm:generation_tokens_created{{engine="0",model_name="m"}} 1.7e9
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{engine="0",model_name="m"}} {prompt}
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{{engine="0",model_name="m"}} {prompt}
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{{engine="0",model_name="m"}} {hits}
# TYPE vllm:request_queue_time_seconds histogram
vllm:request_queue_time_seconds_bucket{{engine="0",le="0.1",model_name="m"}} {b1}
vllm:request_queue_time_seconds_bucket{{engine="0",le="0.5",model_name="m"}} {b2}
vllm:request_queue_time_seconds_bucket{{engine="0",le="+Inf",model_name="m"}} {b3}
vllm:request_queue_time_seconds_sum{{engine="0",model_name="m"}} {qsum}
vllm:request_queue_time_seconds_count{{engine="0",model_name="m"}} {b3}
"""


def vllm(t: float, *, kv: str = "kv_cache_usage_perc", **values: float) -> str:
    base = dict(
        running=3, running1=1, waiting=0, usage=0.25, gen=0, prompt=0, hits=0, b1=0, b2=0, b3=0, qsum=0
    )
    return VLLM.format(kv=kv, **{**base, **values})


def window(*pages: str) -> Window:
    w = Window()
    for t, text in enumerate(pages):
        w.add(parse(text, float(t)))
    return w


def test_counters_increase_over_the_window_and_resets_count_as_prometheus_does() -> None:
    # 100 -> 150 (+50) -> 20: a restart, all 20 since it -> 45 (+25): 95 over the window
    w = window(*(vllm(0, gen=g) for g in (100, 150, 20, 45)))
    engine = recognise(w.last) if w.last else None
    assert engine is not None and engine.name == "vllm"
    got = w.canonical(engine)
    assert got["generation_tokens"] == 95
    assert w.duration_s == 3.0 and w.polls == 4
    # the creation timestamps are not series of their own
    assert not any("_created" in k for k in (*w.increases, *w.gauges))


def test_gauges_sum_over_engines_and_kv_cache_takes_the_fullest() -> None:
    w = window(
        vllm(0, running=3, running1=5, usage=0.5),
        vllm(1, running=7, running1=0, waiting=4, usage=0.75),
        vllm(2, running=0, running1=2),
    )
    got = w.canonical(recognise(w.first) if w.first else None)
    # the sum at each poll: 8, 7, 2 (not the sums of each engine's own min and max)
    assert got["running"] == {"last": 2.0, "min": 2.0, "max": 8.0}
    assert got["waiting"] == {"last": 0.0, "min": 0.0, "max": 4.0}
    assert got["kv_cache_usage"] == {"last": 0.25, "min": 0.25, "max": 0.75}


def test_old_vllm_kv_cache_name_is_accepted() -> None:
    w = window(vllm(0, kv="gpu_cache_usage_perc", usage=0.4))
    assert w.canonical(ENGINES[0])["kv_cache_usage"]["last"] == 0.4


def test_prefix_cache_hit_rate_and_histogram_from_bucket_increases() -> None:
    w = window(
        vllm(0, prompt=1000, hits=500, b1=5, b2=5, b3=5, qsum=0.1),  # before: left out of the window
        vllm(1, prompt=1400, hits=800, b1=15, b2=35, b3=45, qsum=8.1),
    )
    got = w.canonical(ENGINES[0])
    assert got["prefix_cache_queries"] == 400 and got["prefix_cache_hits"] == 300
    assert got["prefix_cache_hit_rate"] == 0.75
    queue = got["latency"]["queue"]
    assert queue["count"] == 40 and queue["mean_ms"] == pytest.approx(200.0)
    # 10 in (0, 0.1], 20 in (0.1, 0.5], 10 above: p50's rank 20 is half-way into the second bucket
    assert queue["p50_ms"] == pytest.approx(300.0)
    assert queue["p99_ms"] == pytest.approx(500.0)  # in +Inf: the highest finite bound
    assert "prefill" not in got["latency"]  # not exposed: absent, not zero


def test_quantile_is_prometheus_histogram_quantile() -> None:
    buckets = [(1.0, 10.0), (2.0, 10.0), (4.0, 20.0), (float("inf"), 20.0)]
    assert quantile(0.25, buckets) == pytest.approx(0.5)
    assert quantile(0.5, buckets) == pytest.approx(1.0)
    assert quantile(0.75, buckets) == pytest.approx(3.0)
    assert quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_a_series_new_in_the_window_counts_from_its_first_poll() -> None:
    first = "# TYPE a_total counter\na_total 5\n# TYPE n_max counter\nn_max 3\n"
    later = '# TYPE a_total counter\na_total 9\n# TYPE b_total counter\nb_total{x="1"} 40\n'
    last = '# TYPE a_total counter\na_total 10\n# TYPE b_total counter\nb_total{x="1"} 42\n'
    w = window(first, later, last)
    # n_max is a counter without _total (llama.cpp has one): under its own name
    assert w.series()["counters"] == {"a_total": 5, 'b_total{x="1"}': 2, "n_max": 0}
    assert recognise(w.last) is None if w.last else False
    assert w.canonical(None) == {}


def test_llama_cpp_names_and_its_cached_prompt_tokens() -> None:
    page = (
        "# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total {p}\n"
        "# TYPE llamacpp:prompt_tokens_cached_total counter\nllamacpp:prompt_tokens_cached_total {c}\n"
        "# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total {g}\n"
        "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing {r}\n"
        "# TYPE llamacpp:requests_deferred gauge\nllamacpp:requests_deferred 0\n"
    )
    w = window(page.format(p=10, c=0, g=5, r=0), page.format(p=40, c=90, g=105, r=2))
    engine = recognise(w.first) if w.first else None
    assert engine is not None and engine.name == "llama.cpp"
    got = w.canonical(engine)
    assert got["generation_tokens"] == 100 and got["prompt_tokens"] == 30
    assert got["prefix_cache_hit_rate"] == pytest.approx(90 / 120)  # 30 computed + 90 cached
    assert got["running"]["max"] == 2.0
    assert got["preemptions"] is None and got["kv_cache_usage"] is None and got["latency"] == {}


@pytest.mark.parametrize(
    "text",
    ["<html><body>Login</body></html>", '{"status": "ok"}', "", "# only a comment\n", "hello world"],
)
def test_what_is_not_prometheus_text_is_one_line_error(text: str) -> None:
    with pytest.raises(ServerMetricsError) as info:
        parse(text, 0.0)
    message = str(info.value)
    assert message.startswith("not Prometheus text format") and "\n" not in message


def test_reports_show_nothing_extra_without_server_metrics() -> None:
    from llm_locust.reports import server as server_report

    assert server_report.lines({}) == [] and server_report.html_section({}) == ""
    assert not server_report.has_series([{"server_running": None, "server_kv_cache_usage": None}])
    assert server_report.has_series([{"server_running": None}, {"server_running": 0.0}])


def test_sglang_names() -> None:
    page = (
        '# TYPE sglang:num_running_reqs gauge\nsglang:num_running_reqs{{dp_rank="0"}} {r}\n'
        'sglang:num_running_reqs{{dp_rank="1"}} 1\n'
        '# TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs{{dp_rank="0"}} 2\n'
        '# TYPE sglang:token_usage gauge\nsglang:token_usage{{dp_rank="0"}} 0.5\n'
        '# TYPE sglang:prompt_tokens_total counter\nsglang:prompt_tokens_total{{dp_rank="0"}} {p}\n'
        '# TYPE sglang:cached_tokens_total counter\nsglang:cached_tokens_total{{dp_rank="0"}} {c}\n'
        '# TYPE sglang:generation_tokens_total counter\nsglang:generation_tokens_total{{dp_rank="0"}} {g}\n'
    )
    w = window(page.format(r=3, p=100, c=0, g=10), page.format(r=5, p=300, c=50, g=90))
    engine = recognise(w.first) if w.first else None
    assert engine is not None and engine.name == "sglang"
    got = w.canonical(engine)
    assert got["running"] == {"last": 6.0, "min": 4.0, "max": 6.0} and got["waiting"]["last"] == 2.0
    assert got["kv_cache_usage"]["max"] == 0.5 and got["generation_tokens"] == 80
    assert got["prefix_cache_hit_rate"] == pytest.approx(50 / 200)  # SGLang's prompt tokens include cached
