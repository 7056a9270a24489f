"""``llm-locust compare``: results files side by side, ratios to the first run, levels aligned by
users, one-line errors, and a self-contained HTML page that draws in a real browser."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llm_locust.cli import main
from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.records import RequestTimer
from llm_locust.reports import charts
from llm_locust.reports.summary import results


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ladder_results(
    host: str,
    ttft_ms: Callable[[int], float],
    itl_ms: Callable[[int], float],
    levels: tuple[int, ...],
    *,
    per_level: int = 30,
    tokens: int = 32,
    failed: int = 0,
    seed: int = 1,
) -> dict[str, Any]:
    """A results dict as ``--llm-json`` writes it, from requests timed on a fake clock: at each
    level ``users`` streams overlap, with TTFT ``ttft_ms(users)`` and gaps ``itl_ms(users)``, each +/-10 %."""
    rng = random.Random(seed)
    agg = Aggregate()
    start = 1000.0
    for users in levels:
        e2e_s = (ttft_ms(users) + (tokens - 1) * itl_ms(users)) / 1000
        for k in range(per_level):
            clock = Clock(start + k * e2e_s / users)
            timer = RequestTimer(clock)
            at = clock.t + ttft_ms(users) * rng.uniform(0.9, 1.1) / 1000
            timer.headers(clock.t + 0.002)
            for _ in range(tokens):
                timer.text(at, visible=True)
                at += itl_ms(users) * rng.uniform(0.9, 1.1) / 1000
            clock.t = at
            rec = timer.finish("ok", output_tokens=tokens, output_tokens_source="usage", input_tokens=20)
            agg.record(rec, level=str(users))
        start += per_level * e2e_s / users + e2e_s
    for k in range(failed):
        clock = Clock(start + k)
        agg.record(RequestTimer(clock).finish("http_5xx", "HTTP 503"), level=str(levels[-1]))
    meta = {
        "host": host,
        "model": "qwen3",
        "users": max(levels),
        "mode": "local",
        "options": {"host": host, "model": "qwen3", "max_tokens": tokens, "api_key_set": False},
        "start_time": "2025-01-01T00:00:00+00:00",
        "end_time": "2025-01-01T00:01:00+00:00",
    }
    return results(agg, meta)


def batching(
    levels: tuple[int, ...] = (1, 8, 32), host: str = "http://gpu:8000", **kw: Any
) -> dict[str, Any]:
    """Like vLLM: TTFT flat, per-token time grows slowly with the batch."""
    return ladder_results(host, lambda u: 80.0, lambda u: 15.0 * u**0.25, levels, **kw)


def slots(levels: tuple[int, ...] = (1, 8, 32), **kw: Any) -> dict[str, Any]:
    """Like Ollama with 4 slots: twice vLLM's TTFT alone, queueing beyond 4 users."""
    return ladder_results(
        "http://gpu:11434/v1", lambda u: 160.0 * max(1, u / 4), lambda u: 25.0, levels, seed=2, **kw
    )


def write(path: Path, res: dict[str, Any]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res))
    return str(path)


def compare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["compare", *args])
    out, err = capsys.readouterr()
    return code, out, err


def table_row(out: str, label: str) -> list[str]:
    """The cells of the metric row ``label`` (columns are separated by two or more spaces)."""
    line = next(ln for ln in out.splitlines() if ln.startswith(label + "  "))
    return re.split(r"\s{2,}", line.strip())


def fmt(x: float) -> str:
    return f"{x:,.2f}"


