"""``llm-locust``: ``mock`` (the built-in engine), ``demo`` (mock + the seed ladder, short),
``compare`` (results files side by side) and ``report`` (summary, JSON, CSV and HTML from a results
file, or from the request lines of ``--llm-requests``)."""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from typing import Any, TextIO

from llm_locust.mock.engine import ENGINES


def _fault_spec(text: str) -> tuple[str, float]:
    from llm_locust.mock.server import FAULTS

    kind, _, prob = text.partition(":")
    if kind not in FAULTS:
        raise argparse.ArgumentTypeError(f"--fault {kind!r} is unknown; choose one of {', '.join(FAULTS)}")
    try:
        p = float(prob) if prob else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fault {text!r}: probability must be a number in [0, 1]"
        ) from None
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"--fault {text!r}: probability must be in [0, 1]")
    return kind, p


def _fault_help() -> str:
    from llm_locust.mock.server import FAULT_HELP

    return FAULT_HELP


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    # no prefix matching: a misspelt option is refused, not silently taken for another
    parser = argparse.ArgumentParser(prog="llm-locust", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser(
        "mock", allow_abbrev=False, help="Run the mock engine (every API flavor: OpenAI, Ollama, Anthropic)"
    )
    m.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1)")
    m.add_argument("--port", type=int, default=8000, help="Port (0 picks a free one; default 8000)")
    m.add_argument("--model", default="mock", help="Model id served (default 'mock')")
    m.add_argument("--engine", choices=ENGINES, default="batching", help="Timing model (default batching)")
    m.add_argument("--ttft-ms", type=_non_negative, default=150.0, help="Time to first token (default 150)")
    m.add_argument(
        "--itl-ms", type=_non_negative, default=20.0, help="Inter-token latency, alone (default 20)"
    )
    m.add_argument(
        "--jitter-ms", type=_non_negative, default=0.0, help="Uniform +/- jitter per token (default 0)"
    )
    m.add_argument(
        "--output-tokens", type=int, default=None, help="Tokens per response (default: max_tokens)"
    )
    m.add_argument(
        "--max-seqs", type=int, default=256, help="batching: sequences decoded together (default 256)"
    )
    m.add_argument(
        "--batch-exponent",
        type=_non_negative,
        default=0.25,
        help="batching: step time = itl * running**exponent (default 0.25)",
    )
    m.add_argument("--slots", type=int, default=4, help="slots: parallel slots (default 4)")
    m.add_argument(
        "--reasoning-tokens",
        type=int,
        default=0,
        metavar="N",
        help="The first N tokens of every answer are reasoning text, in each API's reasoning field "
        "(default 0)",
    )
    m.add_argument(
        "--fault",
        type=_fault_spec,
        action="append",
        default=[],
        help="Inject KIND[:PROBABILITY] at random (repeatable). " + _fault_help(),
    )
    m.add_argument("--stall-s", type=_non_negative, default=30.0, help="How long a 'stall' fault pauses")
    m.add_argument(
        "--prefix-cache-block",
        type=int,
        default=16,
        metavar="N",
        help="Prefix cache block, in prompt tokens: a request's cached tokens are its longest prefix of "
        "whole blocks that an earlier request sent, reported in each API's cached-tokens field (Ollama "
        "has none); 0 turns the cache off (default 16)",
    )
    m.add_argument(
        "--record-prompts",
        action="store_true",
        help="Count each request's last user message (by the first 16 hex digits of its SHA-256) in "
        "/mock/stats served.prompts, for exactly-once tests (memory grows with distinct prompts)",
    )
    m.add_argument(
        "--record-arrivals",
        action="store_true",
        help="Keep when each generation request reached the socket and when its answer ended (its "
        "last write began, or the connection was cut off), for "
        "/mock/stats served.arrivals_s (every arrival, sorted, on the perf_counter/CLOCK_MONOTONIC "
        "clock) and served.peak_in_flight (the most requests in flight at once), over all --workers, "
        "to check a client's arrival process and concurrency cap (the last 1,000,000 requests per "
        "process)",
    )
    m.add_argument(
        "--metrics",
        choices=("vllm", "llamacpp", "off"),
        default="off",
        help="Serve GET /metrics (Prometheus text) in vLLM's or llama.cpp's names, counting what the mock "
        "served (one process only: not with --workers) (default off)",
    )
    m.add_argument("--seed", type=int, default=None, help="Random seed for faults and jitter")
    m.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="Serve the port from N processes (SO_REUSEPORT: the kernel spreads connections over them), "
        "so that the mock is not the bottleneck; /mock/stats sums all and /mock/reset resets all. Each "
        "process has its own engine and prefix cache: --slots and --max-seqs are per process, N times "
        "the capacity, as N replicas behind a load balancer (default 1)",
    )
    # internal: set by the parent of --workers N for each of its workers
    m.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    m.add_argument("--tls-cert", default=None, metavar="PEM", help="Serve HTTPS with this certificate chain")
    m.add_argument("--tls-key", default=None, metavar="PEM", help="The private key of --tls-cert")
    d = sub.add_parser(
        "demo", allow_abbrev=False, help="Start the mock and run a short seed ladder against it"
    )
    d.add_argument(
        "--locustfile",
        default=None,
        metavar="PATH",
        help="The locustfile to run (default: the seed benchmark's, shipped with the package)",
    )
    d.add_argument("--levels", default="1,8,32", help="Users at each level of the ladder (default 1,8,32)")
    d.add_argument("--level-duration", default="6", metavar="S", help="Seconds at each level (default 6)")
    d.add_argument("--llm-json", default="", metavar="PATH", help="Also write the results file")
    c = sub.add_parser(
        "compare", allow_abbrev=False, help="Compare results files written by --llm-json, side by side"
    )
    c.add_argument("files", nargs="*", metavar="RESULTS.json", help="Two or more; the first is the baseline")
    c.add_argument("--names", default=None, help="Comma-separated run names (default: the file stems)")
    c.add_argument("--html", default=None, metavar="PATH", help="Also write a self-contained HTML report")
    r = sub.add_parser(
        "report",
        allow_abbrev=False,
        help="Print the summary of a results file, or of the results rebuilt from a --llm-requests "
        "file; --html, --json, --csv write them",
    )
    r.add_argument(
        "file",
        metavar="RESULTS.json|REQUESTS.jsonl",
        help="A results file written by --llm-json, or a requests file written by --llm-requests",
    )
    r.add_argument("--html", default=None, metavar="PATH", help="Write the self-contained HTML report")
    r.add_argument("--json", default=None, metavar="PATH", help="Write the results as --llm-json does")
    r.add_argument(
        "--csv", default=None, metavar="PATH", help="Write the metric statistics as --llm-csv does"
    )
    return parser


