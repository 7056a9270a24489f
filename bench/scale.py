"""Scale-out: users per worker process vs token events/s and timing error at 1, 2 and 4 processes.

Each worker process gets the same load (--users-per-process streams, ITL so that each process sees
--events-per-process token events/s); the mock engine runs in its own process. Timing errors come
from requests sent after the ramp (bench/steady.py). On a 2-core machine the mock and the workers
share the cores, so the last rows also show what happens when a machine is oversubscribed.

    python bench/scale.py [--processes 1,2,4] [--users-per-process 500] [--events-per-process 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from client_capacity import TOKENS, TTFT_MS, cpu_s, mock_stats  # noqa: E402

from llm_locust.cli import start_mock_process  # noqa: E402


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (the master and its forked workers)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return cpu_s(pid) + sum(cpu_s(int(c)) for c in children)


def run(processes: int, users_per_process: int, events_per_process: int, seconds: float) -> dict[str, float]:
    users = processes * users_per_process
    itl_ms = users_per_process / events_per_process * 1000
    timing = ["--ttft-ms", f"{TTFT_MS:g}", "--itl-ms", f"{itl_ms:g}", "--output-tokens", str(TOKENS)]
    mock, url = start_mock_process("--engine", "fixed", *timing)
    out = Path(tempfile.mkdtemp()) / "r.json"
    request_s = (TTFT_MS + TOKENS * itl_ms) / 1000
    warm_s = max(4.0, users / 500 + 2) + request_s + 1
    env = {
        **os.environ,
        "BENCH_USERS": str(users),
        "BENCH_WARM_S": f"{warm_s:g}",
        "BENCH_STEADY_S": f"{seconds + 2:g}",
    }
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "steady.py"), "--headless",
           "--processes", str(processes), "--host", url, "--model", "mock", "--llm-json", str(out),
           "--only-summary", "--loglevel", "WARNING", "--stop-timeout", str(int(request_s + 10))]  # fmt: skip
    client = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(warm_s)
        cpu0, ev0, t0 = tree_cpu_s(client.pid), mock_stats(url)["tokens_sent"], time.monotonic()
        mock_cpu0 = cpu_s(mock.pid)
        time.sleep(seconds)
        served = mock_stats(url)
        cpu1, ev1, t1 = tree_cpu_s(client.pid), served["tokens_sent"], time.monotonic()
        mock_cpu1 = cpu_s(mock.pid)
        client.communicate(timeout=300)
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    res = json.loads(out.read_text())
    steady = next(level for level in res["levels"] if level["users"] == "steady")
    return {
        "processes": processes,
        "users": users,
        "offered": processes * events_per_process,
        "events_per_s": (ev1 - ev0) / (t1 - t0),
        "client_cores": (cpu1 - cpu0) / (t1 - t0),
        "mock_cores": (mock_cpu1 - mock_cpu0) / (t1 - t0),
        "events_per_cpu_s": (ev1 - ev0) / max(cpu1 - cpu0, 1e-9),
        "ttft_p50": steady["median_ttft_ms"] - TTFT_MS,
        "ttft_p99": steady["p99_ttft_ms"] - TTFT_MS,
        "itl_p50": steady["median_itl_ms"] - itl_ms,
        "itl_p99": steady["p99_itl_ms"] - itl_ms,
        "late": 100 * served.get("tokens_late_over_5ms", 0) / max(served["tokens_sent"], 1),
        "ok": steady["completed"],
        "workers": res["metadata"]["workers"] or 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--users-per-process", type=int, default=500)
    parser.add_argument("--events-per-process", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    rows = [run(int(p), args.users_per_process, args.events_per_process, args.seconds)
            for p in args.processes.split(",")]  # fmt: skip
    print(f"\nScale-out on {os.cpu_count()} cores: {args.users_per_process} streams and")
    print(f"{args.events_per_process} token events/s offered per worker process, mock in its own process\n")
    cols = [
        "worker processes",
        "users",
        "offered ev/s",
        "achieved ev/s",
        "client cores",
        "mock cores",
        "events per client CPU-s",
        "ΔTTFT p50 / p99 ms",
        "ΔITL p50 / p99 ms",
        "mock >5 ms late",
        "steady ok",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [
            f"{r['processes']:.0f}",
            f"{r['users']:.0f}",
            f"{r['offered']:,.0f}",
            f"{r['events_per_s']:,.0f}",
            f"{r['client_cores']:.2f}",
            f"{r['mock_cores']:.2f}",
            f"{r['events_per_cpu_s']:,.0f}",
            f"{r['ttft_p50']:+.1f} / {r['ttft_p99']:+.1f}",
            f"{r['itl_p50']:+.2f} / {r['itl_p99']:+.1f}",
            f"{r['late']:.2f} %",
            f"{r['ok']:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
