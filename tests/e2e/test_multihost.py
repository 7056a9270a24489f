"""Mock engine, master and two workers on separate network hosts: network namespaces on this machine
joined by veth pairs to a bridge (in a namespace of its own), created and removed by the test.
Addresses 10.77.x.x exist only inside those namespaces. Needs root and iproute2 (.ci/run installs it)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LOCUSTFILES

HOSTS = {"mock": "10.77.0.1", "master": "10.77.0.2", "w1": "10.77.0.3", "w2": "10.77.0.4"}


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


#: host name -> its network interface (inside its namespace), filled by the ``hosts`` fixture
LINKS: dict[str, str] = {}


@pytest.fixture
def hosts() -> Iterator[dict[str, str]]:
    """{host name: namespace name}; everything is removed afterwards, also when the test fails."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("this test needs root and iproute2 (ip); .ci/run installs iproute2")
    tag = secrets.token_hex(2)
    switch = f"llmt{tag}-sw"
    names = {h: f"llmt{tag}-{h}" for h in HOSTS}
    created: list[str] = []
    try:
        for ns in (switch, *names.values()):
            sh("ip", "netns", "add", ns)
            created.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", switch, "link", "set", "br0", "up")
        for i, (host, ns) in enumerate(names.items()):
            a, b = f"l{tag}h{i}", f"l{tag}s{i}"
            sh("ip", "link", "add", a, "netns", ns, "type", "veth", "peer", "name", b, "netns", switch)
            sh("ip", "-n", ns, "addr", "add", f"{HOSTS[host]}/24", "dev", a)
            sh("ip", "-n", ns, "link", "set", a, "up")
            LINKS[host] = a
            sh("ip", "-n", switch, "link", "set", b, "master", "br0")
            sh("ip", "-n", switch, "link", "set", b, "up")
        yield names
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def in_ns(ns: str, *cmd: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], text=True, **kw)  # type: ignore[call-overload, no-any-return]


def test_master_and_workers_on_separate_hosts(tmp_path: Path, hosts: dict[str, str]) -> None:
    procs: list[subprocess.Popen[str]] = []
    mock_ip, master_ip = HOSTS["mock"], HOSTS["master"]
    try:
        procs.append(in_ns(hosts["mock"], sys.executable, "-m", "llm_locust", "mock", "--host", mock_ip,
                           "--port", "8000", "--engine", "batching", "--ttft-ms", "30", "--itl-ms", "10",
                           "--output-tokens", "20", stdout=subprocess.PIPE))  # fmt: skip
        assert procs[0].stdout is not None and "serving" in procs[0].stdout.readline()
        out = tmp_path / "results.json"
        locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py")]
        master = in_ns(hosts["master"], *locust, "--master", "--master-bind-host", master_ip, "--headless",
                       "--expect-workers", "2", "--host", f"http://{mock_ip}:8000", "-u", "20", "-r", "20",
                       "-t", "6s", "--stop-timeout", "10", "--llm-json", str(out),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)  # fmt: skip
        procs.append(master)
        for w in ("w1", "w2"):
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": tmp_path}
            procs.append(in_ns(hosts[w], *locust, "--worker", "--master-host", master_ip, **quiet))
        output, _ = master.communicate(timeout=120)
        fetch = f"import urllib.request as u; print(u.urlopen('http://{mock_ip}:8000/mock/stats').read().decode())"
        stats = subprocess.run(["ip", "netns", "exec", hosts["mock"], sys.executable, "-c", fetch],
                               capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    assert master.returncode == 0, output[-3000:]
    served = json.loads(stats.stdout)["served"]
    res = json.loads(out.read_text())
    assert res["metadata"]["workers"] == 2 and res["metadata"]["model"] == "mock"
    assert res["cancelled"] == 0 and res["failed"] == 0
    assert res["completed"] == served["ok"] == served["requests"] > 50
    assert res["total_output_tokens"] == served["output_tokens"] == 20 * res["completed"]
    assert res["total_input_tokens"] == served["prompt_tokens"]
    assert res["count_itl"] == 19 * res["completed"]


def test_a_worker_whose_host_loses_the_network_is_reported_lost(
    tmp_path: Path, hosts: dict[str, str]
) -> None:
    """w2's link goes down mid-run: the master reports it like a killed worker and goes on with
    w1; w2, cut off from its master, stops by itself within seconds."""
    procs: list[subprocess.Popen[str]] = []
    mock_ip, master_ip = HOSTS["mock"], HOSTS["master"]
    try:
        procs.append(in_ns(hosts["mock"], sys.executable, "-m", "llm_locust", "mock", "--host", mock_ip,
                           "--port", "8000", "--engine", "fixed", "--ttft-ms", "30", "--itl-ms", "10",
                           "--output-tokens", "20", stdout=subprocess.PIPE))  # fmt: skip
        assert procs[0].stdout is not None and "serving" in procs[0].stdout.readline()
        out = tmp_path / "results.json"
        locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py")]
        master = in_ns(hosts["master"], *locust, "--master", "--master-bind-host", master_ip, "--headless",
                       "--expect-workers", "2", "--host", f"http://{mock_ip}:8000", "-u", "10", "-r", "10",
                       "-t", "18s", "--stop-timeout", "5", "--model", "mock", "--llm-json", str(out),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)  # fmt: skip
        procs.append(master)
        workers = {}
        for w in ("w1", "w2"):
            log = (tmp_path / f"{w}.log").open("w")
            workers[w] = in_ns(hosts[w], *locust, "--worker", "--master-host", master_ip,
                               stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)  # fmt: skip
            procs.append(workers[w])
        time.sleep(8)  # the test runs on both workers
        sh("ip", "-n", hosts["w2"], "link", "set", LINKS["w2"], "down")
        down = time.monotonic()
        workers["w2"].wait(timeout=20)
        w2_stopped_after_s = time.monotonic() - down
        output, _ = master.communicate(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    w2_log = (tmp_path / "w2.log").read_text()
    assert w2_stopped_after_s <= 10, w2_log[-2000:]
    assert "no heartbeat from the master" in w2_log and "Traceback" not in w2_log
    assert master.returncode == 0, output[-3000:]
    res = json.loads(out.read_text())
    assert res["metadata"]["workers"] == 2 and len(res["metadata"]["workers_lost"]) == 1, res["metadata"]
    assert "Workers lost (reports up to then kept):" in output
    assert res["completed"] > 50 and res["failed"] == 0
    assert "Traceback" not in output
