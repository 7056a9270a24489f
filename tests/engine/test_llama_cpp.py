"""Against a real engine: llama.cpp's llama-server (built once per machine, see bench/llama_cpp.py)."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LOCUSTFILES, ROOT, TEST_LOCUSTFILES, run_locust

_spec = importlib.util.spec_from_file_location("llama_cpp", ROOT / "bench" / "llama_cpp.py")
assert _spec is not None and _spec.loader is not None
llama_cpp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(llama_cpp)


@pytest.fixture(scope="session")
def engine() -> tuple[Path, Path]:
    """(llama-server binary, random-weight model): built on first use, ~7 min on 2 cores."""
    return llama_cpp.ensure_server(), llama_cpp.ensure_model()


def _serve(engine: tuple[Path, Path], tmp: Path, **kw: Any) -> Iterator[str]:
    proc, url = llama_cpp.start_server(*engine, log=tmp / "server.log", **kw)
    try:
        yield url
    finally:
        llama_cpp.stop_server(proc)


@pytest.fixture(scope="session")
def llama8(engine: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(engine, tmp_path_factory.mktemp("llama8"), parallel=8, ctx=16384)


@pytest.fixture(scope="session")
def llama1(engine: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(engine, tmp_path_factory.mktemp("llama1"), parallel=1, ctx=2048)


NO_CACHE = ["--extra-body", '{"cache_prompt": false}']


def records(tmp_path: Path, url: str, *args: str) -> tuple[list[dict[str, Any]], Any]:
    path = tmp_path / "records.jsonl"
    run = run_locust(tmp_path, url, *args, locustfile=TEST_LOCUSTFILES / "records.py",
                     env={"LLM_RECORDS": str(path)})  # fmt: skip
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return rows, run


def test_counts_and_timings_agree_with_the_server(tmp_path: Path, llama8: str) -> None:
    rows, run = records(tmp_path, llama8, "-u", "1", "-t", "6s", "--stop-timeout", "30",
                        "--max-tokens", "48", *NO_CACHE)  # fmt: skip
    assert run.returncode == 0, run.output
    ok = [r for r in rows if r["outcome"] == "ok"]
    assert len(ok) >= 5 and len(ok) == len(rows)
    for r in ok:
        t = r["server_timings"]
        assert r["output_tokens_source"] == "usage"
        assert r["output_tokens"] == t["predicted_n"] == r["text_events"]  # one chunk per token
        assert r["ttft_ms"] >= t["prompt_ms"]
    ours = statistics.mean(r["tpot_ms"] for r in ok)
    server = statistics.mean(
        r["server_timings"]["predicted_ms"] / r["server_timings"]["predicted_n"] for r in ok
    )
    print(f"\nllama-server, 1 user: our mean TPOT {ours:.2f} ms, server's predicted_ms/n {server:.2f} ms")
    assert ours == pytest.approx(server, rel=0.10)
    res = run.results
    assert res is not None and res["total_output_tokens"] == sum(r["output_tokens"] for r in ok)


def test_ignore_eos_gives_exactly_max_tokens(tmp_path: Path, llama8: str) -> None:
    rows, run = records(tmp_path, llama8, "-u", "4", "-t", "5s", "--stop-timeout", "30",
                        "--max-tokens", "64", "--ignore-eos")  # fmt: skip
    assert run.returncode == 0, run.output
    assert rows and all(r["outcome"] == "ok" and r["output_tokens"] == 64 for r in rows)


def test_one_slot_queues_eight_slots_batch(tmp_path: Path, llama1: str, llama8: str) -> None:
    """The seed's effect on a real engine: 8 users against --parallel 1 and --parallel 8."""
    out = {}
    for name, url in (("parallel 1", llama1), ("parallel 8", llama8)):
        workdir = tmp_path / name.replace(" ", "")
        workdir.mkdir()
        run = run_locust(workdir, url, "-u", "8", "-r", "8", "-t", "10s",
                         "--stop-timeout", "60", "--max-tokens", "32", "--ignore-eos", *NO_CACHE)  # fmt: skip
        assert run.returncode == 0 and run.results is not None, run.output
        out[name] = run.results
    one, eight = out["parallel 1"], out["parallel 8"]
    ttft = f"median TTFT {one['median_ttft_ms']:.0f} ms (1 slot) vs {eight['median_ttft_ms']:.0f} ms (8)"
    tput = f"output {one['output_throughput']:.0f} vs {eight['output_throughput']:.0f} tok/s"
    print(f"\n8 users: {ttft}; {tput}")
    assert one["median_ttft_ms"] > 3 * eight["median_ttft_ms"]  # requests queue for the one slot
    assert eight["output_throughput"] > 1.3 * one["output_throughput"]  # eight slots batch


def test_prompt_longer_than_the_slot_context_is_http_4xx(tmp_path: Path, llama1: str) -> None:
    prompt = tmp_path / "long.txt"
    prompt.write_text("word " * 4000)
    run = run_locust(tmp_path, llama1, "-u", "1", "-t", "2s", "--prompt-file", str(prompt))
    res = run.results
    assert res is not None, run.output
    assert res["completed"] == 0 and set(res["failures"]) == {"http_4xx"}
    assert "HTTP 400" in run.output and "exceeds the available context size" in run.output
    assert "Traceback" not in run.output


