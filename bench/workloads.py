"""Workloads off the request path: client capacity with synthetic prompts against the fixed prompt
at 512 streams (side by side in one run; target: within 10 %), and how long preparing 10,000
samples takes for each source (it happens once per process at the test start, in the thread pool).

    python bench/workloads.py [--users 512] [--itl-ms 20] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from client_capacity import run  # noqa: E402

from llm_locust.workload.dataset import DatasetSpec, load_dataset, package_path  # noqa: E402
from llm_locust.workload.lengths import LengthDist  # noqa: E402
from llm_locust.workload.tokenizer import load_tokenizer  # noqa: E402

SAMPLES = 10_000
#: the mock without its prefix cache: its hashing is the mock's cost, not the client's
MOCK = ("--prefix-cache-block", "0")
#: 128-token prompts: longer ones make the mock (one core, a tokenizer call per prompt) fall behind
WORKLOADS: dict[str, tuple[str, ...]] = {
    "fixed prompt (--dataset prompt)": (),
    "synthetic, 128 input tokens": (
        "--dataset",
        "synthetic",
        "--input-tokens",
        "128",
        "--num-samples",
        "2000",
    ),
    "synthetic, 3 turns of 64 tokens with history": (
        *("--dataset", "synthetic", "--input-tokens", "64", "--turns", "3", "--num-samples", "2000"),
    ),
}


def preparation_s() -> dict[str, float]:
    """Seconds to prepare 10,000 samples of each source (one process, cl100k_base)."""
    tokenizer = load_tokenizer("cl100k_base")
    out: dict[str, float] = {}
    specs = {
        "synthetic, 512 tokens": DatasetSpec(
            "synthetic", input_tokens=LengthDist.fixed(512), num_samples=SAMPLES
        ),
        "synthetic, 128:2048 tokens": DatasetSpec(
            "synthetic", input_tokens=LengthDist(128, 2048), num_samples=SAMPLES
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        shipped = json.loads(package_path("sample_sharegpt.json").read_text())
        entries = [{**shipped[i % len(shipped)], "id": f"x{i}"} for i in range(SAMPLES)]
        sharegpt = Path(tmp) / "sharegpt.json"
        sharegpt.write_text(json.dumps(entries))
        lines = package_path("sample.jsonl").read_text().splitlines()
        rows = [line for line in lines if line.strip()]
        jsonl = Path(tmp) / "d.jsonl"
        jsonl.write_text("\n".join(rows[i % len(rows)] for i in range(SAMPLES)) + "\n")
        specs["sharegpt (the shipped entries, repeated)"] = DatasetSpec("sharegpt", path=str(sharegpt))
        specs["jsonl (the shipped lines, repeated)"] = DatasetSpec("jsonl", path=str(jsonl))
        for name, spec in specs.items():
            t0 = time.perf_counter()
            dataset = load_dataset(spec, tokenizer)
            out[name] = time.perf_counter() - t0
            out[name + " conversations"] = len(dataset.conversations)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=512)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rows = {
        name: run(args.users, args.seconds, args.itl_ms, extra=extra) for name, extra in WORKLOADS.items()
    }
    base = next(iter(rows.values()))
    print(f"\nClient capacity by workload: {args.users} streams of openai-chat, ITL {args.itl_ms:g} ms,")
    print("100 tokens per response; mock on core 0, one Locust process on core 1\n")
    print("| workload | events/s | client CPU | events per CPU-s | x fixed prompt | ΔTTFT p50 / p99 ms | ok"
          " | steal |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['events_per_s']:,.0f} | {r['cpu_share']:.0%} | {r['events_per_cpu_s']:,.0f} | "
            f"{r['events_per_cpu_s'] / base['events_per_cpu_s']:.2f}x | "
            f"{r['ttft_err_p50']:+.2f} / {r['ttft_err_p99']:+.2f} | {r['completed']:.0f} | "
            f"{r['steal_share']:.0%} |"
        )
    prep = preparation_s()
    print(f"\nPreparing {SAMPLES:,} samples (once per process, at the test start, in the thread pool)\n")
    print("| source | seconds | conversations kept |")
    print("|---|---|---|")
    for name, seconds in prep.items():
        if not name.endswith(" conversations"):
            print(f"| {name} | {seconds:.2f} | {prep[name + ' conversations']:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
