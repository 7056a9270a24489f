"""What polling a vLLM-size /metrics costs the users' event loop (--server-metrics).

Builds a page shaped like vLLM's (per engine: its gauges and counters, the request-time, TTFT,
inter-token and iteration-token histograms with vLLM's buckets; --engines data-parallel engines),
then, while a greenlet ticks every millisecond as a user's stream reader would, parses it
--polls times: a piece at a time in the loop (as the poller does), whole in gevent's thread pool, and
whole inline; it prints the parse time
and the ticker's worst and p99 gaps (``none``: no parse, the machine's own baseline).

    python bench/server_metrics.py [--engines 1,8] [--polls 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gevent

from llm_locust.metrics.server import Parser, parse, pieces

REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                   120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)  # fmt: skip
TOKEN_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
HISTOGRAMS = {
    "vllm:e2e_request_latency_seconds": REQUEST_BUCKETS,
    "vllm:request_queue_time_seconds": REQUEST_BUCKETS,
    "vllm:request_inference_time_seconds": REQUEST_BUCKETS,
    "vllm:request_prefill_time_seconds": REQUEST_BUCKETS,
    "vllm:request_decode_time_seconds": REQUEST_BUCKETS,
    "vllm:time_to_first_token_seconds": TTFT_BUCKETS,
    "vllm:inter_token_latency_seconds": ITL_BUCKETS,
    "vllm:time_per_output_token_seconds": ITL_BUCKETS,
    "vllm:request_time_per_output_token_seconds": ITL_BUCKETS,
    "vllm:iteration_tokens_total": TOKEN_BUCKETS,
    "vllm:request_prompt_tokens": TOKEN_BUCKETS,
    "vllm:request_generation_tokens": TOKEN_BUCKETS,
    "vllm:request_max_num_generation_tokens": TOKEN_BUCKETS,
    "vllm:request_params_n": (1, 2, 5, 10, 20),
    "vllm:request_params_max_tokens": TOKEN_BUCKETS,
}
GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
COUNTERS = ("vllm:num_preemptions_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
            "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")  # fmt: skip
FINISH = ("stop", "length", "abort", "error")


def page(engines: int) -> str:
    out: list[str] = []
    for name in GAUGES:
        out += [f"# HELP {name} x", f"# TYPE {name} gauge"]
        out += [f'{name}{{engine="{e}",model_name="m"}} {e * 0.5}' for e in range(engines)]
    for name in COUNTERS:
        out += [f"# HELP {name} x", f"# TYPE {name} counter"]
        for e in range(engines):
            out += [f'{name}{{engine="{e}",model_name="m"}} {1000 * e + 7}.0',
                    f'{name[:-6]}_created{{engine="{e}",model_name="m"}} 1.7e9']  # fmt: skip
    name = "vllm:request_success_total"
    out += [f"# HELP {name} x", f"# TYPE {name} counter"]
    for e in range(engines):
        out += [f'{name}{{engine="{e}",finished_reason="{r}",model_name="m"}} 3.0' for r in FINISH]
    for name, buckets in HISTOGRAMS.items():
        out += [f"# HELP {name} x", f"# TYPE {name} histogram"]
        for e in range(engines):
            labels = f'engine="{e}",model_name="m"'
            out += [f'{name}_bucket{{{labels},le="{b}"}} {i * 3}.0' for i, b in enumerate(buckets)]
            out += [f'{name}_bucket{{{labels},le="+Inf"}} {len(buckets) * 3}.0',
                    f"{name}_count{{{labels}}} {len(buckets) * 3}.0", f"{name}_sum{{{labels}}} 123.4",
                    f"{name}_created{{{labels}}} 1.7e9"]  # fmt: skip
    return "\n".join(out) + "\n"


def measure(text: str, polls: int, how: str) -> tuple[float, float, float]:
    """(mean parse ms, worst tick gap ms, p99 tick gap ms) over ``polls`` parses."""
    gaps: list[float] = []
    running = True

    def ticker() -> None:
        last = time.perf_counter()
        while running:
            gevent.sleep(0.001)
            now = time.perf_counter()
            gaps.append((now - last) * 1000.0)
            last = now

    tick = gevent.spawn(ticker)
    gevent.sleep(0.05)
    took: list[float] = []
    for _ in range(polls):
        t0 = time.perf_counter()
        if how == "threadpool":
            gevent.get_hub().threadpool.spawn(parse, text, time.time()).get()
        elif how == "inline":
            parse(text, time.time())
        elif how == "pieces":  # as the poller does: a piece at a time, the loop running between them
            parser = Parser()
            for piece in pieces(text):
                parser.feed(piece)
                gevent.idle()
            parser.finish(time.time())
        took.append((time.perf_counter() - t0) * 1000.0)
        gevent.sleep(0.02)
    running = False
    tick.join()
    gaps.sort()
    return statistics.mean(took), gaps[-1], gaps[int(len(gaps) * 0.99)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="1,8")
    ap.add_argument("--polls", type=int, default=20)
    args = ap.parse_args()
    head = ("engines", "lines", "KiB", "how", "parse ms", "tick max ms", "tick p99 ms")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (7, 7, 6, 11, 9, 12, 12), strict=True)))
    for engines in (int(x) for x in args.engines.split(",")):
        text = page(engines)
        for how in ("none", "pieces", "threadpool", "inline"):
            mean_ms, worst, p99 = measure(text, args.polls, how)
            print(f"{engines:>7} {text.count(chr(10)):>7} {len(text) / 1024:>6.0f} {how:>11} {mean_ms:>9.1f} "
                  f"{worst:>12.1f} {p99:>12.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