def test_server_killed_mid_run(tmp_path: Path, engine: tuple[Path, Path]) -> None:
    proc, url = llama_cpp.start_server(*engine, log=tmp_path / "server.log", parallel=4, ctx=8192)
    out = tmp_path / "results.json"
    locust = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--headless", "--host", url,
         "-u", "4", "-r", "4", "-t", "8s", "--max-tokens", "400", "--llm-json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        time.sleep(4)
        proc.kill()  # mid-stream for the four users
        output, _ = locust.communicate(timeout=60)
    finally:
        llama_cpp.stop_server(proc)
    res = json.loads(out.read_text())
    assert res["failed"] >= 4
    assert set(res["failures"]) <= {"reset_mid_stream", "connect", "truncated"}, res["failures"]
    assert "reset_mid_stream" in res["failures"] or "truncated" in res["failures"]
    assert "Traceback" not in output
    assert locust.returncode == 1  # failed requests, and a clean end


@pytest.mark.parametrize(
    "api", ["openai-chat", "openai-completions", "openai-responses", "anthropic-messages"]
)
def test_every_flavor_this_build_serves(tmp_path: Path, llama8: str, api: str) -> None:
    """llama-server serves /v1/chat/completions, /v1/completions, /v1/responses and Anthropic's
    /v1/messages: each flavor's counts agree with the server's usage (and its timings where it
    sends them), one event per token."""
    rows, run = records(tmp_path, llama8, "-u", "2", "-t", "5s", "--stop-timeout", "30", "--api", api,
                        "--max-tokens", "24", "--ignore-eos", *NO_CACHE)  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["metadata"]["api"] == api
    ok = [r for r in rows if r["outcome"] == "ok"]
    assert len(ok) >= 4 and len(ok) == len(rows), rows[:3]
    for r in ok:
        assert r["output_tokens_source"] == "usage" and r["output_tokens"] == 24 == r["text_events"]
        assert r["ttft_ms"] > 0 and r["tpot_ms"] > 0
        timings = r["server_timings"]
        if timings is not None:  # llama.cpp sends its timings with the chat and completions streams
            assert timings["predicted_n"] == 24 and r["ttft_ms"] >= timings["prompt_ms"]
    assert res["total_output_tokens"] == 24 * len(ok)
    assert "API flavor:" in run.output and api in run.output


def test_later_turns_of_a_conversation_reuse_the_server_s_prompt_cache(tmp_path: Path, llama1: str) -> None:
    """Three-turn conversations against one slot: each later turn repeats the history, which
    llama.cpp keeps in its slot's cache and reports (timings.cache_n); a first turn starts with a
    prompt no other request shares (a unique prefix), so little of it is cached."""
    run = run_locust(tmp_path, llama1, "-u", "1", "-t", "8s", "--stop-timeout", "30", "--dataset",
                     "synthetic", "--turns", "3", "--input-tokens", "48", "--max-tokens", "32",
                     "--ignore-eos")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["failed"] == 0
    turns = {t["turn"]: t for t in res["turns"]}
    assert set(turns) == {1, 2, 3} and all(turns[k]["completed"] >= 1 for k in (1, 2, 3))
    first, later = turns[1]["cached_share"], [turns[2]["cached_share"], turns[3]["cached_share"]]
    print(f"\ncached share of prompt tokens by turn: {first:.2f}, {later[0]:.2f}, {later[1]:.2f}")
    # turn 1 shares only the chat template's first tokens with the slot's last prompt; a later turn
    # its whole history up to the previous answer (about 0.18 against 0.55 and 0.71 here)
    assert min(later) > max(0.4, 2 * first)
    assert "Per turn" in run.output and "Prefix cache:" in run.output


def test_server_metrics_agree_with_our_counts(tmp_path: Path, llama1: str) -> None:
    """--server-metrics auto against llama-server --metrics: over the run's window its generated,
    prompt and cached prompt tokens are exactly what our requests' usage said."""
    run = run_locust(tmp_path, llama1, "-u", "1", "-t", "4s", "--stop-timeout", "30", "--dataset",
                     "synthetic", "--turns", "2", "--input-tokens", "48", "--max-tokens", "24",
                     "--ignore-eos")  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    res = run.results
    assert res is not None and res["failed"] == 0 and res["completed"] >= 2
    sm = res["server_metrics"]
    print(f"\nllama-server /metrics: {sm['polls']} polls, hit rate {sm['prefix_cache_hit_rate']:.3f}")
    assert sm["engine"] == "llama.cpp" and sm["url"] == llama1 + "/metrics" and sm["failures"] == 0
    ours = res["total_output_tokens"]
    assert sm["tokens_check"] == {"server_generation_tokens": ours, "our_output_tokens": ours,
                                  "difference": 0}  # fmt: skip
    # llama.cpp counts cached prompt tokens apart: both together are every prompt token
    assert sm["prefix_cache_hits"] == res["cached_input_tokens"] > 0
    assert sm["prefix_cache_queries"] == res["total_input_tokens"]
    assert sm["running"]["max"] == 1 and sm["series"]["gauges"]["llamacpp:n_busy_slots_per_decode"]
    assert "llamacpp:n_tokens_max" in sm["series"]["counters"]  # a counter without _total: its own name
