"""The seed benchmark's ladder against a real engine: llama-server with --parallel 1 and --parallel 8.

Builds llama-server and the tiny random-weight model once (bench/llama_cpp.py), then for each
--parallel runs ``locustfiles/seed_benchmark.py`` (the seed's prompt, a ladder of users) and prints
the per-level table: per-stream tok/s (min/median/max), TTFT, aggregate tok/s.

    python bench/llama_ladder.py [--levels 1,8,32,256] [--level-duration 20] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import llama_cpp  # noqa: E402

from llm_locust.reports.summary import format_levels  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="1,8,32,256")
    parser.add_argument("--level-duration", default="20")
    parser.add_argument("--max-tokens", default="128")
    parser.add_argument("--parallel", default="1,8")
    args = parser.parse_args()
    binary, model = llama_cpp.ensure_server(), llama_cpp.ensure_model()
    for parallel in (int(p) for p in args.parallel.split(",")):
        work = Path(tempfile.mkdtemp(prefix=f"ladder-p{parallel}-"))
        proc, url = llama_cpp.start_server(binary, model, parallel=parallel, ctx=4096 * parallel,
                                           log=work / "server.log")  # fmt: skip
        try:
            cmd = [
                sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "seed_benchmark.py"),
                "--headless", "--host", url, "--levels", args.levels, "--level-duration", args.level_duration,
                "--max-tokens", args.max_tokens, "--ignore-eos", "--only-summary", "--loglevel", "WARNING",
                "--llm-json", str(work / "seed.json"),
            ]  # fmt: skip
            subprocess.run(cmd, cwd=work, capture_output=True, check=False, timeout=1800)
        finally:
            llama_cpp.stop_server(proc)
        res = json.loads((work / "seed.json").read_text())
        per_request = res["total_input_tokens"] // max(res["completed"], 1)
        print(f"\nllama-server --parallel {parallel} -c {4096 * parallel} (tiny random-weight llama, CPU),")
        print(f"seed prompt ({per_request} tokens/request by usage), --max-tokens {args.max_tokens}")
        print(f"--ignore-eos, {args.level_duration} s per level, prompt cache on")
        print(format_levels(res["levels"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
