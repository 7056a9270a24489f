"""Client capacity, timing error and memory per user of llm-locust against the mock engine.

Method (as in shared/docs/performance.md): the mock engine on core 0, one Locust process on core 1
(``taskset``), closed loop, 100 tokens per response. The client's CPU (user + sys from /proc) and
the token events the mock sent are counted over a steady window after all users have spawned.
Each configuration runs at about 10k token events/s: ITL = users / 10k s. Timing errors come from
the requests sent after the ramp (and after two full request durations), see bench/steady.py.
Then 100 and 1,000 streams at about 25k events/s offered (what the mock sends from one core): the
client's capacity under load, where a lightly loaded client's per-wake-up costs no longer dominate.

    python bench/client_capacity.py [--users 100,1000,2000] [--busy-users 100,1000] [--seconds 20]
    python bench/client_capacity.py --users 64,512 --itl-ms 20   # performance.md's method
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_locust.cli import start_mock_process  # noqa: E402

TTFT_MS = 100.0
TOKENS = int(os.environ.get("BENCH_TOKENS", "100"))
EVENTS_PER_S = 10_000
BUSY_EVENTS_PER_S = 25_000


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def mock_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/mock/stats", timeout=5) as r:
        return json.loads(r.read())["served"]  # type: ignore[no-any-return]


def offered_itl_ms(users: int, itl_ms: float | None) -> float:
    """The configured ITL, else the one that offers EVENTS_PER_S."""
    return itl_ms if itl_ms is not None else users / EVENTS_PER_S * 1000


def steal_s() -> float:
    """CPU seconds the hypervisor gave to other guests so far, over all CPUs (/proc/stat's steal):
    where this grows during a run, its timings describe the host, not the client."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def run(
    users: int,
    seconds: float,
    itl: float | None = None,
    api: str = "openai-chat",
    bare: str = "",
    extra: tuple[str, ...] = (),
    mock_extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One configuration; ``api``: the flavor the users speak; ``bare``: plain Locust users of
    bench/bare_locust.py in that mode ("floor" or "measure") instead of llm-locust's; ``extra``:
    more llm-locust options (a workload); ``mock_extra``: more mock options."""
    itl_ms = offered_itl_ms(users, itl)
    mock, url = start_mock_process(
        "--engine", "fixed", "--ttft-ms", str(TTFT_MS), "--itl-ms", f"{itl_ms:g}",
        "--output-tokens", str(TOKENS), *mock_extra,
    )  # fmt: skip
    subprocess.run(["taskset", "-pc", "0", str(mock.pid)], capture_output=True, check=False)
    out = Path(tempfile.mkdtemp()) / "r.json"
    request_s = (TTFT_MS + TOKENS * itl_ms) / 1000
    warm_s = max(4.0, users / 500 + 2) + request_s + 1  # ramp, then one full request on every connection
    locustfile = ROOT / "bench" / ("bare_locust.py" if bare else "steady.py")
    cmd = [
        *pin(1), sys.executable, "-m", "locust", "-f", str(locustfile), "--headless",
        "--host", url, "--only-summary", "--loglevel", "WARNING", "--stop-timeout", str(int(request_s + 10)),
    ]  # fmt: skip
    if not bare:
        cmd += ["--model", "mock", "--api", api, "--llm-json", str(out), *extra]
    env = {**os.environ, "BENCH_USERS": str(users), "BENCH_WARM_S": f"{warm_s:g}", "BARE_MODE": bare}
    env["BENCH_STEADY_S"] = f"{seconds + 2:g}"
    client = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(warm_s)
        cpu0, ev0, t0 = cpu_s(client.pid), mock_stats(url).get("tokens_sent", 0), time.monotonic()
        steal0 = steal_s()
        time.sleep(seconds / 2)
        rss = rss_kib(client.pid)
        time.sleep(seconds / 2)
        served = mock_stats(url)
        cpu1, ev1, t1 = cpu_s(client.pid), served.get("tokens_sent", 0), time.monotonic()
        steal = (steal_s() - steal0) / ((t1 - t0) * (os.cpu_count() or 1))
        _, err = client.communicate(timeout=120)
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    events = ev1 - ev0
    if bare:
        return {
            "users": users,
            "itl_ms": itl_ms,
            "events_per_s": events / (t1 - t0),
            "cpu_share": (cpu1 - cpu0) / (t1 - t0),
            "events_per_cpu_s": events / max(cpu1 - cpu0, 1e-9),
            "steal_share": steal,
        }
    if not out.exists():
        raise RuntimeError(f"locust wrote no results (exit {client.returncode}): {err[-2000:]}")
    res = json.loads(out.read_text())
    steady = next(level for level in res["levels"] if level["users"] == "steady")
    return {
        "users": users,
        "itl_ms": itl_ms,
        "events_per_s": events / (t1 - t0),
        "cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "events_per_cpu_s": events / max(cpu1 - cpu0, 1e-9),
        "steal_share": steal,
        "ttft_err_p50": steady["median_ttft_ms"] - TTFT_MS,
        "ttft_err_p99": steady["p99_ttft_ms"] - TTFT_MS,
        "itl_err_p50": steady["median_itl_ms"] - itl_ms,
        "itl_err_p99": steady["p99_itl_ms"] - itl_ms,
        "itl_err_mean": steady["mean_itl_ms"] - itl_ms,
        "rss_mib": rss / 1024,
        "mock_late_pct": 100 * served.get("tokens_late_over_5ms", 0) / max(served.get("tokens_sent", 1), 1),
        "mock_read_late_pct": 100 * served.get("requests_read_late_over_5ms", 0) / max(served["requests"], 1),
        "mock_first_late_pct": 100 * served.get("first_tokens_late_over_5ms", 0) / max(served["requests"], 1),
        "completed": steady["completed"],
        "readers": ",".join(sorted(res["client"].get("readers", {}))),
        "lag_p99": res["client"]["loop_lag_ms"]["p99"],
        "failed": steady["failed"],
    }


def gevent_floor(users: int, seconds: float, itl: float | None = None) -> tuple[float, float]:
    """(events/s, events per CPU-s) of bench/gevent_floor.py: readline only, no Locust, no parsing."""
    itl_ms = offered_itl_ms(users, itl)
    mock, url = start_mock_process("--engine", "fixed", "--ttft-ms", str(TTFT_MS), "--itl-ms", f"{itl_ms:g}",
                                   "--output-tokens", str(TOKENS))  # fmt: skip
    subprocess.run(["taskset", "-pc", "0", str(mock.pid)], capture_output=True, check=False)
    try:
        cmd = [
            *pin(1),
            sys.executable,
            str(ROOT / "bench" / "gevent_floor.py"),
            url,
            str(users),
            str(seconds),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    finally:
        mock.terminate()
        mock.wait(timeout=10)
    rate, _cpu, per_cpu = out.stdout.split()
    return float(rate), float(per_cpu)


def sse_layer_cost_us() -> dict[str, float]:
    """µs per event of SSE framing alone: sseclient-py, our decoder, and a bare readline loop."""
    from sseclient import SSEClient

    from llm_locust.wire.sse import iter_events

    chunk = b'{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" the"}}]}'
    n = 200_000
    lines = [b"data: " + chunk + b"\n", b"\n"] * n
    clock = time.perf_counter

    def reader():  # type: ignore[no-untyped-def]
        it = iter(lines)
        return lambda sep: next(it, b"")

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) / n * 1e6

    def ours() -> None:
        for _ in iter_events(reader(), clock):
            pass

    def sseclient_py() -> None:
        readline = reader()

        def source():  # type: ignore[no-untyped-def]
            while line := readline(b"\n"):
                yield line

        for _ in SSEClient(source()).events():
            clock()

    def bare() -> None:
        readline = reader()
        while raw := readline(b"\n"):
            if raw.startswith(b"data:"):
                clock()

    return {
        "sseclient-py": timed(sseclient_py),
        "llm_locust.wire.sse": timed(ours),
        "bare readline": timed(bare),
    }


def table(rows: list[dict[str, float]], per_user_column: bool) -> None:
    head = (
        "| users | ITL ms | events/s | client CPU | events per CPU-s | ΔTTFT p50 / p99 ms"
        " | ΔITL mean / p50 / p99 ms | RSS MiB | KiB per user | ok / failed | mock tokens >5 ms late"
        " | mock first tokens >5 ms late | mock requests read >5 ms late | client loop lag p99 ms |"
    )
    print(head)
    print("|" + "---|" * 14)
    base = rows[0]
    for r in rows:
        per_user = float("nan")
        if per_user_column and r is not base:
            per_user = (r["rss_mib"] - base["rss_mib"]) * 1024 / (r["users"] - base["users"])
        print(
            f"| {r['users']:.0f} | {r['itl_ms']:g} | {r['events_per_s']:,.0f} | {r['cpu_share']:.0%} | "
            f"{r['events_per_cpu_s']:,.0f} | {r['ttft_err_p50']:+.2f} / {r['ttft_err_p99']:+.2f} | "
            f"{r['itl_err_mean']:+.3f} / {r['itl_err_p50']:+.2f} / {r['itl_err_p99']:+.2f} | "
            f"{r['rss_mib']:.1f} | {per_user:.1f} | {r['completed']:.0f} / {r['failed']:.0f} | "
            f"{r['mock_late_pct']:.2f} % | {r['mock_first_late_pct']:.2f} % | "
            f"{r['mock_read_late_pct']:.2f} % | {r['lag_p99']:.2f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", default="100,1000,2000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--itl-ms", type=float, default=None, help="fixed ITL (default: ~10k events/s)")
    parser.add_argument(
        "--busy-users", default="100,1000",
        help="then these users at ~25k events/s offered, about what the mock sends from one core: "
        "the client's capacity under load ('' to skip)",
    )  # fmt: skip
    args = parser.parse_args()
    rows = [run(int(u), args.seconds, args.itl_ms) for u in args.users.split(",")]
    busy_users = [int(u) for u in args.busy_users.split(",") if u]
    busy = [run(u, args.seconds, u / BUSY_EVENTS_PER_S * 1000) for u in busy_users]
    print(f"\nllm-locust client capacity vs the mock (fixed engine, TTFT {TTFT_MS:g} ms,")
    offered = f"ITL {args.itl_ms:g} ms" if args.itl_ms else f"~{EVENTS_PER_S} token events/s offered"
    print(f"{TOKENS} tokens/response, {offered};")
    print("mock on core 0, one Locust process on core 1)\n")
    table(rows, per_user_column=True)
    print("\nKiB per user = marginal RSS over the first row.")
    if busy:
        limit = "about the mock's limit on one core"
        print(f"\nUnder load: ~{BUSY_EVENTS_PER_S:,} token events/s offered ({limit})\n")
        table(busy, per_user_column=False)
    rate, per_cpu = gevent_floor(int(rows[0]["users"]), args.seconds, args.itl_ms)
    print(f"\nFloor, same setup as the first row: {rows[0]['users']:.0f} streams read by geventhttpclient")
    print(f"readline (no Locust, no parsing, no metrics), {rate:,.0f} events/s at {per_cpu:,.0f} per CPU-s.")
    costs = sse_layer_cost_us()
    print("SSE framing cost per event (µs): " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
