"""The top-level keys ``vllm bench serve --save-result`` writes, so that scripts and tools that read
vLLM's result files read ours: ``date``, ``endpoint_type``, ``backend``, ``label``, ``model_id``,
``tokenizer_id``, ``num_prompts``, ``request_rate``, ``burstiness``, ``max_concurrency``,
``request_goodput``, ``max_output_tokens_per_s``, ``max_concurrent_requests`` (and, for a ramp,
``ramp_up_strategy``, ``ramp_up_start_rps``, ``ramp_up_end_rps``). The latency keys (``mean_ttft_ms``,
``p99_itl_ms``, ...) and the throughputs are already vLLM's.

How ours map onto vLLM's (where a Locust run differs from ``vllm bench serve``):

- ``endpoint_type``/``backend``: vLLM's name of the API where it has one (``openai-chat``, ``openai``
  for completions), else our flavor's (``anthropic-messages``, ``ollama-chat``, ...).
- ``label``: Locust's ``--profile`` where given, else ``endpoint_type`` (vLLM's default).
- ``num_prompts``: the requests the run measured (completed, failed and cancelled), or
  ``--max-requests``.
- ``request_rate``: ``"inf"`` for a closed loop (Locust's users send as fast as answered) and for an
  open loop's burst; the rate of a constant open loop; ``"inf"`` with the ``ramp_up_*`` keys for a ramp,
  as vLLM writes a ramp; None for a ladder of rates (its levels are in ``levels``).
- ``max_concurrency``: ``--max-concurrency``; in a closed loop, the most users (each has one request
  in flight at most).
- ``request_goodput``: with ``--goodput``, good requests per second; None without (as vLLM).
- ``max_output_tokens_per_s`` / ``max_concurrent_requests``: see :mod:`llm_locust.metrics.peaks`.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from llm_locust.load.arrivals import RatePlan
from llm_locust.locust.load_options import LoadConfig
from llm_locust.metrics.peaks import Peaks

#: the keys :func:`bench_keys` gives (a ramp adds its three ``ramp_up_*``)
KEYS = (
    "date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts", "request_rate",
    "ramp_up_strategy", "ramp_up_start_rps", "ramp_up_end_rps", "burstiness", "max_concurrency",
    "request_goodput", "max_output_tokens_per_s", "max_concurrent_requests",
)  # fmt: skip


def keys_of(results: dict[str, Any]) -> dict[str, Any]:
    """The vLLM keys of ``results``, in their order."""
    return {k: results[k] for k in KEYS if k in results}


#: our flavor -> vLLM's --backend / endpoint_type, where vLLM has the API
VLLM_ENDPOINT_TYPES = {"openai-chat": "openai-chat", "openai-completions": "openai"}


def _rate_keys(plan: RatePlan | None) -> dict[str, Any]:
    if plan is None:
        return {"request_rate": "inf", "burstiness": 1.0}
    keys: dict[str, Any] = {"burstiness": plan.burstiness}
    segments = plan.segments
    if len(segments) == 1 and segments[0].curve == "constant":
        rate = segments[0].start_per_s
        keys["request_rate"] = rate if math.isfinite(rate) else "inf"
    elif segments and all(s.curve != "constant" for s in segments):
        keys["request_rate"] = "inf"
        keys["ramp_up_strategy"] = segments[0].curve
        keys["ramp_up_start_rps"] = segments[0].start_per_s
        keys["ramp_up_end_rps"] = segments[-1].end_per_s
    else:
        keys["request_rate"] = None
    return keys


def bench_keys(
    res: dict[str, Any],
    *,
    api: str,
    model: str,
    tokenizer: str,
    load: LoadConfig,
    started_wall_s: float | None,
    peak_users: int,
    peaks: Peaks,
    profile: str | None,
) -> dict[str, Any]:
    """vLLM's top-level keys for the results ``res`` of a run of ``api`` and ``model``."""
    endpoint_type = VLLM_ENDPOINT_TYPES.get(api, api)
    started = dt.datetime.fromtimestamp(started_wall_s) if started_wall_s is not None else dt.datetime.now()
    measured = int(res.get("completed", 0)) + int(res.get("failed", 0)) + int(res.get("cancelled", 0))
    return {
        "date": started.strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": endpoint_type,
        "backend": endpoint_type,
        "label": profile or endpoint_type,
        "model_id": model,
        "tokenizer_id": tokenizer,
        "num_prompts": load.max_requests or measured,
        **_rate_keys(load.plan),
        "max_concurrency": load.max_concurrency
        if load.max_concurrency is not None
        else (peak_users or None)
        if load.plan is None
        else None,
        "request_goodput": res.get("request_goodput"),
        "max_output_tokens_per_s": peaks.max_output_tokens_per_s,
        "max_concurrent_requests": peaks.max_concurrent_requests,
    }
