"""Client capacity for every API flavor at 512 streams, side by side with bare Locust in one run
(performance.md's method: the mock on core 0, one Locust process on core 1, 100 tokens per
response, ITL 20 ms: 512 streams offer ~24.6k token events/s). Targets: openai-chat >= 2.3x bare
Locust's events per client CPU-second, every other flavor >= 1.5x.

    python bench/flavors.py [--users 512] [--itl-ms 20] [--seconds 20] [--flavors a,b,...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from client_capacity import TOKENS, TTFT_MS, run  # noqa: E402

from llm_locust.flavors import FLAVORS  # noqa: E402

TARGETS = {"openai-chat": 2.3}
DEFAULT_TARGET = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=512)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flavors", default=",".join(FLAVORS))
    args = parser.parse_args()
    names = [n for n in args.flavors.split(",") if n]
    floor = run(args.users, args.seconds, args.itl_ms, bare="floor")
    bare = run(args.users, args.seconds, args.itl_ms, bare="measure")
    rows = {name: run(args.users, args.seconds, args.itl_ms, api=name) for name in names}
    print(f"\nClient capacity per API flavor: {args.users} streams, mock fixed engine TTFT {TTFT_MS:g} ms,")
    print(f"ITL {args.itl_ms:g} ms, {TOKENS} tokens/response; mock on core 0, one Locust process on core 1\n")
    print("| client | events/s | client CPU | events per CPU-s | x bare Locust | x floor | target"
          " | ΔTTFT p50 / p99 ms | ΔITL mean / p99 ms | ok / failed | steal |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    floor_label = "bare Locust floor (readline, a list of arrivals)"
    bare_label = "bare Locust (readline, JSON per chunk, TTFT/ITL into Locust's stats)"
    for label, r in ((floor_label, floor), (bare_label, bare)):
        print(f"| {label} | {r['events_per_s']:,.0f} | {r['cpu_share']:.0%} | {r['events_per_cpu_s']:,.0f} | "
              f"{r['events_per_cpu_s'] / bare['events_per_cpu_s']:.2f}x | "
              f"{r['events_per_cpu_s'] / floor['events_per_cpu_s']:.2f}x | | | | | "
              f"{r['steal_share']:.0%} |")  # fmt: skip
    missed = []
    for name, r in rows.items():
        ratio = r["events_per_cpu_s"] / bare["events_per_cpu_s"]
        target = TARGETS.get(name, DEFAULT_TARGET)
        if ratio < target:
            missed.append(name)
        print(
            f"| llm-locust {name} ({r['readers']}) | {r['events_per_s']:,.0f} | {r['cpu_share']:.0%} | "
            f"{r['events_per_cpu_s']:,.0f} | "
            f"{ratio:.2f}x | {r['events_per_cpu_s'] / floor['events_per_cpu_s']:.2f}x | >= {target:g}x | "
            f"{r['ttft_err_p50']:+.2f} / {r['ttft_err_p99']:+.2f} | "
            f"{r['itl_err_mean']:+.3f} / {r['itl_err_p99']:+.2f} | "
            f"{r['completed']:.0f} / {r['failed']:.0f} | {r['steal_share']:.0%} |"
        )
    print("\nx bare Locust: against the plain Locust user that measures what llm-locust shows (the targets);")
    print("x floor: against one that only notes when each line arrived. (compiled): the reader that read")
    print("the streams (reactor: the same in Python, when the C extension is not built).")
    print("steal: the share of the machine's CPU time its hypervisor gave to other guests during the")
    print("window; where it is more than a few %, the row describes the host, not the client.")
    print("\n" + ("every flavor meets its target" if not missed else f"below target: {', '.join(missed)}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
