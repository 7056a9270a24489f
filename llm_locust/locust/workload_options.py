"""The workload's options: what each user sends (``--dataset`` and its lengths, conversations, the
seed), read once per test into a frozen :class:`WorkloadConfig`.

The dataset is loaded (or, for ``synthetic``, built) once per process at the test start, in the
thread pool, before users start: nothing of it happens on a request's path but taking the next
conversation (:class:`llm_locust.workload.sampler.SampleStream`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_locust.errors import ConfigError

if TYPE_CHECKING:
    from llm_locust.workload.dataset import DatasetSpec
    from llm_locust.workload.lengths import LengthDist

ORDERS = ("sequential", "random")
#: --dataset sources that read a file: start-up only from the web UI's point of view
FILE_SOURCES = ("jsonl", "sharegpt")


def add_workload_arguments(opt: Callable[..., None]) -> None:
    """Register the workload's options through options.add_arguments' ``opt``."""
    opt(
        "--dataset",
        default="prompt",
        help="What each request sends: prompt (--prompt/--prompt-file/--system-prompt), seed (the seed "
        "benchmark's essay), synthetic (--input-tokens exactly, for --tokenizer), jsonl:PATH, sharegpt:PATH "
        "(a file given at start-up only)",
    )
    opt("--input-tokens", default="512", help="synthetic: input tokens per prompt, N or LOW:HIGH (uniform)")
    opt(
        "--input-tokens-stdev",
        type=float,
        default=0.0,
        help="synthetic: normal spread around --input-tokens N",
    )
    opt(
        "--output-tokens",
        default="",
        help="Output tokens to ask for, N or LOW:HIGH (default: the dataset's reference answers, else "
        "--max-tokens)",
    )
    opt("--output-tokens-stdev", type=float, default=0.0, help="normal spread around --output-tokens N")
    opt(
        "--shared-prefix-tokens",
        type=int,
        default=0,
        help="synthetic: every prompt starts with the same N tokens (to measure a prefix cache on purpose)",
    )
    opt("--turns", type=int, default=1, help="synthetic: user turns per conversation (history grows)")
    opt("--turn-delay", type=float, default=0.0, help="Seconds between a conversation's turns")
    opt("--num-samples", type=int, default=1000, help="synthetic: how many conversations to prepare")
    opt("--seed", type=int, default=0, help="Seed of the samples: the same seed sends the same requests")
    opt(
        "--dataset-order",
        default="sequential",
        choices=ORDERS,
        help="sequential: each worker takes its own share of the dataset in order; random: shuffled",
    )
    opt(
        "--min-tokens",
        type=int,
        default=0,
        help="Send min_tokens (vLLM, SGLang) so answers are not shorter than this (0: not sent)",
    )


@dataclass(frozen=True)
class WorkloadConfig:
    """The workload's options, checked."""

    dataset: DatasetSpec
    order: str
    turn_delay_s: float
    min_tokens: int
    #: the --output-tokens given (it overrides a dataset's reference lengths); None: not given
    output_tokens: LengthDist | None

    def public(self) -> dict[str, Any]:
        spec = self.dataset
        return {
            "dataset": spec.source + (f":{spec.path}" if spec.path else ""),
            "dataset_order": self.order,
            "seed": spec.seed,
            "turns": spec.turns,
            "turn_delay_s": self.turn_delay_s,
            "shared_prefix_tokens": spec.shared_prefix_tokens,
            "min_tokens": self.min_tokens,
        }


def _whole(options: Any, name: str, minimum: int) -> int:
    value: Any = getattr(options, name, None)
    flag = "--" + name.replace("_", "-")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} {value!r} is not a whole number") from None
    if number < minimum:
        raise ConfigError(f"{flag} {number} must be >= {minimum}")
    return number


def _float(options: Any, name: str) -> float:
    value = getattr(options, name, None)
    flag = "--" + name.replace("_", "-")
    try:
        number = float(value if value not in (None, "") else 0.0)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} {value!r} is not a number") from None
    if not number >= 0:
        raise ConfigError(f"{flag} {value} must be >= 0")
    return number


def workload_from_options(options: Any, prompt: str, system_prompt: str) -> WorkloadConfig:
    """Check the workload's options; :class:`ConfigError` names the first bad one."""
    from llm_locust.workload.dataset import DatasetSpec, parse_dataset_option
    from llm_locust.workload.lengths import parse_length

    source, path = parse_dataset_option(getattr(options, "dataset", "prompt") or "prompt")
    input_tokens = parse_length(
        "--input-tokens",
        str(getattr(options, "input_tokens", "512") or "512"),
        _float(options, "input_tokens_stdev"),
    )
    output_text = str(getattr(options, "output_tokens", "") or "")
    output_tokens = (
        parse_length("--output-tokens", output_text, _float(options, "output_tokens_stdev"))
        if output_text
        else None
    )
    order = getattr(options, "dataset_order", "sequential") or "sequential"
    if order not in ORDERS:
        raise ConfigError(f"--dataset-order {order!r}: choose {' or '.join(ORDERS)}")
    spec = DatasetSpec(
        source=source,
        path=path,
        prompt=prompt,
        system_prompt=system_prompt,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        shared_prefix_tokens=_whole(options, "shared_prefix_tokens", 0),
        turns=_whole(options, "turns", 1),
        num_samples=_whole(options, "num_samples", 1),
        seed=_whole(options, "seed", -(2**63)),
    )
    return WorkloadConfig(
        dataset=spec,
        order=order,
        turn_delay_s=_float(options, "turn_delay"),
        min_tokens=_whole(options, "min_tokens", 0),
        output_tokens=output_tokens,
    )
