"""Soak: many users against the mock engine for a long time, with faults; memory, descriptors,
greenlets and exact counts, as tables to paste in an issue note.

    python bench/soak.py [--users 1000] [--duration 30m] [--warmup 2m] [--interval 30] [--processes 2]
                         [--ttft-ms 100] [--itl-ms 100] [--output-tokens 32] [--fault-rate 0.01]

What runs: ``llm-locust mock`` (``--engine fixed``, every fault kind of ``llm_locust.mock.server.FAULTS``
at random) and ``locust -f locustfiles/chat.py,bench/soak_locustfile.py --headless --processes N``
against it, all on 127.0.0.1. "1 % random faults of every kind" is read as 1 % of the requests in
total, spread evenly over the kinds: each kind at ``--fault-rate / len(FAULTS)``. ``--stall-s``
(mock) is longer than ``--request-timeout`` (client), so ``stall`` and ``slow_headers`` end as
client timeouts, as ``FAULT_OUTCOMES`` expects. The defaults (ITL 100 ms, 32 tokens: about 10
tokens/s per user, 10k token events/s at 1,000 users) leave headroom on 2 cores.

What it measures, at ticks ``k * --interval`` seconds from the start, for the master, every worker
(the master's children) and the mock: RSS and open descriptors from /proc (outside), greenlets
from inside each Locust process (bench/soak_locustfile.py, same ticks; the mock has none to count).
Growth is from the first tick at or after ``--warmup`` to the last one read before Locust logged
that it stops the users (the run's end; all users run in between). At the end: the client's results
JSON against the mock's ``/mock/stats`` (every fault injected vs the client's category for it,
summed per category; ok, tokens, requests), and lines containing "Traceback" in the output of every
process (Locust's ERROR lines are printed too, not judged).

Targets, one PASS/FAIL line each; exit status 1 when one is missed (2: the run itself failed):
  - RSS growth after the warm-up < ``--rss-growth-pct`` (5) for every Locust process, judged on the
    peaks: the highest RSS in the last quarter of the samples after the warm-up against the highest
    in the first quarter. The master's RSS swings by 10 % between samples (hdrh's decode_and_add
    decodes each worker report's histograms into fresh 264 KiB arrays; seen 126 -> 134 -> 126 -> 142
    MiB within 40 s at 200 users), so two single samples would measure where in a swing each fell;
    a leak raises the peaks. The end-vs-warm-up figure is printed next to it;
  - descriptors flat: max - min after the warm-up <= max(10, 2 % of max) for every Locust process
    (faults close connections that the next request reopens, so a few come and go);
  - greenlets flat, by the same rule with max(5, 1 %), and the sampler's count equal to a full walk
    of every object at the end (its own check);
  - counts exact; every worker reported, none lost;
  - zero tracebacks.
The mock's RSS and descriptors are printed for reference, not judged: it is the instrument.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_locust.metrics.records import FAILURE_CATEGORIES  # noqa: E402
from llm_locust.mock.server import FAULT_OUTCOMES, FAULTS  # noqa: E402

#: the outside read of tick k happens this long after it, once every process has written its own
READ_LAG_S = 1.0
#: what Locust logs when --run-time is over and it begins to stop the users
STOPPING_LINE = "--run-time limit reached"
LOG_ERROR = re.compile(r"/(ERROR|CRITICAL)/")
#: proxies from the environment would take the mock's stats elsewhere: only ever 127.0.0.1
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def parse_duration(text: str) -> float:
    """Seconds from '1800', '90s', '30m', '1h' or '1h30m'."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not parts or not any(parts.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 90s or 1h30m")
    h, m, s = (int(g or 0) for g in parts.groups())
    return float(h * 3600 + m * 60 + s)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (tests/conftest.py's, without pytest)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- /proc ----------------------------------------------------------------------------------------
def rss_kib(pid: int) -> int | None:
    """VmRSS of a process, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def open_fds(pid: int) -> int | None:
    """Open descriptors of a process, None once it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def kill_tree(client: subprocess.Popen[bytes]) -> None:
    """SIGKILL a Locust master still running and its workers, by pid (nothing else)."""
    if client.poll() is None:
        for pid in (*children(client.pid), client.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        client.wait()


# -- the mock -------------------------------------------------------------------------------------
def get_json(url: str, timeout_s: float = 10.0) -> Any:
    with _DIRECT.open(url, timeout=timeout_s) as r:
        return json.loads(r.read())


def start_mock(args: Sequence[str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``llm-locust mock --port 0 ARGS`` with stdout and stderr in ``log_path`` (start_mock_process of
    llm_locust/cli.py keeps a pipe that nobody reads later, and lets stderr through): its URL once
    /health answers."""
    log = log_path.open("wb")
    cmd = [sys.executable, "-m", "llm_locust", "mock", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent)
    log.close()
    deadline = time.monotonic() + 30
    url = ""
    while not url:
        found = re.search(r"(http://127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
        if found:
            url = found.group(1)
        elif proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mock engine did not start: {log_path.read_text(errors='replace')[-2000:]}")
        else:
            time.sleep(0.05)
    while True:
        try:
            get_json(url + "/health", timeout_s=1)
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)


# -- samples --------------------------------------------------------------------------------------
@dataclass
class Proc:
    """One process's figures per tick: k -> value."""

    label: str
    pid: int
    rss_kib: dict[int, int] = field(default_factory=dict)
    fds: dict[int, int] = field(default_factory=dict)
    greenlets: dict[int, int] = field(default_factory=dict)
    gc_young: dict[int, int] = field(default_factory=dict)
    cost_ms: list[float] = field(default_factory=list)  # wall time of each sample (preemption included)
    cpu_ms: list[float] = field(default_factory=list)  # CPU time of each sample
    freeze_ms: float = 0.0  # the longest greenlet bookkeeping at a gc.freeze (wall)
    check: tuple[int, int] | None = None  # (sampler's greenlet count, full walk) at test_stop
    is_locust: bool = True


def read_inside(path: Path, procs: dict[int, Proc]) -> None:
    """Join what each Locust process wrote itself (bench/soak_locustfile.py) by pid and tick."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        proc = procs.get(rec["pid"])
        if proc is None:
            continue
        if rec.get("check"):
            proc.check = (rec["greenlets"], rec["greenlets_full_walk"])
            continue
        proc.greenlets[rec["k"]] = rec["greenlets"]
        proc.gc_young[rec["k"]] = rec["gc_young"]
        proc.cost_ms.append(rec["cost_ms"])
        proc.cpu_ms.append(rec["cpu_ms"])
        proc.freeze_ms = max(proc.freeze_ms, rec.get("freeze_ms", 0.0))


# -- formatting -----------------------------------------------------------------------------------
def table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def mib(kib: int | None) -> str:
    return "—" if kib is None else f"{kib / 1024:.1f}"


def num(v: int | None) -> str:
    return "—" if v is None else f"{v:,}"


def spread(values: list[int]) -> str:
    return f"{min(values):,} / {max(values):,}" if values else "—"


def is_flat(values: list[int], floor: int, share: float) -> bool:
    """max - min within max(floor, share * max): a level that comes and goes a little, no trend."""
    return bool(values) and max(values) - min(values) <= max(floor, share * max(values))


# -- the run --------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--spawn-rate", type=float, default=50.0, help="users started per second (default 50)")
    p.add_argument("--processes", type=int, default=2, help="Locust worker processes (default 2)")
    p.add_argument("--duration", type=parse_duration, default=1800.0, help="run time (default 30m)")
    p.add_argument("--warmup", type=parse_duration, default=120.0, help="growth counts after (default 2m)")
    p.add_argument("--interval", type=parse_duration, default=30.0, help="seconds between samples (30)")
    p.add_argument("--engine", default="fixed", help="mock engine (default fixed)")
    p.add_argument("--ttft-ms", type=float, default=100.0)
    p.add_argument("--itl-ms", type=float, default=100.0)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--fault-rate", type=float, default=0.01, help="share of requests with a fault (0.01)")
    p.add_argument("--request-timeout", type=float, default=10.0, help="client --request-timeout (10)")
    p.add_argument("--stall-s", type=float, default=15.0, help="mock --stall-s, > --request-timeout (15)")
    p.add_argument("--stop-timeout", type=int, default=30, help="client --stop-timeout (30)")
    p.add_argument("--seed", type=int, default=1, help="mock --seed (faults drawn reproducibly)")
    p.add_argument("--rss-growth-pct", type=float, default=5.0, help="target: RSS growth below (5)")
    p.add_argument("--out", type=Path, default=None, help="logs and JSON here (default: a temp dir)")
    args = p.parse_args(argv)
    if args.stall_s <= args.request_timeout:
        p.error("--stall-s must be longer than --request-timeout (stall and slow_headers end as timeouts)")
    if args.warmup + args.interval > args.duration:
        p.error("--duration must leave at least one --interval after --warmup")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir: Path = args.out or Path(tempfile.mkdtemp(prefix="llm-locust-soak-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    mock_log, client_log = out_dir / "mock.log", out_dir / "locust.log"
    samples, results_json = out_dir / "samples.jsonl", out_dir / "results.json"
    samples.unlink(missing_ok=True)
    results_json.unlink(missing_ok=True)

    per_kind = args.fault_rate / len(FAULTS)
    faults = [a for kind in FAULTS for a in ("--fault", f"{kind}:{per_kind:.10g}")]
    timing = ["--ttft-ms", f"{args.ttft_ms:g}", "--itl-ms", f"{args.itl_ms:g}"]
    mock_args = ["--engine", args.engine, *timing, "--output-tokens", str(args.output_tokens), *faults,
                 "--stall-s", f"{args.stall_s:g}", "--seed", str(args.seed)]  # fmt: skip
    mock, url = start_mock(mock_args, mock_log)

    port = str(free_port())  # a master port of its own: never joined by another run's workers
    locustfiles = f"{ROOT / 'locustfiles' / 'chat.py'},{ROOT / 'bench' / 'soak_locustfile.py'}"
    cmd = [sys.executable, "-m", "locust", "-f", locustfiles, "--headless", "--only-summary",
           "--processes", str(args.processes), "--host", url, "-u", str(args.users),
           "-r", f"{args.spawn_rate:g}", "-t", f"{math.ceil(args.duration)}s",
           "--stop-timeout", str(args.stop_timeout), "--model", "mock",
           "--max-tokens", str(args.output_tokens), "--request-timeout", f"{args.request_timeout:g}",
           "--llm-json", str(results_json),
           "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-port", port]  # fmt: skip
    t0 = float(math.ceil(time.time()))
    env = {
        **os.environ,
        "SOAK_SAMPLES": str(samples),
        "SOAK_T0": f"{t0:.0f}",
        "SOAK_INTERVAL_S": f"{args.interval:g}",
    }
    request_s = (args.ttft_ms + args.output_tokens * args.itl_ms) / 1000
    print(
        f"soak: {args.users} users, --processes {args.processes}, {args.duration:g} s "
        f"(warm-up {args.warmup:g} s, a sample every {args.interval:g} s); mock {args.engine} TTFT "
        f"{args.ttft_ms:g} ms, ITL {args.itl_ms:g} ms, {args.output_tokens} tokens "
        f"(~{args.users / request_s:,.0f} req/s, ~{args.users * 1000 / args.itl_ms:,.0f} token events/s); "
        f"faults {args.fault_rate:.2%} of requests, {per_kind:.4%} each of {len(FAULTS)} kinds",
        flush=True,
    )
    print(f"soak: logs and results in {out_dir}", flush=True)

    procs: dict[int, Proc] = {}
    mock_proc = Proc("mock", mock.pid, is_locust=False)
    with client_log.open("wb") as log:
        client = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=out_dir, env=env)
    procs[client.pid] = Proc("master", client.pid)
    last_k = end_k = 0  # the last tick read, and the last one read before the run began to stop
    # a client that never stops (workers that hang) ends the soak too: killed, and reported as such
    deadline = t0 + args.duration + args.stop_timeout + 120
    try:
        k = 1
        while client.poll() is None:
            if time.time() > deadline:
                print(f"soak: locust still running {time.time() - t0:.0f} s after the start: killed")
                break
            k = max(k, int((time.time() - t0 - READ_LAG_S) // args.interval) + 1)
            wake = t0 + k * args.interval + READ_LAG_S
            while client.poll() is None and time.time() < wake:
                time.sleep(min(0.5, max(0.0, wake - time.time())))
            if client.poll() is not None:
                break
            for pid in children(client.pid):
                if pid not in procs:
                    procs[pid] = Proc(
                        f"worker {sum(p.label.startswith('worker') for p in procs.values()) + 1}", pid
                    )
            for proc in (*procs.values(), mock_proc):
                rss, fds = rss_kib(proc.pid), open_fds(proc.pid)
                if rss is not None and fds is not None:
                    proc.rss_kib[k], proc.fds[k] = rss, fds
            last_k = k
            # Locust's clock starts a second or two after ours: its log says when it stops the users
            if STOPPING_LINE not in client_log.read_text(errors="replace"):
                end_k = k
                print(
                    f"soak: t={k * args.interval:g}s  "
                    + "  ".join(
                        f"{p.label} {mib(p.rss_kib.get(k))} MiB {num(p.fds.get(k))} fds"
                        for p in (*procs.values(), mock_proc)
                    ),
                    flush=True,
                )
            k += 1
        kill_tree(client)  # past the deadline
        client.wait()
        served: dict[str, int] = get_json(url + "/mock/stats")["served"]
    finally:
        kill_tree(client)  # this script interrupted
        mock.terminate()
        try:
            mock.wait(timeout=10)
        except subprocess.TimeoutExpired:
            mock.kill()
            mock.wait()
    read_inside(samples, procs)
    if not results_json.exists():
        print(f"soak: FAIL: locust exited {client.returncode} without results; see {client_log}")
        print(client_log.read_text(errors="replace")[-3000:])
        return 2
    results = json.loads(results_json.read_text())
    return report(
        args,
        results,
        served,
        [*procs.values(), mock_proc],
        last_k,
        end_k,
        {"locust": client_log, "mock": mock_log},
        client.returncode,
    )


def report(
    args: argparse.Namespace,
    res: dict[str, Any],
    served: dict[str, int],
    procs: list[Proc],
    last_k: int,
    end_k: int,
    logs: dict[str, Path],
    client_rc: int,
) -> int:
    """Print the tables and one PASS/FAIL line per target; 0 when all pass, else 1."""
    ticks = range(1, last_k + 1)
    first_k = next((k for k in ticks if k * args.interval >= args.warmup), 0)
    if not first_k or end_k <= first_k:
        print(
            f"soak: FAIL: no two samples between the warm-up and the end (ticks read: {last_k}, last "
            f"before stopping: {end_k}); see {logs['locust']}"
        )
        return 2
    window = [k for k in ticks if first_k <= k <= end_k]
    checks: list[tuple[bool, str]] = []

    print(
        f"\n## Soak: {args.users} users, --processes {args.processes}, {args.duration:g} s, "
        f"{args.fault_rate * 100:g} % faults over {len(FAULTS)} kinds, mock ITL {args.itl_ms:g} ms x "
        f"{args.output_tokens} tokens, on {os.cpu_count()} cores\n"
    )
    print("Over time: RSS MiB / open fds / greenlets per process (mock: RSS / fds)\n")
    rows = []
    for k in ticks:
        t = k * args.interval
        note = " (warm-up)" if k < first_k else " (stopping)" if k > end_k else ""
        cells = [f"{t:g}{note}"]
        for p in procs:
            cell = f"{mib(p.rss_kib.get(k))} / {num(p.fds.get(k))}"
            cells.append(cell + (f" / {num(p.greenlets.get(k))}" if p.is_locust else ""))
        rows.append(cells)
    print(table(["t s", *(f"{p.label} ({p.pid})" for p in procs)], rows))

    print(f"\nAfter the warm-up: t={first_k * args.interval:g} s to t={end_k * args.interval:g} s\n")
    rows = []
    for p in procs:
        warm, end = p.rss_kib.get(first_k), p.rss_kib.get(end_k)
        growth = 100 * (end - warm) / warm if warm and end is not None else math.nan
        rss_w = [p.rss_kib[k] for k in window if k in p.rss_kib]
        quarter = max(1, len(rss_w) // 4)
        peak0, peak1 = max(rss_w[:quarter], default=0), max(rss_w[-quarter:], default=0)
        peak_growth = 100 * (peak1 - peak0) / peak0 if peak0 else math.nan
        fds_w = [p.fds[k] for k in window if k in p.fds]
        gl_w = [p.greenlets[k] for k in window if k in p.greenlets]
        young_w = [p.gc_young[k] for k in window if k in p.gc_young]
        cost = f"{max(p.cpu_ms):.1f} / {max(p.cost_ms):.1f}" if p.cost_ms else "—"
        rows.append(
            [
                p.label,
                mib(warm),
                mib(end),
                f"{growth:+.2f} %",
                f"{mib(peak0)} → {mib(peak1)}",
                f"{peak_growth:+.2f} %",
                spread(fds_w),
                spread(gl_w) if p.is_locust else "—",
                spread(young_w) if p.is_locust else "—",
                cost,
            ]
        )
        if not p.is_locust:
            continue
        checks.append(
            (
                peak_growth < args.rss_growth_pct,
                f"RSS growth of {p.label}: peaks {peak_growth:+.2f} % (< {args.rss_growth_pct:g} %; "
                f"end vs warm-up end {growth:+.2f} %)",
            )
        )
        checks.append((is_flat(fds_w, 10, 0.02), f"fds of {p.label} flat: {spread(fds_w)} (min / max)"))
        checks.append((is_flat(gl_w, 5, 0.01), f"greenlets of {p.label} flat: {spread(gl_w)} (min / max)"))
        if p.check is None:
            checks.append((False, f"greenlet count of {p.label}: no end-of-run check written"))
        else:
            checks.append(
                (
                    p.check[0] == p.check[1],
                    f"greenlet count of {p.label} at the end: sampler "
                    f"{p.check[0]:,}, full walk {p.check[1]:,}",
                )
            )
    cols = [
        "process",
        "RSS MiB at warm-up end",
        "RSS MiB at end",
        "growth",
        "peak MiB first ¼ → last ¼",
        "peak growth",
        "fds min / max",
        "greenlets min / max",
        "gc young objects min / max",
        "sampler max ms CPU / wall",
    ]
    print(table(cols, rows))
    locust_procs = [p for p in procs if p.is_locust]
    print(
        "\nSampler: greenlets counted in each process's event loop every sample (the CPU / wall ms above); "
        "once per gc.freeze a walk of the unfrozen objects: longest "
        + ", ".join(f"{p.label} {p.freeze_ms:.1f} ms" for p in locust_procs)
    )

    print("\nExact comparison with what the mock served\n")
    rows, exact = [], True

    def compare(what: str, mock_n: int, client_n: int) -> None:
        nonlocal exact
        ok = mock_n == client_n
        exact &= ok
        rows.append([what, f"{mock_n:,}", f"{client_n:,}", "=" if ok else f"DIFF {client_n - mock_n:+,}"])

    failures: dict[str, int] = res.get("failures") or {}
    for category in FAILURE_CATEGORIES:
        kinds = [kind for kind in FAULTS if FAULT_OUTCOMES[kind] == category]
        injected = sum(served.get(f"injected:{kind}", 0) for kind in kinds)
        compare(f"{category} ← {', '.join(kinds) or 'no fault'}", injected, failures.get(category, 0))
    for category in sorted(set(failures) - set(FAILURE_CATEGORIES)):
        compare(f"{category} (unknown category)", 0, failures[category])
    ok_kinds = [kind for kind in FAULTS if FAULT_OUTCOMES[kind] == "ok"]
    injected_ok = ", ".join(f"{kind} {served.get(f'injected:{kind}', 0):,}" for kind in ok_kinds)
    compare(f"completed = mock ok (incl. {injected_ok})", served.get("ok", 0), res["completed"])
    compare("not_streamed ← no_stream", served.get("injected:no_stream", 0), res.get("not_streamed", 0))
    compare("output tokens", served.get("output_tokens", 0), res["total_output_tokens"])
    compare("input tokens", served.get("prompt_tokens", 0), res["total_input_tokens"])
    cancelled = res.get("cancelled", 0)
    total = res["completed"] + res["failed"] + cancelled
    compare(
        f"completed + failed + cancelled ({cancelled:,} cancelled) = mock requests",
        served.get("requests", 0),
        total,
    )
    print(table(["count", "mock", "client", ""], rows))
    if cancelled:
        print(
            f"\n{cancelled:,} request(s) cancelled at the end: the mock counted each as served (and any "
            f"fault it drew), the client as cancelled. With --stop-timeout {args.stop_timeout} s longer "
            f"than --request-timeout {args.request_timeout:g} s, none should be."
        )
    print(
        f"\nmock: {served.get('requests', 0):,} requests, {served.get('aborted', 0):,} streams the client "
        f"left before their end, {sum(v for k, v in served.items() if k.startswith('injected:')):,} faults; "
        f"tokens >5 ms late {served.get('tokens_late_over_5ms', 0):,} of {served.get('tokens_sent', 0):,}"
    )
    client = res.get("client") or {}
    lag = client.get("loop_lag_ms") or {}
    print(
        f"client: event-loop lag p50/p99/max {lag.get('p50')}/{lag.get('p99')}/{lag.get('max')} ms, "
        f"busiest process {client.get('cpu_share_max')} of a core; locust exit code {client_rc} "
        "(1 when any request failed)"
    )
    checks.append((exact, "counts exact"))
    meta = res.get("metadata") or {}
    lost = meta.get("workers_lost") or []
    checks.append(
        (
            meta.get("workers") == args.processes and not lost,
            f"workers: {meta.get('workers')} of {args.processes} reported, lost: {lost or 'none'}",
        )
    )

    print("\nTracebacks (lines containing 'Traceback')\n")
    found = 0
    for name, path in logs.items():
        lines = path.read_text(errors="replace").splitlines()
        hits = [i for i, line in enumerate(lines) if "Traceback" in line]
        found += len(hits)
        print(f"- {name} ({path}): {len(hits)}")
        for i in hits[:5]:  # the first few, with what follows: where it came from and the error
            print("    " + "\n    ".join(lines[max(0, i - 1) : i + 12]))
    checks.append((found == 0, f"zero tracebacks: {found}"))
    errors = [ln for ln in logs["locust"].read_text(errors="replace").splitlines() if LOG_ERROR.search(ln)]
    print(f"\nLocust log lines at ERROR or CRITICAL (not a target, for the reader): {len(errors)}")
    for line in errors[:10]:
        print("    " + line)

    print("\nTargets\n")
    for ok, what in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