def _report(
    path: str, html_path: str | None, json_path: str | None = None, csv_path: str | None = None
) -> int:
    """``llm-locust report``: the end-of-run summary again, and the report files, from a results
    file or from the request lines of --llm-requests (rebuilt the way the run built its results)."""
    from llm_locust.reports.compare import CompareError, load
    from llm_locust.reports.rebuild import RequestsFileError, is_requests_file, rebuild
    from llm_locust.reports.summary import format_summary, write_csv, write_json

    try:
        try:
            results = rebuild(path) if is_requests_file(path) else load(path).results
        except RequestsFileError as exc:
            raise CompareError(str(exc)) from None
        print(format_summary(results))
        for option, out, write in (("--json", json_path, write_json), ("--csv", csv_path, write_csv)):
            if out:
                try:
                    write(out, results)
                except OSError as exc:
                    raise CompareError(f"cannot write {option} {out}: {exc.strerror}") from None
        if html_path:
            from llm_locust.reports.html import write_html

            try:
                write_html(html_path, results)
            except OSError as exc:
                raise CompareError(f"cannot write --html {html_path}: {exc.strerror}") from None
            print(f"HTML report: {html_path}")
    except CompareError as exc:
        print(f"llm-locust report: error: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:  # a results file from another version, without a key the summary needs
        print(f"llm-locust report: error: {path} has no {exc} key; write it with --llm-json", file=sys.stderr)
        return 2
    return 0


def compare(
    paths: Sequence[str],
    names: str | None = None,
    html_path: str | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``llm-locust compare``: print the comparison, optionally write the HTML; 2 on a bad input."""
    from llm_locust.reports.compare import CompareError, format_text, load_runs

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        runs = load_runs(paths, names)
        print(format_text(runs), file=out)
        if html_path:
            from llm_locust.reports.compare_html import build_html

            text = build_html(runs)
            try:
                directory = os.path.dirname(html_path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                with open(html_path, "w", encoding="utf-8") as f:
                    f.write(text)
            except OSError as exc:
                raise CompareError(f"cannot write --html {html_path}: {exc.strerror}") from None
            print(f"HTML report: {html_path}", file=out)
    except CompareError as exc:
        print(f"llm-locust compare: error: {exc}", file=err)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "mock":
        return _mock(args, sys.argv[1:] if argv is None else argv)
    if args.command == "compare":
        return compare(args.files, args.names, args.html)
    if args.command == "report":
        return _report(args.file, args.html, args.json, args.csv)
    return _demo(args)


def _mock(args: Any, argv: Sequence[str]) -> int:
    import socket

    from llm_locust.mock.engine import Engine, Timing
    from llm_locust.mock.server import MockServer
    from llm_locust.mock.workers import WorkerSpec, exit_with_parent, supervise

    for name in ("max_seqs", "slots", "workers"):
        if getattr(args, name) < 1:
            print(f"llm-locust mock: error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if args.output_tokens is not None and args.output_tokens < 0:
        print("llm-locust mock: error: --output-tokens must be >= 0", file=sys.stderr)
        return 2
    if args.reasoning_tokens < 0:
        print("llm-locust mock: error: --reasoning-tokens must be >= 0", file=sys.stderr)
        return 2
    if args.prefix_cache_block < 0:
        print("llm-locust mock: error: --prefix-cache-block must be >= 0 (0: no cache)", file=sys.stderr)
        return 2
    if bool(args.tls_cert) != bool(args.tls_key):
        print("llm-locust mock: error: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if args.metrics != "off" and args.workers > 1:  # each worker would count only what it served
        print("llm-locust mock: error: --metrics counts one process; not with --workers", file=sys.stderr)
        return 2
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    host = f"[{args.host}]" if ":" in args.host else args.host
    scheme = "https" if tls else "http"

    def announce(port: int, workers: str = "") -> None:
        print(
            f"llm-locust mock: {workers}{args.engine} engine serving model {args.model!r} on "
            f"{scheme}://{host}:{port}",
            flush=True,
        )

    if args.workers > 1 and args.worker is None:
        n = args.workers
        return supervise(argv, n, args.host, args.port, lambda port: announce(port, f"{n} workers, "))
    try:
        worker = WorkerSpec.parse(args.worker) if args.worker is not None else None
    except ValueError as exc:
        print(f"llm-locust mock: error: {exc}", file=sys.stderr)
        return 2
    seed = args.seed + worker.index if worker is not None and args.seed is not None else args.seed
    timing = Timing(
        ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, jitter_ms=args.jitter_ms, output_tokens=args.output_tokens
    )
    engine = Engine(
        args.engine,
        timing,
        slots=args.slots,
        max_seqs=args.max_seqs,
        batch_exponent=args.batch_exponent,
        seed=seed,
    )
    server = MockServer(
        engine,
        model=args.model,
        faults=dict(args.fault),
        stall_s=args.stall_s,
        seed=seed,
        reasoning_tokens=args.reasoning_tokens,
        prefix_cache_block=args.prefix_cache_block,
        record_prompts=args.record_prompts,
        record_arrivals=args.record_arrivals,
        metrics=args.metrics,
    )
    if worker is not None:  # its sockets are bound by the parent, which announces the port
        server.start(args.host, args.port, tls, listener=socket.socket(fileno=worker.listen_fd))
        server.join_workers(worker.index, worker.side_ports, socket.socket(fileno=worker.side_fd))
        exit_with_parent(server.stop)
    else:
        try:
            port = server.start(args.host, args.port, tls)
        except OSError as exc:
            print(
                f"llm-locust mock: error: cannot listen on {args.host}:{args.port}: {exc.strerror}",
                file=sys.stderr,
            )
            return 1
        announce(port)
    import gevent

    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    server.serve_forever()
    return 0


def start_mock_process(*mock_args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``llm-locust mock --port 0 ...`` in a child process; return it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_locust", "mock", "--port", "0", *mock_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "://" not in line:
        proc.kill()
        raise RuntimeError(f"mock engine did not start: {line!r}")
    url = line.rsplit(" ", 1)[1].strip()
    # our own mock on this machine: its test certificate need not be trusted for the health check
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1, context=context):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    return proc, url


def shipped_locustfile(name: str) -> str | None:
    """The path of the repository's ``locustfiles/<name>``: in an installed package it is
    ``llm_locust/locustfiles/`` (setup.py ships it there), in a source tree the folder beside the package."""
    package = os.path.dirname(os.path.abspath(__file__))
    for top in (package, os.path.dirname(package)):
        path = os.path.join(top, "locustfiles", name)
        if os.path.isfile(path):
            return path
    return None


def _demo(args: Any) -> int:
    locustfile = args.locustfile or shipped_locustfile("seed_benchmark.py")
    if locustfile is None:
        print("llm-locust demo: error: no locustfiles/seed_benchmark.py in the package; reinstall it",
              file=sys.stderr)  # fmt: skip
        return 2
    if not os.path.exists(locustfile):
        print(f"llm-locust demo: error: --locustfile {locustfile!r} not found", file=sys.stderr)
        return 2
    proc, url = start_mock_process("--engine", "batching", "--ttft-ms", "150", "--itl-ms", "20")
    try:
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            locustfile,
            "--headless",
            "--host",
            url,
            "--levels",
            args.levels,
            "--level-duration",
            str(args.level_duration),
            "--max-tokens",
            "64",
            "--stop-timeout",
            "30",
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        if args.llm_json:
            cmd += ["--llm-json", args.llm_json]
        print("$", " ".join(cmd), flush=True)
        return subprocess.call(cmd)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
