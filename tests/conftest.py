"""Shared fixtures: the mock engine in a child process, and headless Locust runs.

The folders are the test layers, and each gives its tests a marker (registered in pyproject.toml):
``unit/`` (in one process; sockets on 127.0.0.1 at most), ``e2e/`` (headless Locust and the mock in
child processes), ``browser/`` (chromium drives the web UI), ``engine/`` (llama.cpp's llama-server,
marker ``llama``). ``pytest -m "not llama"`` skips the real engine, ``pytest -m unit`` is the
quickest loop; ``make test`` runs everything."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_locust.cli import start_mock_process

ROOT = Path(__file__).resolve().parent.parent
LAYER_MARKERS = {"unit": "unit", "e2e": "e2e", "browser": "browser", "engine": "llama"}
LOCUSTFILES = ROOT / "locustfiles"
TEST_LOCUSTFILES = Path(__file__).resolve().parent / "locustfiles"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def own_master_port() -> tuple[str, ...]:
    """Options giving a ``--processes`` run a master port of its own: on Locust's default 5557, the
    workers of one run could join another run's master (seen when two runs overlapped)."""
    port = str(free_port())
    return ("--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-port", port)


@dataclass
class Mock:
    url: str
    proc: subprocess.Popen[str]

    def stats(self) -> dict[str, Any]:
        return self.all_stats()["served"]  # type: ignore[no-any-return]

    def by_flavor(self, api: str) -> dict[str, Any]:
        """What the mock served of one API flavor (``/mock/stats``'s ``served_by_flavor``)."""
        return self.all_stats()["served_by_flavor"][api]  # type: ignore[no-any-return]

    def all_stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/mock/stats", timeout=5, context=self._tls()) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/mock/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=5, context=self._tls()).close()

    def _tls(self) -> ssl.SSLContext | None:
        """Our own mock on 127.0.0.1: its test certificate need not be trusted to read its stats."""
        return ssl._create_unverified_context() if self.url.startswith("https:") else None


@pytest.fixture
def mock_engine() -> Iterator[Callable[..., Mock]]:
    """Factory: ``mock_engine("--engine", "fixed", ...)`` starts a mock on a free port."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Mock:
        proc, url = start_mock_process(*args)
        procs.append(proc)
        return Mock(url, proc)

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


@dataclass
class LocustRun:
    returncode: int
    output: str
    results: dict[str, Any] | None

    def final_rows(self) -> dict[str, tuple[int, int]]:
        """Locust's final stats table: row name -> (# reqs, # fails); 'Aggregated' is its total."""
        lines = self.output.splitlines()
        start = max(i for i, ln in enumerate(lines) if "Shutting down (exit code" in ln)
        rows: dict[str, tuple[int, int]] = {}
        for ln in lines[start:]:
            if ln.startswith("Response time percentiles"):
                break
            parts = ln.split()
            if len(parts) > 3 and "|" in ln and parts[0] in ("POST", "LLM", "Aggregated"):
                name = "Aggregated" if parts[0] == "Aggregated" else parts[1]
                i = 1 if parts[0] == "Aggregated" else 2
                rows[name] = (int(parts[i]), int(parts[i + 1].split("(")[0]))
        return rows


def run_locust(
    tmp_path: Path,
    host: str,
    *args: str,
    locustfile: Path = LOCUSTFILES / "chat.py",
    timeout_s: float = 90,
    env: dict[str, str] | None = None,
) -> LocustRun:
    """Run ``locust --headless`` and load our JSON results."""
    out_json = tmp_path / "results.json"
    if "--processes" in args and "--master-bind-port" not in args:
        args = (*args, *own_master_port())
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        host,
        "--llm-json",
        str(out_json),
        *args,
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )
    results = json.loads(out_json.read_text()) if out_json.exists() else None
    return LocustRun(proc.returncode, proc.stderr + proc.stdout, results)


# -- browser tests -----------------------------------------------------------------------------
#: Screenshots of the browser tests land here (a CI artifact; look at them).
ARTIFACTS = Path(os.environ.get("LLM_LOCUST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = os.environ.get("LLM_LOCUST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never Playwright's own download). .ci/run installs it."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh 1400x900 page; ``page.shot(name)`` saves a full-page screenshot under test-artifacts/."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()

    def shot(name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    pg.shot = shot
    yield pg
    context.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test gets the marker of its folder (see the module's docstring)."""
    for item in items:
        layer = LAYER_MARKERS.get(item.path.parent.name)
        if layer is None:
            raise pytest.UsageError(
                f"{item.nodeid}: a test belongs in one of tests/{', tests/'.join(LAYER_MARKERS)}"
            )
        item.add_marker(layer)
