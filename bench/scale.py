"""Scale-out: users per worker process vs token events/s and timing error at 1, 2 and 4 processes,
then the open loop: a request rate per worker process, and how well the schedule is kept.

Each worker process gets the same load (--users-per-process streams, ITL so that each process sees
--events-per-process token events/s); the mock engine runs in its own process. Timing errors come
from requests sent after the ramp (bench/steady.py). On a 2-core machine the mock and the workers
share the cores, so the last rows also show what happens when a machine is oversubscribed.

Open loop: --rate-per-process requests/s per worker process (Poisson, over all of them one schedule)
against a mock with --mock-workers processes, for --seconds after a 2 s --warmup; the rows give the
rate the mock saw and the CV of its gaps (1 for Poisson), the schedule lag (send - due), ΔTTFT
against the mock's fixed TTFT, the client's CPU per worker process, and whether every request the
mock saw is in the results exactly once.

    python bench/scale.py [--processes 1,2,4] [--users-per-process 500] [--events-per-process 5000]
    python bench/scale.py --open-only --processes 16 --rate-per-process 125 --mock-workers 8
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from client_capacity import TOKENS, TTFT_MS, cpu_s, mock_stats, steal_s  # noqa: E402
from soak import table  # noqa: E402

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


OPEN_TOKENS = 32
OPEN_ITL_MS = 10.0


def run_open(processes: int, rate_per_process: float, mock_workers: int, seconds: float) -> dict[str, float]:
    """One open-loop run: ``processes`` workers share ``processes * rate_per_process`` req/s."""
    rate = processes * rate_per_process
    timing = ["--ttft-ms", f"{TTFT_MS:g}", "--itl-ms", f"{OPEN_ITL_MS:g}", "--output-tokens",
              str(OPEN_TOKENS)]  # fmt: skip
    mock, url = start_mock_process("--engine", "fixed", *timing, "--record-arrivals",
                                   "--workers", str(mock_workers))  # fmt: skip
    out = Path(tempfile.mkdtemp()) / "r.json"
    warmup_s = 2.0
    n = int(rate * (seconds + warmup_s))
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "chat.py"), "--headless",
           "--processes", str(processes), "-u", str(processes), "--host", url, "--model", "mock",
           "--max-tokens", str(OPEN_TOKENS), "--request-rate", f"{rate:g}", "--max-requests", str(n),
           "--warmup", f"{warmup_s:g}s", "--llm-json", str(out), "--only-summary", "--loglevel", "WARNING",
           "--stop-timeout", "30"]  # fmt: skip
    client = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not mock_stats(url).get("arrivals_s") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(warmup_s)
        cpu0, t0, steal0 = tree_cpu_s(client.pid), time.monotonic(), steal_s()
        time.sleep(seconds * 0.8)
        cpu1, t1, steal1 = tree_cpu_s(client.pid), time.monotonic(), steal_s()
        client.communicate(timeout=seconds + 120)
        served: dict[str, Any] = mock_stats(url)
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    res = json.loads(out.read_text())
    arrivals = served["arrivals_s"]
    start = arrivals[0] + warmup_s
    steady = [a for a in arrivals if a >= start]
    gaps = [b - a for a, b in itertools.pairwise(steady)]
    mean = sum(gaps) / len(gaps)
    cv = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5 / mean
    seen = res["completed"] + res["failed"] + res["cancelled"] + res["warmup_excluded"]
    return {
        "processes": processes,
        "rate": rate,
        "achieved": len(gaps) / (steady[-1] - steady[0]),
        "cv": cv,
        "lag_p50": res["median_schedule_lag_ms"],
        "lag_p99": res["p99_schedule_lag_ms"],
        "ttft_p50": res["median_ttft_ms"] - TTFT_MS,
        "ttft_p99": res["p99_ttft_ms"] - TTFT_MS,
        "cores_per_worker": (cpu1 - cpu0) / (t1 - t0) / processes,
        "steal": 100 * (steal1 - steal0) / ((t1 - t0) * (os.cpu_count() or 1)),
        "exact": float(seen == len(arrivals) == n),
        "requests": len(arrivals),
    }


def print_open(rows: list[dict[str, float]], args: argparse.Namespace) -> None:
    print(f"\nOpen loop on {os.cpu_count()} cores: {args.rate_per_process:g} req/s (Poisson) per worker "
          f"process, {OPEN_TOKENS} tokens at {OPEN_ITL_MS:g} ms after {TTFT_MS:g} ms; mock with "
          f"{args.mock_workers} process(es)\n")  # fmt: skip
    cols = ["worker processes", "rate req/s", "at the mock req/s", "CV of gaps", "schedule lag p50 / p99 ms",
            "ΔTTFT p50 / p99 ms", "client cores per worker", "requests (all counted once)",
            "steal"]  # fmt: skip
    cells = [
        [
            f"{r['processes']:.0f}",
            f"{r['rate']:,.0f}",
            f"{r['achieved']:,.1f}",
            f"{r['cv']:.3f}",
            f"{r['lag_p50']:.2f} / {r['lag_p99']:.2f}",
            f"{r['ttft_p50']:+.1f} / {r['ttft_p99']:+.1f}",
            f"{r['cores_per_worker']:.2f}",
            f"{r['requests']:,.0f} ({'yes' if r['exact'] else 'NO'})",
            f"{r['steal']:.0f} %",
        ]
        for r in rows
    ]
    print(table(cols, cells))


def default_processes() -> str:
    """1, 2, 4, ... up to the machine's cores (at least 1,2): the same command on any machine."""
    cores = os.cpu_count() or 1
    counts = [1, 2]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return ",".join(map(str, counts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", default=default_processes())
    parser.add_argument("--users-per-process", type=int, default=500)
    parser.add_argument("--events-per-process", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate-per-process", type=float, default=100.0)
    parser.add_argument("--mock-workers", type=int, default=max(1, (os.cpu_count() or 1) // 2))
    parser.add_argument("--open-only", action="store_true", help="only the open-loop rows")
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    open_rows = [run_open(p, args.rate_per_process, args.mock_workers, args.seconds) for p in counts]
    if args.open_only:
        print_open(open_rows, args)
        return 0
    rows = [run(p, args.users_per_process, args.events_per_process, args.seconds) for p in counts]
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
    cells = [
        [
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
        for r in rows
    ]
    print(table(cols, cells))
    print_open(open_rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
