"""Command-line options (also env vars, locust.conf, ``[tool.locust]`` and the web UI form).

Options are read once per test into a frozen :class:`RunConfig`; nothing reads them per request.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llm_locust.errors import ConfigError
from llm_locust.flavors import API_CHOICES, AUTO
from llm_locust.locust.keys import KeyBinding, key_of
from llm_locust.locust.load_options import LoadConfig, add_load_arguments, load_from_options
from llm_locust.locust.paths import tagged
from llm_locust.locust.servermetrics import check_option
from llm_locust.locust.workload_options import WorkloadConfig, add_workload_arguments, workload_from_options
from llm_locust.metrics.slo import Objective, parse_goodput, parse_objectives
from llm_locust.wire.urls import public_url

DEFAULT_FAIL_BACKOFF_S = 0.1
#: The longest --fail-backoff wait, as a multiple of it (consecutive failures double the wait).
FAIL_BACKOFF_GROWTH = 32

DEFAULT_PROMPT = "Explain in detail how continuous batching works in an LLM inference server."


#: Options that only the start-up command line, environment or config file may set, never the web
#: UI form (not shown there, and refused by POST /swarm): option -> why. Options that name files
#: would let whoever reaches the form read any file on the machines (and send it to a host of their
#: choosing) or overwrite one; --insecure would let the form turn off certificate checks on the
#: connections that carry the start-up key. Every option that names a file belongs here.
STARTUP_ONLY: dict[str, str] = {
    "--prompt-file": "it names a file on the machines",
    "--tokenizer": "it may name a file on the machines",
    "--llm-json": "it names a file on the machines",
    "--llm-csv": "it names a file on the machines",
    "--llm-html": "it names a file on the machines",
    "--llm-requests": "it names a file on the machines",
    "--insecure": "it turns off certificate verification",
    "--llm-prometheus-port": "it opens a listening port at start-up",
}


#: Where ``--processes`` binds its master port when --master-bind-host is not given (see below).
LOCAL_MASTER_BIND_HOST = "127.0.0.1"


def _local_master_port(parse_args: Any) -> Any:
    """``parse_args`` that binds the master of ``--processes`` to 127.0.0.1 unless
    ``--master-bind-host`` was given. Locust's default is every interface, and every worker that
    connects to that port gets the test's options, the API key included, in clear text; the workers
    of ``--processes`` are forked on this machine and connect to 127.0.0.1."""

    def parse(*args: Any, **kwargs: Any) -> Any:
        options = parse_args(*args, **kwargs)
        if (
            getattr(options, "processes", None)
            and not getattr(options, "worker", False)
            and getattr(options, "master_bind_host", None) == "*"
        ):
            options.master_bind_host = LOCAL_MASTER_BIND_HOST
            options.llm_master_bound_locally = True
        return options

    return parse


def add_arguments(parser: Any) -> None:
    """Add our options to Locust's parser (``events.init_command_line_parser``).

    Prefix matching is turned off (argparse takes ``--api ollama-chat`` as ``--api-key`` when no
    ``--api`` exists, and ``--max-tok`` as ``--max-tokens``): a misspelt option is refused, not
    silently taken for another."""
    parser.allow_abbrev = False
    parser.parse_args = _local_master_port(parser.parse_args)

    # Locust's own add_argument (not an argument group's) knows include_in_web_ui / is_secret.
    def opt(name: str, **kw: Any) -> None:
        env = "LOCUST_" + name.lstrip("-").replace("-", "_").upper()
        parser.add_argument(name, env_var=env, include_in_web_ui=name not in STARTUP_ONLY, **kw)

    opt(
        "--api",
        default=AUTO,
        choices=API_CHOICES,
        help="The server's API (default auto: from the host's path and what the server lists; the "
        "summary says which)",
    )
    opt("--model", default="", help="Model name; default: the first model the server lists")
    opt("--max-tokens", type=int, default=256, help="max_tokens of each request (default 256)")
    opt(
        "--ignore-eos",
        action="store_true",
        default=False,
        help="Ask the server to ignore EOS so every request generates --max-tokens tokens",
    )
    opt("--temperature", type=float, default=None, help="Sampling temperature (default: server's)")
    opt("--prompt", default="", help=f"User message (default: {DEFAULT_PROMPT!r})")
    opt("--prompt-file", default="", help="Read the user message from this file")
    opt("--system-prompt", default="", help="System message (default: none)")
    opt(
        "--api-key",
        default="",
        is_secret=True,
        help="The API key, sent as the flavor sends it (Bearer; x-api-key for Anthropic), to the start-up"
        " host only (default: $OPENAI_API_KEY); never logged or reported",
    )
    opt("--extra-body", default="", help="JSON object merged into each request body, e.g. '{\"top_k\": 1}'")
    opt(
        "--request-timeout",
        type=float,
        default=600.0,
        help="Seconds one request may take in all before it fails as 'timeout' (default 600)",
    )
    opt(
        "--fail-backoff",
        type=float,
        default=DEFAULT_FAIL_BACKOFF_S,
        help="Seconds a user waits after a failed request, doubled for each further failure in a row "
        f"up to {FAIL_BACKOFF_GROWTH}x, reset by a success; 0: no wait (default {DEFAULT_FAIL_BACKOFF_S:g})",
    )
    opt(
        "--insecure",
        action="store_true",
        default=False,
        help="https:// hosts: do not verify the server's certificate (start-up only)",
    )
    opt("--llm-json", default="", help="Write the LLM results (vLLM's keys) to this JSON file")
    opt("--llm-csv", default="", help="Write the LLM metric statistics to this CSV file")
    opt(
        "--llm-html",
        default="",
        help="Write a self-contained HTML report (charts, tables; opens with no network) to this file",
    )
    opt(
        "--llm-requests",
        default="",
        help="Write one JSON line per request (every timing, ids, token counts, outcome) to this file; "
        "with master and workers, the master writes it. llm-locust report rebuilds the results from it",
    )
    opt(
        "--llm-prometheus-port",
        type=int,
        default=0,
        help="Serve the merged LLM metrics for Prometheus on this port (master or single process; binds "
        "to --web-host); the web UI serves them at /llm/metrics as well (default 0: off)",
    )
    opt(
        "--tokenizer",
        default="cl100k_base",
        help="tiktoken encoding name or path to a tokenizer.json, for counts the server does not give",
    )
    opt(
        "--server-metrics",
        default="auto",
        help="The server's own Prometheus metrics, polled every second beside ours: auto (the host's "
        "/metrics, if it answers in Prometheus text), a URL, or off (default auto)",
    )
    add_workload_arguments(opt)
    add_load_arguments(opt)
    # For CI gates: not in the web UI's form (a list, and a headless run's business).
    parser.add_argument(
        "--slo",
        action="append",
        default=[],
        env_var="LOCUST_SLO",
        include_in_web_ui=False,
        help="An objective, repeatable: ttft_p95<=500ms, error_rate<=1%%, output_throughput>=2000, ... "
        "A missed one makes the process exit with code 3",
    )
    parser.add_argument(
        "--slo-per-level",
        action="store_true",
        default=False,
        env_var="LOCUST_SLO_PER_LEVEL",
        include_in_web_ui=False,
        help="Also judge each ladder level, and report the highest level that met every --slo",
    )
    parser.add_argument(
        "--goodput",
        nargs="+",
        default=[],
        env_var="LOCUST_GOODPUT",
        include_in_web_ui=False,
        help="vLLM's goodput bounds, e.g. ttft:500 tpot:40 e2el:10000 (ms): good requests per second",
    )


@dataclass(frozen=True)
class RunConfig:
    """Everything a request needs, resolved once per test."""

    host: str
    api: str  # a name of llm_locust.flavors.FLAVORS, or "auto" until the test's start decided
    model: str
    max_tokens: int | None
    ignore_eos: bool
    temperature: float | None
    system_prompt: str
    prompt: str
    api_key: str = field(repr=False)
    extra_body: Mapping[str, Any]
    request_timeout_s: float
    fail_backoff_s: float
    insecure: bool
    llm_json: str
    llm_csv: str
    llm_html: str
    tokenizer: str
    workload: WorkloadConfig
    objectives: tuple[Objective, ...] = ()
    slo_per_level: bool = False
    #: --goodput's bounds, ms by record accessor (ttft_ms, tpot_ms, e2e_ms)
    goodput: Mapping[str, float] = field(default_factory=dict)
    #: closed loop (Locust's users) or open-loop arrivals
    load: LoadConfig = field(default_factory=LoadConfig)
    #: --llm-requests: the JSON lines file of every request ("": none)
    llm_requests: str = ""
    #: --server-metrics: auto, off or a URL (llm_locust.locust.servermetrics)
    server_metrics: str = "auto"

    @property
    def messages(self) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        msgs.append({"role": "user", "content": self.prompt})
        return msgs

    def with_model(self, model: str) -> RunConfig:
        return dataclasses.replace(self, model=model)

    def with_api(self, api: str, model: str) -> RunConfig:
        return dataclasses.replace(self, api=api, model=model)

    def public(self) -> dict[str, Any]:
        """Options for reports: everything but secrets."""
        return {
            "host": self.host,
            "api": self.api,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "ignore_eos": self.ignore_eos,
            "temperature": self.temperature,
            "system_prompt_chars": len(self.system_prompt),
            "prompt_chars": len(self.prompt),
            "extra_body": dict(self.extra_body),
            "request_timeout_s": self.request_timeout_s,
            "fail_backoff_s": self.fail_backoff_s,
            "insecure": self.insecure,
            "tokenizer": self.tokenizer,
            "api_key_set": bool(self.api_key),
            **self.workload.public(),
            "slo": [o.text for o in self.objectives],
            "goodput_ms": dict(self.goodput),
            **self.load.public(),
            "server_metrics": public_url(self.server_metrics),
        }


def _read_text(path: str, option: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{option} {path!r}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{option} {path!r} is not UTF-8 text") from exc


def _check_host(host: str | None) -> str:
    if not host:
        raise ConfigError("--host is required, e.g. --host http://127.0.0.1:8000")
    if not host.startswith(("http://", "https://")):
        raise ConfigError(f"--host {host!r} must start with http:// or https://")
    return host.rstrip("/")


def _optional_float(value: Any, option: str) -> float | None:
    """The web UI form sends options whose default is None as strings ("" when left empty)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} {value!r} is not a number") from None


