"""Workloads through headless Locust against the mock engine: exact synthetic input lengths, every
sample sent once across workers, conversations that carry the server's answers, short outputs
counted, the prefix cache measured per flavor, per-turn results, and a bad dataset line named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from capture import start_capture_server
from conftest import LOCUSTFILES, run_locust

from llm_locust.flavors import FLAVORS

FAST = ("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "2")


def test_synthetic_prompts_have_exactly_the_input_tokens_asked_for(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FAST)
    run = run_locust(tmp_path, mock.url, "-u", "4", "-r", "4", "-t", "3s", "--stop-timeout", "5", "--model",
                     "mock", "--dataset", "synthetic", "--input-tokens", "100:300", "--output-tokens", "8",
                     "--ignore-eos")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["completed"] > 20
    # the mock counts a prompt with cl100k_base, the run's tokenizer: no request differs
    assert res["input_tokens_checked"] == res["completed"] and res["input_tokens_mismatched"] == 0
    assert res["total_output_tokens"] == 8 * res["completed"] and res["short_outputs"] == 0
    assert res["metadata"]["dataset"]["source"] == "synthetic"
    assert 100 * res["completed"] <= res["total_input_tokens"] <= 300 * res["completed"]


def test_every_sample_is_sent_once_over_two_workers_in_sequential_order(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FAST, "--record-prompts")
    run = run_locust(tmp_path, mock.url, "--processes", "2", "-u", "6", "-r", "6", "-t", "3s",
                     "--stop-timeout", "5", "--model", "mock", "--dataset", "synthetic",
                     "--input-tokens", "32", "--num-samples", "5000", "--max-tokens", "4")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["metadata"]["workers"] == 2
    prompts = mock.stats()["prompts"]
    sent = res["completed"] + res["failed"] + res["cancelled"]
    assert 50 < sent < 5000  # fewer than the dataset: sequential order never repeats a sample
    assert sum(prompts.values()) == sent and set(prompts.values()) == {1}


def test_a_conversation_carries_the_server_s_actual_answers(tmp_path: Path) -> None:
    capture = start_capture_server()
    try:
        run = run_locust(tmp_path, capture.url, "-u", "1", "-t", "2s", "--stop-timeout", "5", "--model", "m",
                         "--dataset", "synthetic", "--turns", "3", "--input-tokens", "16",
                         "--num-samples", "50")  # fmt: skip
        chats = capture.chats()
    finally:
        capture.close()
    assert run.returncode == 0, run.output[-3000:]
    bodies = [json.loads(c.body) for c in chats]
    assert len(bodies) >= 3
    first, second, third = bodies[:3]
    assert [m["role"] for m in first["messages"]] == ["user"]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert [m["role"] for m in third["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    answer = second["messages"][1]["content"]
    assert answer and answer == third["messages"][1]["content"]  # what the server streamed, kept
    assert second["messages"][0] == first["messages"][0] and second["messages"][2] != first["messages"][0]
    res = run.results
    assert res is not None and {t["turn"] for t in res["turns"]} == {1, 2, 3}
    assert "Per turn" in run.output


def test_short_answers_are_counted_and_warned_about(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FAST, "--output-tokens", "40")
    run = run_locust(tmp_path, mock.url, "-u", "2", "-r", "2", "-t", "2s", "--stop-timeout", "5", "--model",
                     "mock", "--max-tokens", "40", "--extra-body", '{"mock_fault": "short"}')  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["completed"] > 5 and res["failed"] == 0
    assert res["short_outputs"] == res["completed"] == mock.stats()["injected:short"]
    assert res["short_outputs_by_finish"] == {"stop": res["completed"]}
    assert "short of what they asked for" in run.output


@pytest.mark.parametrize("api", list(FLAVORS))
def test_the_prefix_cache_is_read_where_the_api_reports_it(tmp_path: Path, mock_engine, api: str) -> None:
    mock = mock_engine(*FAST, "--output-tokens", "4")
    run = run_locust(tmp_path, mock.url, "-u", "2", "-r", "2", "-t", "2s", "--stop-timeout", "5", "--model",
                     "mock", "--api", api, "--dataset", "synthetic", "--input-tokens", "200",
                     "--shared-prefix-tokens", "128")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["completed"] > 5
    if api.startswith("ollama"):  # Ollama's API has no cached-token field
        assert res["cached_share"] is None
    else:
        # every prompt shares its first 128 tokens: 8 blocks of 16; all but the first request hit them
        assert res["cached_input_tokens"] == 128 * (res["completed"] - 1)
        assert res["cached_share"] == pytest.approx(128 * (res["completed"] - 1) / res["total_input_tokens"])
        assert "Prefix cache:" in run.output


def test_a_bad_dataset_line_stops_the_run_in_one_line(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FAST)
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hi"}\n{"messages": "not a list"}\n')
    run = run_locust(
        tmp_path, mock.url, "-u", "1", "-t", "5s", "--model", "mock", "--dataset", f"jsonl:{data}"
    )
    assert run.returncode == 1
    assert f"--dataset jsonl:{data} line 2" in run.output
    assert "Traceback" not in run.output and mock.stats().get("requests", 0) == 0


def test_the_seed_locustfile_uses_the_seed_dataset(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FAST, "--output-tokens", "4")
    run = run_locust(tmp_path, mock.url, "-t", "3s", "--levels", "1,2", "--level-duration", "1", "--model",
                     "mock", locustfile=LOCUSTFILES / "seed_benchmark.py")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["metadata"]["dataset"]["source"] == "seed"


@pytest.mark.parametrize("api", list(FLAVORS))
def test_conversations_in_every_flavor_reuse_the_cache_on_later_turns(
    tmp_path: Path, mock_engine, api: str
) -> None:
    """Two-turn conversations in each API: per-turn results, and (where the API reports it) the
    second turn's history found in the mock's prefix cache, the first turn's unique prompt not."""
    mock = mock_engine(*FAST, "--output-tokens", "8")
    run = run_locust(tmp_path, mock.url, "-u", "2", "-r", "2", "-t", "3s", "--stop-timeout", "5", "--model",
                     "mock", "--api", api, "--dataset", "synthetic", "--turns", "2", "--input-tokens", "64",
                     "--num-samples", "500")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["failed"] == 0
    turns = {t["turn"]: t for t in res["turns"]}
    assert set(turns) == {1, 2} and turns[2]["completed"] > 3
    if api.startswith("ollama"):
        assert turns[2]["cached_share"] is None
    else:
        assert turns[1]["cached_share"] == 0  # unique prompts: no whole block in common
        assert turns[2]["cached_share"] > 0.4  # the first turn's 64 tokens (4 blocks) of its history
