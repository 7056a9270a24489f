"""The results of a run rebuilt from its ``--llm-requests`` lines, through the run's own path: each
line's record goes into an :class:`~llm_locust.metrics.aggregate.Aggregate` as the run recorded it
(warm-up lines counted as excluded, levels and turns as sent), and the results dict is built from
that aggregate as the run built its own."""

from __future__ import annotations

import os
from typing import Any

import orjson

from llm_locust.metrics.aggregate import Aggregate, foreign_clock
from llm_locust.metrics.lines import RUN_KEY, BadLine, from_line
from llm_locust.reports.summary import results

#: the run line's key that holds the run's vllm bench serve keys (llm_locust.locust.bench_keys)
BENCH_KEYS = "vllm_bench_keys"
_TAIL_BYTES = 1 << 20  # the run line is the last one; it is far shorter than this


class RequestsFileError(Exception):
    """A requests file that cannot be read, or a line of it that is not a request line."""


def is_requests_file(path: str) -> bool:
    """Whether ``path`` holds request lines (its first line is a request line or the run line)
    rather than a results file (one JSON object over many lines, as --llm-json writes it)."""
    try:
        with open(path, "rb") as f:
            first = f.readline(_TAIL_BYTES)
    except OSError:
        return path.endswith(".jsonl")
    try:
        obj = orjson.loads(first)
    except orjson.JSONDecodeError:
        return path.endswith(".jsonl")
    # a request line carries its format's version ("v"); the run line only RUN_KEY
    return isinstance(obj, dict) and ("v" in obj or RUN_KEY in obj)


def run_line(path: str) -> dict[str, Any] | None:
    """The run's metadata from the file's last line, where the run got to write it (at quit)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - _TAIL_BYTES, 0))
        tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        obj = orjson.loads(tail)
    except orjson.JSONDecodeError:
        return None
    run = obj.get(RUN_KEY) if isinstance(obj, dict) else None
    return run if isinstance(run, dict) else None


def rebuild(path: str) -> dict[str, Any]:
    """The results dict of the requests in ``path``. Raises :class:`RequestsFileError` for a file
    that cannot be read or a malformed line (naming its number)."""
    try:
        metadata = run_line(path)
        with open(path, "rb") as f, foreign_clock() as use_clock:
            agg = Aggregate()
            goodput = ((metadata or {}).get("options") or {}).get("goodput_ms")
            if isinstance(goodput, dict):
                agg.goodput_bounds = {str(k): float(v) for k, v in goodput.items()}
            requests = 0
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise RequestsFileError(f"{path} line {number}: not JSON ({exc})") from None
                if isinstance(obj, dict) and RUN_KEY in obj:
                    continue
                try:
                    rec, level, warmup, offset_s = from_line(obj)
                except BadLine as exc:
                    raise RequestsFileError(f"{path} line {number}: {exc}") from None
                requests += 1
                if warmup:
                    agg.counts["warmup_excluded"] += 1
                    continue
                use_clock(offset_s)
                agg.record(rec, level)
    except OSError as exc:
        raise RequestsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not requests:
        raise RequestsFileError(f"{path} has no request lines")
    meta = dict(metadata) if metadata is not None else {}
    name = os.path.basename(path)
    meta["rebuilt_from"] = name
    note = f"rebuilt from the {requests} request lines of {name} (no over-time series or client health)"
    if metadata is None:
        note += "; it has no run line (the run did not reach its quit): host, model and options unknown"
        meta.update(host="unknown", model="unknown")
    meta["notes"] = [*meta.get("notes", []), note]
    # vllm bench serve's top-level keys, as the run wrote them (its per-second peaks are not in lines)
    vllm_keys = meta.pop(BENCH_KEYS, None)
    return {**(vllm_keys if isinstance(vllm_keys, dict) else {}), **results(agg, meta)}
