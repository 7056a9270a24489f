"""SLO gates as a CI job uses them: a real `locust --headless` process against the mock, whose
exit code says whether the run met its objectives; goodput at bounds on either side of the mock's
known TTFT; the capacity answer of a ladder on a mock whose TTFT grows with load."""

from __future__ import annotations

from pathlib import Path

from conftest import LOCUSTFILES, run_locust

from llm_locust.metrics.slo import EXIT_SLO_MISSED

FIXED = ("--engine", "fixed", "--ttft-ms", "50", "--itl-ms", "5", "--output-tokens", "8")


def test_met_objectives_exit_0_and_a_missed_one_exits_3(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FIXED)
    common = ("-u", "2", "-r", "2", "-t", "2s", "--stop-timeout", "5", "--model", "mock")
    met = run_locust(tmp_path, mock.url, *common, "--slo", "ttft_p50<=80ms", "--slo", "error_rate<=1%",
                     "--slo", "tpot_p99<=20ms")  # fmt: skip
    assert met.returncode == 0, met.output[-3000:]
    assert met.results is not None and met.results["slo"]["passed"] is True
    assert "SLOs (all met)" in met.output and "PASS  ttft_p50<=80ms" in met.output
    missed = run_locust(tmp_path, mock.url, *common, "--slo", "ttft_p50<=30ms", "--slo", "error_rate<=1%")
    assert missed.returncode == EXIT_SLO_MISSED, missed.output[-3000:]
    res = missed.results
    assert res is not None and res["slo"]["passed"] is False
    assert [o["passed"] for o in res["slo"]["objectives"]] == [False, True]
    assert 49 <= res["slo"]["objectives"][0]["measured"] <= 60
    assert "FAIL  ttft_p50<=30ms" in missed.output and "1 missed: exit code 3" in missed.output


def test_a_bad_objective_is_one_line_naming_the_metrics(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FIXED)
    run = run_locust(tmp_path, mock.url, "-u", "1", "-t", "2s", "--model", "mock", "--slo", "latency<=5")
    assert run.returncode == 1 and "Traceback" not in run.output
    assert "--slo 'latency': unknown value; use METRIC_STAT (e.g. ttft_p95" in run.output


def test_goodput_all_good_and_none_good_on_either_side_of_the_mock_s_ttft(
    tmp_path: Path, mock_engine
) -> None:
    mock = mock_engine(*FIXED)
    out = {}
    for name, bound in (("loose", "500"), ("tight", "30")):  # the mock: 50 ms, never earlier
        workdir = tmp_path / name
        workdir.mkdir()
        run = run_locust(workdir, mock.url, "--processes", "2", "-u", "4", "-r", "4", "-t", "2s",
                         "--stop-timeout", "5", "--model", "mock", "--goodput", f"ttft:{bound}",
                         "--slo", "goodput_share>=99%")  # fmt: skip
        assert run.results is not None, run.output[-3000:]
        out[name] = run
    loose, tight = out["loose"].results, out["tight"].results
    assert loose is not None and tight is not None
    assert loose["good_requests"] == loose["completed"] > 10 and loose["goodput_share"] == 1.0
    assert loose["request_goodput"] == loose["request_throughput"]
    assert tight["good_requests"] == 0 and tight["goodput_share"] == 0.0 and tight["request_goodput"] == 0.0
    assert out["loose"].returncode == 0 and out["tight"].returncode == EXIT_SLO_MISSED
    assert "Goodput:" in out["loose"].output


def test_per_level_verdicts_answer_how_many_users_meet_the_objectives(tmp_path: Path, mock_engine) -> None:
    # one slot: with 8 users, requests queue and TTFT grows to several answers' time (65 ms each)
    mock = mock_engine("--engine", "slots", "--slots", "1", "--ttft-ms", "30", "--itl-ms", "5",
                       "--output-tokens", "8")  # fmt: skip
    run = run_locust(tmp_path, mock.url, "--levels", "1,8", "--level-duration", "3", "--stop-timeout", "5",
                     "--model", "mock", "--slo", "ttft_p50<=60ms", "--slo-per-level",
                     locustfile=LOCUSTFILES / "seed_benchmark.py")  # fmt: skip
    res = run.results
    assert res is not None, run.output[-3000:]
    levels = {lv["users"]: lv["passed"] for lv in res["slo"]["levels"]}
    assert levels == {"1": True, "8": False}
    assert res["slo"]["capacity"] == "1"
    assert "highest level meeting every objective: 1 users" in run.output
