"""vLLM's top-level result keys, the per-second peaks behind two of them, and the report paths."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

from fakes import make_record

from llm_locust.load import arrivals
from llm_locust.locust.bench_keys import bench_keys
from llm_locust.locust.load_options import LoadConfig
from llm_locust.locust.outputs import report_files
from llm_locust.locust.paths import tagged
from llm_locust.metrics.peaks import Peaks

RES = {"completed": 90, "failed": 7, "cancelled": 3, "request_goodput": None}


CLOSED = LoadConfig()


def keys(load: LoadConfig = CLOSED, **kw: object) -> dict[str, object]:
    args: dict[str, object] = {
        "api": "openai-chat",
        "model": "m",
        "tokenizer": "cl100k_base",
        "load": load,
        "started_wall_s": 1_700_000_000.0,
        "peak_users": 32,
        "peaks": Peaks(),
        "profile": None,
        **kw,
    }
    return bench_keys(dict(RES), **args)  # type: ignore[arg-type]


def test_a_closed_loop_reads_as_vllm_at_an_infinite_rate_with_the_users_as_its_concurrency() -> None:
    k = keys()
    assert k["endpoint_type"] == k["backend"] == k["label"] == "openai-chat"
    assert (k["model_id"], k["tokenizer_id"]) == ("m", "cl100k_base")
    assert k["request_rate"] == "inf" and k["burstiness"] == 1.0
    assert k["max_concurrency"] == 32
    assert k["num_prompts"] == 100  # completed + failed + cancelled
    assert k["request_goodput"] is None
    assert len(str(k["date"])) == len("20231114-221320") and str(k["date"])[8] == "-"


def test_vllm_names_the_completions_api_openai_and_the_others_keep_ours() -> None:
    assert keys(api="openai-completions")["endpoint_type"] == "openai"
    assert keys(api="anthropic-messages")["endpoint_type"] == "anthropic-messages"
    assert keys(profile="nightly")["label"] == "nightly"


def test_open_loop_rates_as_vllm_writes_them() -> None:
    constant = keys(LoadConfig(plan=arrivals.constant(20.0, 0.5), max_concurrency=64, max_requests=500))
    assert (constant["request_rate"], constant["burstiness"], constant["max_concurrency"]) == (20.0, 0.5, 64)
    assert constant["num_prompts"] == 500
    assert keys(LoadConfig(plan=arrivals.constant(float("inf"))))["request_rate"] == "inf"
    ramp = keys(LoadConfig(plan=arrivals.ramp(1.0, 9.0, 60.0, "linear", 20.0)))
    assert (ramp["request_rate"], ramp["ramp_up_strategy"]) == ("inf", "linear")
    assert (ramp["ramp_up_start_rps"], ramp["ramp_up_end_rps"]) == (1.0, 9.0)
    assert ramp["max_concurrency"] is None  # an open loop without --max-concurrency: unbounded
    assert keys(LoadConfig(plan=arrivals.ladder([1.0, 2.0], 10.0)))["request_rate"] is None


def test_tokens_per_second_count_each_token_in_the_second_it_arrived() -> None:
    peaks = Peaks()
    # sent at 1000.5 s: first token 0.2 s later (1000.7), then 3 gaps of 150 ms: 1000.85, 1001.0, 1001.15
    peaks.record(make_record(ttft_ms=200.0, gaps_ms=(150.0, 150.0, 150.0)), sent_wall_s=1000.5)
    assert dict(peaks.tokens_by_s) == {1000: 2, 1001: 2}
    peaks.record(make_record(ttft_ms=100.0, gaps_ms=(10.0,)), sent_wall_s=1001.0)
    assert peaks.max_output_tokens_per_s == 4.0


def test_in_flight_peaks_are_per_second_and_add_up_over_workers() -> None:
    worker = Peaks()
    for n, at in ((1, 10.1), (3, 10.5), (2, 10.9), (1, 11.2)):
        worker.note_in_flight(n, at)
    assert worker.max_concurrent_requests == 3
    worker.record(make_record(), sent_wall_s=10.0)
    master = Peaks()
    master.merge_wire("w1", worker.take_wire())
    assert not worker.tokens_by_s  # sent: a worker forgets its tokens, the master adds them up
    worker.note_in_flight(4, 11.6)  # the same second again in the next report: the master keeps the higher
    master.merge_wire("w1", worker.take_wire())
    other = Peaks()
    other.note_in_flight(5, 11.0)
    master.merge_wire("w2", other.take_wire())
    assert master.max_concurrent_requests == 4 + 5
    assert sum(master.tokens_by_s.values()) == 4


def test_report_paths_take_locusts_tags_and_csv_prefix_adds_the_llm_file() -> None:
    options = SimpleNamespace(num_users=32, spawn_rate=2.5, run_time=60, csv_prefix="out/run")
    assert tagged("r_{u}u_{r}r_{t}s.json", options) == "r_32u_2.5r_60s.json"
    unset = SimpleNamespace(num_users=None, spawn_rate=None, run_time=None)
    assert tagged("r_{t}.json", unset) == "r_{t}.json"
    config = SimpleNamespace(llm_json="a_{u}.json", llm_csv=None, llm_html="h.html")
    files = [(f.kind, f.path) for f in report_files(config, options)]  # type: ignore[arg-type]
    assert files == [("json", "a_32.json"), ("html", "h.html"), ("csv", "out/run_llm.csv")]


def test_tokens_per_second_equal_counting_token_by_token() -> None:
    """Peaks.record counts per second crossed (bisecting the arrival offsets), not per token: the
    same counts as adding each gap and counting each token in its second."""
    rng = random.Random(7)
    for _ in range(500):
        choices = [0.0, rng.random() * 40, rng.random() * 900, 1000.0]
        gaps = tuple(rng.choice(choices) for _ in range(rng.randint(0, 200)))
        rec = make_record(ttft_ms=rng.random() * 2000, gaps_ms=gaps, tokens=len(gaps) + 1)
        sent_s = 1000 + rng.random() * 3
        by_token: Counter[int] = Counter()
        t_s = sent_s + rec.ttft_ms / 1000  # type: ignore[operator]
        by_token[int(t_s)] += 1
        for gap_ms in rec.itl_ms:
            t_s += gap_ms / 1000
            by_token[int(t_s)] += 1
        peaks = Peaks()
        peaks.record(rec, sent_s)
        assert dict(peaks.tokens_by_s) == dict(by_token)