def _int(value: Any, option: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} {value!r} is not a whole number") from None


def config_from_options(options: Any, host: str | None, binding: KeyBinding | None = None) -> RunConfig:
    """Validate the parsed options; raise :class:`ConfigError` naming the first bad one. The key is
    the one the test's owner resolved (see :mod:`llm_locust.locust.keys`), else ``binding``'s rules apply."""
    max_tokens = None if options.max_tokens in (None, "") else _int(options.max_tokens, "--max-tokens")
    if max_tokens is not None and max_tokens <= 0:
        max_tokens = None  # 0 or negative: let the server decide
    temperature = _optional_float(options.temperature, "--temperature")
    if temperature is not None and (math.isnan(temperature) or temperature < 0):
        raise ConfigError(f"--temperature {temperature:g} must be >= 0")
    timeout = _optional_float(options.request_timeout, "--request-timeout") or 0.0
    if not timeout > 0:
        raise ConfigError(f"--request-timeout {options.request_timeout} must be > 0 seconds")
    backoff = _optional_float(getattr(options, "fail_backoff", None), "--fail-backoff")
    backoff = DEFAULT_FAIL_BACKOFF_S if backoff is None else backoff
    if math.isnan(backoff) or backoff < 0:
        raise ConfigError(f"--fail-backoff {backoff:g} must be >= 0 seconds")
    extra: dict[str, Any] = {}
    if options.extra_body:
        try:
            extra = orjson.loads(options.extra_body)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"--extra-body is not valid JSON: {exc}") from exc
        if not isinstance(extra, dict):
            raise ConfigError(f"--extra-body must be a JSON object, got {type(extra).__name__}")
    if options.prompt and options.prompt_file:
        raise ConfigError("--prompt and --prompt-file are exclusive; give one")
    prompt = options.prompt or DEFAULT_PROMPT
    if options.prompt_file:
        prompt = _read_text(options.prompt_file, "--prompt-file")
        if not prompt.strip():
            raise ConfigError(f"--prompt-file {options.prompt_file!r} is empty")
    for opt_name in ("llm_json", "llm_csv", "llm_html", "llm_requests"):
        path = tagged(getattr(options, opt_name, "") or "", options)
        directory = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and not os.path.isdir(directory):
            flag = "--" + opt_name.replace("_", "-")
            raise ConfigError(f"{flag} {path!r}: directory {directory!r} does not exist")
    from llm_locust.workload.tokenizer import check_spec

    check_spec(options.tokenizer or "cl100k_base")
    api = getattr(options, "api", AUTO) or AUTO
    if api not in API_CHOICES:
        raise ConfigError(f"--api {api!r} is unknown; choose one of {', '.join(API_CHOICES)}")
    return RunConfig(
        host=_check_host(host),
        api=api,
        model=options.model,
        max_tokens=max_tokens,
        ignore_eos=bool(options.ignore_eos),
        temperature=temperature,
        system_prompt=options.system_prompt,
        prompt=prompt,
        api_key=key_of(options, host, binding),
        extra_body=extra,
        request_timeout_s=timeout,
        fail_backoff_s=backoff,
        insecure=bool(getattr(options, "insecure", False)),
        llm_json=options.llm_json,
        llm_csv=options.llm_csv,
        llm_html=options.llm_html,
        tokenizer=options.tokenizer or "cl100k_base",
        workload=workload_from_options(options, prompt, options.system_prompt),
        objectives=parse_objectives(_texts(getattr(options, "slo", None))),
        slo_per_level=bool(getattr(options, "slo_per_level", False)),
        goodput=parse_goodput(_texts(getattr(options, "goodput", None))),
        load=load_from_options(options),
        llm_requests=getattr(options, "llm_requests", "") or "",
        server_metrics=check_option(getattr(options, "server_metrics", "auto")),
    )


def _texts(value: Any) -> list[str]:
    """A list option as given: argparse's list, or one string (an env var, a form)."""
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