def test_side_by_side_with_ratios_to_the_first_run(tmp_path: Path, capsys) -> None:
    a = batching()
    b = slots(failed=3)
    c = batching(host="http://gpu:30000")  # the same numbers as the first run
    files = [write(tmp_path / f"{n}.json", r) for n, r in (("vllm", a), ("ollama", b), ("sglang", c))]
    code, out, err = compare(capsys, *files)
    assert (code, err) == (0, "")
    # the header names each run with its file, host and model
    assert re.search(r"^ollama\s+\S+ollama\.json\s+http://gpu:11434/v1\s+qwen3\s+32", out, re.M)
    header = re.split(r"\s{2,}", next(ln for ln in out.splitlines() if ln.startswith("metric")))
    assert header == ["metric", "better", "vllm", "ollama", "ollama/vllm", "sglang", "sglang/vllm"]

    ttft = table_row(out, "TTFT p50 (ms)")
    assert ttft[:4] == ["TTFT p50 (ms)", "lower", fmt(a["median_ttft_ms"]), fmt(b["median_ttft_ms"])]
    assert ttft[4] == f"{b['median_ttft_ms'] / a['median_ttft_ms']:.2f}x worse"
    assert ttft[6] == "1.00x"  # equal: neither better nor worse
    out_tps = table_row(out, "Output throughput (tok/s)")
    ratio = b["output_throughput"] / a["output_throughput"]
    assert ratio < 1 and out_tps[4] == f"{ratio:.2f}x worse"
    stream = table_row(out, "Per-stream tok/s p50")
    assert stream[1] == "higher"
    assert stream[4] == f"{b['median_tokens_per_s'] / a['median_tokens_per_s']:.2f}x " + (
        "better" if b["median_tokens_per_s"] > a["median_tokens_per_s"] else "worse"
    )
    # counts: no direction for successes; failures against a baseline of 0 have no ratio
    assert table_row(out, "Successful requests") == [
        "Successful requests",
        "90",
        "90",
        "1.00x",
        "90",
        "1.00x",
    ]
    assert table_row(out, "Failed requests") == ["Failed requests", "lower", "0", "3", "-", "0", "-"]
    for label in ("TPOT p99 (ms)", "ITL p90 (ms)", "E2E mean (ms)", "Request throughput (req/s)"):
        assert len(table_row(out, label)) == 7


def test_levels_aligned_by_users_with_dash_where_missing(tmp_path: Path, capsys) -> None:
    a = batching(levels=(1, 8, 32))
    b = slots(levels=(1, 8, 256))
    code, out, _ = compare(
        capsys, write(tmp_path / "a.json", a), write(tmp_path / "b.json", b), "--names", "vllm,ollama"
    )
    assert code == 0
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Per level"))
    assert lines[start + 1].split() == [
        "per-stream",
        "tok/s",
        "p50",
        "TTFT",
        "p50",
        "(ms)",
        "aggregate",
        "tok/s",
    ]
    assert lines[start + 2].split() == ["users", "vllm", "ollama", "vllm", "ollama", "vllm", "ollama"]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[start + 3 :] if ln.strip()}
    assert list(rows) == ["1", "8", "32", "256"]  # numeric order, every level of either run

    def cells(level: dict[str, Any]) -> list[str]:
        return [f"{level[k]:,.1f}" for k in ("median_tokens_per_s", "median_ttft_ms", "output_throughput")]

    la = {r["users"]: cells(r) for r in a["levels"]}
    lb = {r["users"]: cells(r) for r in b["levels"]}
    assert rows["8"] == [x for pair in zip(la["8"], lb["8"], strict=True) for x in pair]
    assert rows["32"] == [la["32"][0], "-", la["32"][1], "-", la["32"][2], "-"]
    assert rows["256"] == ["-", lb["256"][0], "-", lb["256"][1], "-", lb["256"][2]]
    # the slots server queues: its TTFT at 8 users is 2x its TTFT alone, the batching one's is flat
    assert float(rows["8"][3].replace(",", "")) == pytest.approx(2 * float(rows["1"][3]), rel=0.1)
    assert float(rows["8"][2]) == pytest.approx(float(rows["1"][2]), rel=0.1)


def test_runs_without_levels_print_no_level_table(tmp_path: Path, capsys) -> None:
    a, b = batching(), slots()
    a["levels"] = b["levels"] = []
    code, out, _ = compare(capsys, write(tmp_path / "a.json", a), write(tmp_path / "b.json", b))
    assert code == 0 and "Per level" not in out and "TTFT p50 (ms)" in out


def test_options_that_differ_are_named(tmp_path: Path, capsys) -> None:
    a, b = batching(tokens=32), slots(tokens=64)
    _, out, _ = compare(capsys, write(tmp_path / "a.json", a), write(tmp_path / "b.json", b))
    assert "Option max_tokens differs: a 32 | b 64" in out


