"""Bad input gets a one-line error naming the option; nothing crashes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import run_locust


def one_line_error(output: str) -> str:
    lines = [ln for ln in output.splitlines() if "llm-locust: error:" in ln or "ERROR/llm_locust" in ln]
    assert len(lines) == 1, output
    assert "Traceback" not in output, output
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--extra-body", "{not json"], "--extra-body is not valid JSON"),
        (["--extra-body", "[1]"], "--extra-body must be a JSON object"),
        (["--prompt-file", "/nonexistent/prompt.txt"], "--prompt-file '/nonexistent/prompt.txt'"),
        (["--request-timeout", "0"], "--request-timeout 0"),
        (["--temperature", "-1"], "--temperature -1"),
        (["--llm-csv", "/nonexistent/dir/x.csv"], "--llm-csv '/nonexistent/dir/x.csv'"),
        (["--llm-html", "/nonexistent/x.html"], "--llm-html '/nonexistent/x.html'"),
        (["--llm-requests", "/nonexistent/r.jsonl"], "--llm-requests '/nonexistent/r.jsonl': directory"),
        (["--tokenizer", "no_such_encoding"], "--tokenizer 'no_such_encoding' is neither a tiktoken"),
        (["--prompt", "a", "--prompt-file", "x"], "--prompt and --prompt-file are exclusive"),
        (["--fail-backoff", "-1"], "--fail-backoff -1 must be >= 0 seconds"),
    ],
)
def test_bad_option_is_one_line_and_exit_1(tmp_path: Path, args: list[str], expected: str) -> None:
    run = run_locust(tmp_path, "http://127.0.0.1:9", "-u", "1", "-t", "1s", "--model", "m", *args)
    assert run.returncode == 1
    assert expected in one_line_error(run.output)
    assert run.results is None


def test_a_bad_option_with_processes_stops_the_forked_workers_too(tmp_path: Path) -> None:
    """Locust's own exit leaves the forked workers waiting 60 s for their gone master (and the run's
    output open): the one-line error ends every process of the run."""
    started = time.monotonic()
    run = run_locust(tmp_path, "http://127.0.0.1:9", "-u", "1", "-t", "1s", "--model", "m",
                     "--processes", "2", "--extra-body", "{not json", timeout_s=30)  # fmt: skip
    assert run.returncode == 1
    assert "--extra-body is not valid JSON" in one_line_error(run.output)
    assert time.monotonic() - started < 15


def test_bad_host_scheme(tmp_path: Path) -> None:
    run = run_locust(tmp_path, "ftp://127.0.0.1:9", "-u", "1", "-t", "1s", "--model", "m")
    assert run.returncode == 1
    assert "--host 'ftp://127.0.0.1:9' must start with http:// or https://" in one_line_error(run.output)


def test_model_discovery_on_dead_host_names_model_and_host(tmp_path: Path) -> None:
    run = run_locust(tmp_path, "http://127.0.0.1:9", "-u", "1", "-t", "5s")
    assert run.returncode == 1
    line = one_line_error(run.output)
    assert "--model not given and http://127.0.0.1:9 does not answer: GET /v1/models: Connection refused" in (
        line
    )


def test_unknown_flag_is_locusts_one_line_error(tmp_path: Path) -> None:
    run = run_locust(tmp_path, "http://127.0.0.1:9", "--max-tokenz", "5")
    assert run.returncode != 0
    assert "unrecognized arguments: --max-tokenz" in run.output


def test_options_from_env_and_config_file_reach_the_request(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "5", "--itl-ms", "1")
    (tmp_path / "locust.conf").write_text("max-tokens = 7\nprompt = hello from the config file\n")
    run = run_locust(
        tmp_path,
        mock.url,
        "-u",
        "1",
        "-t",
        "2s",
        "--stop-timeout",
        "2",
        env={"LOCUST_MODEL": "mock", "LOCUST_API_KEY": "sk-secret-value-123"},
    )
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    assert res["total_output_tokens"] == 7 * res["completed"]  # the mock honours max_tokens
    assert res["metadata"]["model"] == "mock"
    assert res["metadata"]["options"]["api_key_set"] is True
    # secrets never reach logs or reports
    assert "sk-secret-value-123" not in run.output
    assert "sk-secret-value-123" not in json.dumps(res)
