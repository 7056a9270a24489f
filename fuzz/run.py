"""``make fuzz``: the coverage-guided run of fuzz/targets.py's targets with atheris (libFuzzer).

    python fuzz/run.py [--seconds N] [--jobs J] [--targets sse,reader,...] [--c-coverage] [--asan]

Each target fuzzes in its own process for ``--seconds`` (default ``$LLM_LOCUST_FUZZ_SECONDS`` or
300), ``--jobs`` of them at a time (default: as many as there are CPUs). A target that finds a
crash or a divergence is started again on what is left of its time, so that one finding does not
end its run; the inputs are kept in ``fuzz/artifacts/`` (replay one with ``--replay FILE``). The
corpus each run grows goes to ``fuzz/work/<target>/`` (not committed); ``fuzz/corpus/<target>/``
holds the committed seeds. At the end a table gives per target the executions, libFuzzer's
coverage (``cov``: edges of the instrumented Python code of llm_locust and the targets; ``ft``:
features) and the findings.

``--c-coverage`` then measures line coverage of the C reader: the extension is built once more
with ``gcc --coverage`` in a temporary directory, every input of the seed and work corpora is
replayed with that build, and ``gcov`` reports the lines executed per C file. (atheris' libFuzzer
gets no coverage feedback from the C code itself: that needs clang's ``-fsanitize=fuzzer-no-link``,
not gcc's; the C paths are reached through the Python-guided inputs.)

``--asan`` then replays every corpus input with the extension built with gcc's AddressSanitizer
and UBSan (preloaded into Python, ``PYTHONMALLOC=malloc`` so that the extension's buffers are
checked), to catch reads or writes out of bounds and undefined behaviour that do not crash a normal
build, and prints each distinct sanitizer report. (It replays rather than fuzzes: with libasan
preloaded, atheris gets its coverage symbols from libasan and loses its coverage feedback.)
``--seconds 0`` skips the fuzzing (only the measurements on the corpora).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
#: the extension's C files, in setup.py's order
C_SOURCES = tuple(
    f"llm_locust/_native/{name}"
    for name in ("_speedups.c", "_events.c", "_chunked.c", "_plain_chunk.c", "_json_scan.c", "_hdr.c")
    if (ROOT / "llm_locust" / "_native" / name).exists()
)
TARGET_NAMES = ("sse", "reader", "plain", "plain_flavors", "content")
#: libFuzzer's inputs: a few KiB is enough (the big runs are made by Script.blown_up)
MAX_LEN = 4096


@dataclass
class Result:
    """What the runs of one target did (summed over restarts after findings)."""

    target: str
    seconds: float = 0.0
    execs: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    findings: list[str] = field(default_factory=list)
    rss_mb: int = 0


def fuzz_one(target: str, seconds: int, extra_env: dict[str, str]) -> None:
    """In the child: fuzz ``target`` with atheris for ``seconds``."""
    import atheris

    with atheris.instrument_imports(include=["llm_locust", "fuzz"]):
        sys.path.insert(0, str(ROOT))
        from fuzz import targets
    fn = targets.TARGETS[target]
    work = FUZZ / "work" / target
    work.mkdir(parents=True, exist_ok=True)
    (FUZZ / "artifacts").mkdir(exist_ok=True)
    seeds = FUZZ / "corpus" / target
    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN}",
        "-timeout=30",  # a hang: one input running longer than this
        "-rss_limit_mb=3072",  # unbounded memory (a 4 MiB line costs a few tens of MiB)
        "-print_final_stats=1",
        f"-artifact_prefix={FUZZ / 'artifacts'}/{target}-",
        str(work),
        *([str(seeds)] if seeds.is_dir() else []),
    ]
    atheris.Setup(argv, fn)
    atheris.Fuzz()


_PROGRESS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)")


def run_target(target: str, seconds: int, env: dict[str, str], log: Path) -> Result:
    """Fuzz one target for ``seconds`` in child processes (restarted after each finding)."""
    result = Result(target)
    deadline = time.monotonic() + seconds
    while (left := int(deadline - time.monotonic())) > 2:
        start = time.monotonic()
        with log.open("a") as out:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", target, "--seconds", str(left)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        result.seconds += time.monotonic() - start
        text = log.read_text(errors="replace")
        runs = text.split("INFO: Running with entropic power schedule")
        last = runs[-1] if runs else text
        progress = _PROGRESS.findall(last)
        if progress:
            _n, cov, ft, corp = map(int, progress[-1])
            result.cov, result.ft, result.corpus = max(result.cov, cov), max(result.ft, ft), corp
        execs = re.findall(r"stat::number_of_executed_units:\s+(\d+)", last)
        result.execs += int(execs[-1]) if execs else (int(progress[-1][0]) if progress else 0)
        rss = re.findall(r"stat::peak_rss_mb:\s+(\d+)", last)
        result.rss_mb = max(result.rss_mb, int(rss[-1]) if rss else 0)
        found = re.findall(r"Test unit written to (\S+)", last)
        result.findings += found
        if proc.returncode == 0 or not found:
            break  # the time is over (or the child failed before fuzzing: see the log)
    return result


def build_extension(out: Path, flags: list[str]) -> Path:
    """The extension built with ``flags`` into ``out`` (objects kept there: gcov reads them)."""
    include = sysconfig.get_paths()["include"]
    objects = []
    for src in C_SOURCES:
        obj = out / (Path(src).stem + ".o")
        cmd = ["gcc", "-fPIC", "-c", *flags, f"-I{include}", str(ROOT / src), "-o", str(obj)]
        subprocess.run(cmd, check=True)
        objects.append(str(obj))
    so = out / ("_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(["gcc", "-shared", *flags, *objects, "-o", str(so)], check=True)
    return so


def replay_all(targets: list[str], env: dict[str, str]) -> str:
    """Every corpus input of each target, once, in a child with ``env``; their output."""
    out = []
    for target in targets:
        files = [str(p) for d in ("corpus", "work") for p in sorted((FUZZ / d / target).glob("*"))]
        proc = subprocess.run(
            [sys.executable, __file__, "--replay-target", target, *files],
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
        out.append(proc.stdout + proc.stderr)
    return "\n".join(out)


def c_coverage(targets: list[str]) -> list[str]:
    """Line coverage of the C files by the corpora (gcov's summary lines)."""
    with tempfile.TemporaryDirectory(prefix="llm-locust-gcov-") as tmp:
        so = build_extension(Path(tmp), ["-O0", "-g", "--coverage"])
        replay_all(targets, {**os.environ, "LLM_LOCUST_FUZZ_SPEEDUPS": str(so)})
        lines = []
        for src in C_SOURCES:
            obj = Path(tmp) / (Path(src).stem + ".o")
            out = subprocess.run(
                ["gcov", "-n", "-o", str(obj), str(ROOT / src)],
                capture_output=True,
                text=True,
                check=False,
                cwd=tmp,
            ).stdout
            m = re.search(r"File '([^']*)'\s*\nLines executed:([\d.]+)% of (\d+)", out)
            if m:
                lines.append(f"{Path(m.group(1)).name}: {m.group(2)} % of {m.group(3)} lines")
        return lines


def sanitized(targets: list[str]) -> list[str]:
    """The distinct AddressSanitizer / UBSan reports of replaying the corpora."""
    with tempfile.TemporaryDirectory(prefix="llm-locust-asan-") as tmp:
        text = replay_all(targets, {**os.environ, **asan_env(Path(tmp))})
    found = re.findall(r"(\S+\.c:\d+:\d+: runtime error: .*|ERROR: AddressSanitizer: .*)", text)
    return sorted(set(found))


def asan_env(tmp: Path) -> dict[str, str]:
    so = build_extension(tmp, ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"])
    libs = [
        subprocess.run(
            ["gcc", f"-print-file-name={lib}"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for lib in ("libasan.so", "libubsan.so")
    ]
    return {
        "LLM_LOCUST_FUZZ_SPEEDUPS": str(so),
        "LD_PRELOAD": ":".join(libs),
        "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1",
        "UBSAN_OPTIONS": "halt_on_error=0:print_stacktrace=0",
        "PYTHONMALLOC": "malloc",
    }


def replay(target: str, files: list[str]) -> int:
    """Run ``target`` on each file; print and count the failures."""
    sys.path.insert(0, str(ROOT))
    from fuzz import targets

    failures = 0
    for name in files:
        data = Path(name).read_bytes()
        try:
            targets.TARGETS[target](data)
        except Exception as exc:
            failures += 1
            print(f"{name}: {type(exc).__name__}: {str(exc)[:2000]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("LLM_LOCUST_FUZZ_SECONDS", "300")))
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("LLM_LOCUST_FUZZ_JOBS", "0")) or None)
    parser.add_argument(
        "--targets", default=os.environ.get("LLM_LOCUST_FUZZ_TARGETS", ",".join(TARGET_NAMES))
    )
    parser.add_argument("--c-coverage", action="store_true", help="then measure C line coverage with gcov")
    parser.add_argument("--asan", action="store_true", help="then replay the corpora with ASan + UBSan")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--replay", metavar="FILE", nargs="+", help="run each --targets target on these inputs"
    )
    parser.add_argument("--replay-target", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        fuzz_one(args.child, args.seconds, {})
        return 0
    if args.replay_target:
        return 1 if replay(args.replay_target, rest) else 0
    names = [t for t in args.targets.split(",") if t]
    unknown = set(names) - set(TARGET_NAMES)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose among {', '.join(TARGET_NAMES)}")
    if args.replay:
        return 1 if sum(replay(t, args.replay) for t in names) else 0
    logs = FUZZ / "work" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    jobs = args.jobs or min(len(names), os.cpu_count() or 1)
    results = []
    if args.seconds > 0:
        print(f"fuzzing {', '.join(names)} for {args.seconds} s each, {jobs} at a time; logs in {logs}")
        results = run_parallel(names, args.seconds, jobs, dict(os.environ), logs)
    columns = ("seconds", "execs", "execs/s", "cov", "ft", "corpus", "rss MB")
    if results:
        print("\n" + f"{'target':<8} " + " ".join(f"{c:>8}" for c in columns) + "  findings")
    for r in results:
        rate = r.execs / r.seconds if r.seconds else 0
        print(
            f"{r.target:<8} {r.seconds:>8.0f} {r.execs:>8} {rate:>8.0f} {r.cov:>8} {r.ft:>8} {r.corpus:>8} "
            f"{r.rss_mb:>8}  {len(r.findings)} {' '.join(r.findings)}"
        )
    if args.c_coverage:
        print("\nC line coverage of the corpora (gcc --coverage, gcov; _hdr.c is histograms, no reader):")
        for line in c_coverage(names):
            print("  " + line)
    reports: list[str] = []
    if args.asan:
        reports = sanitized(names)
        print(f"\nAddressSanitizer + UBSan on the corpora: {len(reports)} distinct reports")
        for line in reports:
            print("  " + line)
    return 1 if reports or any(r.findings for r in results) else 0


def run_parallel(names: list[str], seconds: int, jobs: int, env: dict[str, str], logs: Path) -> list[Result]:
    """Each target in its own process (threads only wait on them), ``jobs`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    for name in names:
        (logs / f"{name}.log").write_text("")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_target, n, seconds, env, logs / f"{n}.log") for n in names]
        return [f.result() for f in futures]


if __name__ == "__main__":
    sys.exit(main())
