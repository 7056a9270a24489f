"""Servers that answer with something other than a plain event stream, each through headless Locust
against the mock engine: compressed streams, whole JSON answers, TLS, and failing endpoints."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import LOCUSTFILES, run_locust

FAST = ("--engine", "fixed", "--ttft-ms", "60", "--itl-ms", "15", "--output-tokens", "12")


def every_request(fault: str) -> tuple[str, str]:
    return ("--extra-body", json.dumps({"mock_fault": fault}))


@pytest.mark.parametrize(
    ("coding", "reader"),
    [
        ("gzip", "compiled"),
        ("deflate", "compiled"),
        ("br", "compiled"),
        ("gzip", "greenlet"),
        ("br", "greenlet"),
    ],
)
def test_a_compressed_stream_is_decoded_and_keeps_its_event_times(
    tmp_path: Path, mock_engine, coding: str, reader: str
) -> None:
    mock = mock_engine(*FAST)
    run = run_locust(
        tmp_path, mock.url, "-u", "2", "-r", "2", "-t", "3s", "--stop-timeout", "5", "--model", "mock",
        *every_request(coding), env={"LLM_LOCUST_READER": reader},
    )  # fmt: skip
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    served = mock.stats()
    assert res["completed"] == served["ok"] == served[f"injected:{coding}"] > 0
    assert res["failed"] == 0 and res["not_streamed"] == 0
    assert res["total_output_tokens"] == 12 * res["completed"] == served["output_tokens"]
    # each event is stamped when its own bytes arrived, not when a block of the body did
    assert res["count_itl"] == 11 * res["completed"]
    assert 59 <= res["median_ttft_ms"] <= 66
    assert 14 <= res["median_itl_ms"] <= 16
    expected_reader = "greenlet" if reader == "greenlet" else "reactor"  # the C reader takes identity only
    assert res["client"]["readers"] == {expected_reader: res["completed"]}


def test_a_whole_json_answer_is_measured_as_one_event_and_flagged(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FAST)
    run = run_locust(
        tmp_path, mock.url, "-u", "2", "-r", "2", "-t", "3s", "--stop-timeout", "5", "--model", "mock",
        *every_request("no_stream"),
    )  # fmt: skip
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    served = mock.stats()
    assert res["completed"] == res["not_streamed"] == served["ok"] > 0
    assert res["total_output_tokens"] == 12 * res["completed"]  # from the answer's usage
    assert res["output_tokens_source"] == {"usage": res["completed"]}
    # one event: the first token arrived with the last, after the whole generation (60 + 11 x 15 ms)
    assert res["median_ttft_ms"] == pytest.approx(res["median_e2el_ms"])
    assert 225 <= res["median_ttft_ms"] <= 235
    assert res["count_itl"] == res["count_tpot"] == 0  # nothing to measure between tokens
    assert "of which not streamed (one JSON body):" in run.output
    assert 'ignored "stream": true' in run.output


def test_answers_that_are_not_streams_are_named_with_their_first_bytes(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FAST)
    run = run_locust(
        tmp_path, mock.url, "-u", "1", "-r", "1", "-t", "3s", "--stop-timeout", "5", "--model", "mock",
        "--fail-backoff", "0", *every_request("html"),
    )  # fmt: skip
    res = run.results
    assert res is not None, run.output
    assert set(res["failures"]) == {"not_a_stream"} and res["completed"] == res["cancelled"] == 0
    assert res["failed"] == mock.stats()["injected:html"] > 0
    page = "<html><body><h1>Login required</h1><form action='/login'></form></body></html>"
    assert f"not_a_stream: 200 text/html: {page}" in run.output


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A test CA (trustme) and a certificate for 127.0.0.1 signed by it."""
    import trustme

    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"ca": str(d / "ca.pem"), "chain": str(d / "chain.pem"), "key": str(d / "key.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    cert.cert_chain_pems[0].write_to_path(files["chain"])
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(files["chain"], append=True)
    cert.private_key_pem.write_to_path(files["key"])
    return files


def test_https_verifies_against_the_system_trust_store(tmp_path: Path, mock_engine, tls_files) -> None:
    """SSL_CERT_FILE adds the test CA to OpenSSL's default (system) store, as for every program."""
    mock = mock_engine(*FAST, "--tls-cert", tls_files["chain"], "--tls-key", tls_files["key"])
    assert mock.url.startswith("https://127.0.0.1:")
    run = run_locust(
        tmp_path, mock.url, "-u", "2", "-r", "2", "-t", "2s", "--stop-timeout", "5", "--model", "mock",
        env={"SSL_CERT_FILE": tls_files["ca"]},
    )  # fmt: skip
    assert run.returncode == 0, run.output
    res = run.results
    assert res is not None
    assert res["completed"] == mock.stats()["ok"] > 0 and res["failed"] == 0
    assert res["client"]["readers"] == {"greenlet": res["completed"]}
    assert "not verified" not in run.output
    # the bound on response headers holds on TLS connections too
    huge = run_locust(
        tmp_path, mock.url, "-u", "1", "-r", "1", "-t", "2s", "--stop-timeout", "5", "--model", "mock",
        *every_request("huge_headers"), env={"SSL_CERT_FILE": tls_files["ca"]},
    )  # fmt: skip
    assert huge.results is not None and set(huge.results["failures"]) == {"connect"}, huge.output
    assert "connect: HTTPParseError: the response headers are over 64 KiB" in huge.output


def test_an_untrusted_certificate_fails_in_one_line_and_insecure_skips_it(
    tmp_path: Path, mock_engine, tls_files
) -> None:
    mock = mock_engine(*FAST, "--tls-cert", tls_files["chain"], "--tls-key", tls_files["key"])
    run = run_locust(
        tmp_path, mock.url, "-u", "1", "-r", "1", "-t", "2s", "--model", "mock", env={"SSL_CERT_FILE": ""}
    )
    res = run.results
    assert res is not None, run.output
    assert set(res["failures"]) == {"connect"} and res["completed"] == 0
    line = (
        f"connect: certificate verify failed: unable to get local issuer certificate ({mock.url}; "
        "--insecure skips verification)"
    )
    assert line in run.output
    assert "Traceback" not in run.output
    insecure = run_locust(
        tmp_path, mock.url, "-u", "1", "-r", "1", "-t", "2s", "--stop-timeout", "5", "--model", "mock",
        "--insecure", env={"SSL_CERT_FILE": ""},
    )  # fmt: skip
    assert insecure.returncode == 0, insecure.output
    assert insecure.results is not None and insecure.results["completed"] > 0
    assert insecure.results["metadata"]["options"]["insecure"] is True
    assert "WARNING: TLS certificates were not verified (--insecure)" in insecure.output


def test_a_failing_endpoint_is_not_hammered(tmp_path: Path) -> None:
    """Connection refused fails at once: without a backoff each user would send hundreds of requests
    per second. With the default (0.1 s, doubling per failure in a row) two users send a handful."""
    dead = "http://127.0.0.1:9"
    run = run_locust(tmp_path, dead, "-u", "2", "-r", "2", "-t", "3s", "--model", "m")
    res = run.results
    assert res is not None, run.output
    # per user: 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s of waits fit in 3 s: at most 6 requests each
    assert 2 <= res["failed"] <= 12 and set(res["failures"]) == {"connect"}
    hammered = run_locust(
        tmp_path, dead, "-u", "2", "-r", "2", "-t", "3s", "--model", "m", "--fail-backoff", "0"
    )
    assert hammered.results is not None
    assert hammered.results["failed"] > 20 * res["failed"]


def test_backoff_keeps_failure_counts_exact(tmp_path: Path, mock_engine) -> None:
    mock = mock_engine(*FAST, "--fault", "http_500:0.5", "--seed", "7")
    run = run_locust(
        tmp_path, mock.url, "-u", "4", "-r", "4", "-t", "4s", "--stop-timeout", "5", "--model", "mock",
        "--fail-backoff", "0.05",
    )  # fmt: skip
    res = run.results
    assert res is not None, run.output
    served = mock.stats()
    assert res["failures"] == {"http_5xx": served["injected:http_500"]} and res["failed"] > 0
    assert res["completed"] == served["ok"] > 0
    assert res["completed"] + res["failed"] == served["requests"]
    assert run.final_rows()["/v1/chat/completions"] == (served["requests"], res["failed"])


@pytest.mark.parametrize("fault", ["malformed", "error_event", "huge_event"])
def test_a_failed_stream_closes_its_connection(tmp_path: Path, mock_engine, fault: str) -> None:
    """A stream that fails mid-body leaves its socket checked out of the pool: it must be closed
    then, not when the garbage collector finds the response (connections piled up to the server)."""

    mock = mock_engine(*FAST)
    port = int(mock.url.rsplit(":", 1)[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--headless", "--host", mock.url,
         "-u", "4", "-r", "4", "-t", "5s", "--model", "mock", "--fail-backoff", "0.02",
         *every_request(fault)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    most = 0
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None:
            conns = psutil.Process(proc.pid).net_connections(kind="tcp")
            most = max(most, sum(1 for c in conns if c.raddr and c.raddr.port == port))
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert mock.stats()[f"injected:{fault}"] > 20
    assert most <= 4 + 1, most  # one per user (and one being replaced)