def test_same_file_stems_are_told_apart_by_path(tmp_path: Path, capsys) -> None:
    a = write(tmp_path / "vllm" / "results.json", batching())
    b = write(tmp_path / "ollama" / "results.json", slots())
    _, out, _ = compare(capsys, a, b)
    header = re.split(r"\s{2,}", next(ln for ln in out.splitlines() if ln.startswith("metric")))
    assert header[2:4] == [a, b]


def test_errors_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    good = write(tmp_path / "good.json", batching(per_level=3))
    (tmp_path / "text.json").write_text("completed: 3\n")
    (tmp_path / "other.json").write_text('{"requests": 3, "metadata": {}}')
    (tmp_path / "list.json").write_text("[1, 2]")
    cases = [
        ([good], "give at least 2 results files to compare (got 1)"),
        ([], "give at least 2 results files to compare (got 0)"),
        ([good, str(tmp_path / "nope.json")], f"{tmp_path / 'nope.json'}: no such file"),
        ([good, str(tmp_path)], f"{tmp_path}: cannot read it"),
        ([good, str(tmp_path / "text.json")], f"{tmp_path / 'text.json'} is not JSON"),
        (
            [good, str(tmp_path / "other.json")],
            f"{tmp_path / 'other.json'} is not an llm-locust results file (no 'completed', 'failed',"
            " 'duration'); write one with --llm-json",
        ),
        ([good, str(tmp_path / "list.json")], "is not an llm-locust results file (expected a JSON object"),
        ([good, good, "--names", "a,b,c"], "--names 'a,b,c' has 3 name(s) for 2 files"),
        ([good, good, "--html", str(tmp_path / "good.json" / "x.html")], "cannot write --html"),
    ]
    for args, message in cases:
        code, _out, err = compare(capsys, *args)
        assert code == 2, args
        assert err.startswith("llm-locust compare: error: ") and message in err, err
        assert err.count("\n") == 1, err


def test_the_installed_command(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", batching(per_level=3))
    b = write(tmp_path / "b.json", slots(per_level=3))
    ok = subprocess.run([sys.executable, "-m", "llm_locust", "compare", a, b], capture_output=True, text=True)
    assert ok.returncode == 0 and "b/a" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "llm_locust", "compare", a, str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr == f"llm-locust compare: error: {tmp_path / 'missing.json'}: no such file\n"


#: Charts the page draws for ladder runs with histograms: 4 bar groups, 3 ladder lines, 2 distributions.
CHARTS = [f"bars-{i}" for i in range(4)] + ["ladder-0", "ladder-1", "ladder-2", "hist-0", "hist-1"]


def test_html_is_self_contained_and_draws_in_the_browser(tmp_path: Path, capsys, page) -> None:
    a = write(tmp_path / "vllm.json", batching(levels=(1, 8, 32, 256)))
    b = write(tmp_path / "ollama.json", slots(levels=(1, 8, 32)))
    out_html = tmp_path / "report" / "compare.html"
    code, out, _ = compare(capsys, a, b, "--html", str(out_html))
    assert code == 0 and f"HTML report: {out_html}" in out
    text = out_html.read_text()
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", text, re.I)
    assert charts.plotly_js()[:2000] in text and text.count("Plotly.newPlot(") == len(CHARTS)

    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    page.goto(out_html.as_uri())
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {2 * len(CHARTS)}", timeout=15000
    )
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('.js-plotly-plot')].map(d => ({
            id: d.id,
            names: d.data.map(t => t.name),
            points: d.data.map(t => t.y.filter(v => v !== null).length),
            svgTraces: d.querySelectorAll('.trace').length,
        }))"""
    )
    assert [d["id"] for d in drawn] == CHARTS
    for d in drawn:
        assert d["names"] == ["vllm", "ollama"], d
        assert all(n > 0 for n in d["points"]) and d["svgTraces"] >= 2, d
    ladder = next(d for d in drawn if d["id"] == "ladder-0")
    assert ladder["points"] == [4, 3]  # one point per level each run has
    assert page.evaluate("document.getElementById('ladder-0').layout.xaxis.type") == "log"
    assert all(u.startswith("file:") for u in requested), requested
    metrics = page.inner_text("#metrics")
    assert "TTFT p50 (ms)" in metrics and "x worse" in metrics
    assert page.locator("#levels tr").count() == 2 + 4  # two header rows, levels 1, 8, 32, 256
    assert page.locator("#levels td", has_text="-").count() == 3
    page.shot("compare")
