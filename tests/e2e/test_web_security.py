"""Whoever reaches the web UI: the start form (POST /swarm, as the form sends it) cannot make the
machines read or write files, and the start-up API key only ever goes to the start-up host.
Two capture servers on 127.0.0.1 record every byte that reaches them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from capture import CaptureServer, start_capture_server
from conftest import LOCUSTFILES, free_port, own_master_port

from llm_locust.locust.keys import SECRET_PLACEHOLDER

KEY = "sk-startup-key-123"
SECRET = "TOP-SECRET-FILE-CONTENT-42"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def post(url: str, form: dict[str, str]) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def servers() -> Iterator[tuple[CaptureServer, CaptureServer]]:
    home, other = start_capture_server(), start_capture_server()
    yield home, other
    home.close()
    other.close()


class WebUI:
    def __init__(self, url: str) -> None:
        self.url = url

    def state(self) -> dict[str, Any]:
        return get_json(self.url + "/stats/requests")  # type: ignore[no-any-return]

    def start(self, **form: str) -> dict[str, Any]:
        return post(self.url + "/swarm", {"user_count": "1", "spawn_rate": "1", **form})

    def run_until(self, capture: CaptureServer, chats: int, **form: str) -> None:
        """Start a test from the form, let ``capture`` receive ``chats`` requests, stop it."""
        before = len(capture.chats())
        answer = self.start(**form)
        assert answer["success"] is True, answer
        wait_for(f"{chats} requests at {capture.url}", lambda: len(capture.chats()) >= before + chats)
        post(self.url + "/stop", {})
        wait_for("the test to stop", lambda: self.state()["state"] == "stopped")


@pytest.mark.parametrize("processes", [0, 2], ids=["local", "processes-2"])
def test_the_form_cannot_reach_files_or_send_the_startup_key_elsewhere(
    tmp_path: Path, servers: tuple[CaptureServer, CaptureServer], processes: int
) -> None:
    home, other = servers
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("hello from the start-up prompt file")
    port = free_port()
    distributed = ["--processes", str(processes), *own_master_port()] if processes else []
    log = tmp_path / "locust.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--host", home.url,
             "--web-host", "127.0.0.1", "--web-port", str(port), *distributed, "--api-key", KEY,
             "--prompt-file", str(prompt), "--llm-json", str(tmp_path / "results.json")],
            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        )  # fmt: skip
    ui = WebUI(f"http://127.0.0.1:{port}")
    try:
        wait_for("the web UI", lambda: ui.state().get("worker_count", 0) == processes, 40)
        page = urllib.request.urlopen(ui.url + "/", timeout=5).read().decode()
        assert '"max_tokens"' in page and '"api_key"' in page  # our options are in the form ...
        for hidden in ("prompt_file", "tokenizer", "llm_json", "llm_csv", "llm_html", "insecure",
                       "llm_prometheus_port"):  # fmt: skip
            assert f'"{hidden}"' not in page  # ... but not those that name files (or turn checks off)
        assert KEY not in page and SECRET_PLACEHOLDER in page

        # 1. A hand-made form that names a file, ours or Locust's, is refused before anything runs.
        evil = tmp_path / "overwritten.txt"
        for field, value, flag in [
            ("prompt_file", str(secret), "--prompt-file"),
            ("tokenizer", str(secret), "--tokenizer"),
            ("llm_json", str(evil), "--llm-json"),
            ("llm_csv", str(evil), "--llm-csv"),
            ("llm_html", str(evil), "--llm-html"),
            ("insecure", "true", "--insecure"),
            ("llm_prometheus_port", "9", "--llm-prometheus-port"),
            ("html_file", str(evil), "--html-file"),
            ("csv_prefix", str(evil), "--csv-prefix"),
            ("logfile", str(evil), "--logfile"),
            ("dataset", f"jsonl:{secret}", "--dataset jsonl:PATH"),
            ("dataset", f"sharegpt:{secret}", "--dataset sharegpt:PATH"),
        ]:
            answer = ui.start(host=other.url, **{field: value})
            assert answer["success"] is False, (field, answer)
            assert flag in answer["message"] and "give it when starting Locust" in answer["message"]
        time.sleep(1)
        assert other.requests == [] and ui.state()["state"] in ("ready", "stopped")
        assert not evil.exists()

        # 2. The start-up key goes to the start-up host, with the start-up prompt file.
        ui.run_until(home, 3, host=home.url, api_key=SECRET_PLACEHOLDER)
        assert {c.headers.get("authorization") for c in home.chats()} == {f"Bearer {KEY}"}
        assert b"hello from the start-up prompt file" in home.chats()[-1].body

        # 3. A form that changes the host without a key of its own: no key, and the UI says so.
        ui.run_until(other, 3, host=other.url, api_key=SECRET_PLACEHOLDER)
        rows = [
            r["metric"] for s in ui.state().get("extended_stats", []) if s["key"] == "llm" for r in s["data"]
        ]
        assert any(r.startswith("Note: the API key given at start-up is sent only to") for r in rows), rows
        ui.run_until(other, 3, host=other.url)  # no api_key field at all
        ui.run_until(other, 3, host=other.url, api_key="")  # the field cleared
        assert all("authorization" not in c.headers for c in other.requests)

        # 4. A key the form gives is the form's, for the form's host, and only for that test.
        ui.run_until(other, 3, host=other.url, api_key="sk-form-key-456")
        assert other.chats()[-1].headers["authorization"] == "Bearer sk-form-key-456"
        ui.run_until(home, 3, host=home.url, api_key=SECRET_PLACEHOLDER)
        assert home.chats()[-1].headers["authorization"] == f"Bearer {KEY}"
        ui.run_until(other, 3, host=other.url)
        assert "authorization" not in other.chats()[-1].headers

        # 5. A dataset that reads no file may be chosen in the form.
        synthetic = {"dataset": "synthetic", "input_tokens": "16"}
        ui.run_until(home, 3, host=home.url, api_key=SECRET_PLACEHOLDER, **synthetic)
        assert b"hello from the start-up prompt file" not in home.chats()[-1].body
        assert SECRET.encode() not in home.everything() + other.everything()
        metrics = urllib.request.urlopen(ui.url + "/llm/metrics", timeout=5).read().decode()
        assert "llm_locust:requests_total" in metrics and KEY not in metrics and "sk-form-key" not in metrics
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    output = log.read_text()
    everything = other.everything()
    assert KEY.encode() not in everything and SECRET.encode() not in everything
    assert SECRET.encode() not in home.everything()
    assert KEY not in output, output[-3000:]  # never logged
    assert "Traceback" not in output, output[-3000:]
    assert "the API key given at start-up is sent only to" in output  # the warning in the log
