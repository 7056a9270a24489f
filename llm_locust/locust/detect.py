"""At test start: which API the host speaks (``--api auto``) and which model it serves (no
``--model``), by asking the server the way each API lists its models.

``auto`` decides from the host's path first (``.../v1``: OpenAI-compatible; ``.../api``: Ollama's
native API), then from what answers: ``GET /v1/models`` (an OpenAI-style list: openai-chat;
Anthropic's list, whose entries have ``"type": "model"``: anthropic-messages), else ``GET
/api/tags`` (Ollama: ollama-chat). A server that serves several (vLLM and llama.cpp also serve
``/v1/completions`` and ``/v1/messages``, Ollama also ``/v1``) gets the first that answers; ``--api``
picks another. When answers come but none is a model list, one line names what was tried; when the
host does not answer at all and ``--model`` is given, openai-chat is used (the requests then fail as
``connect``, as they would without auto).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from geventhttpclient import HTTPClient

from llm_locust.errors import ConfigError
from llm_locust.flavors import AUTO, flavor
from llm_locust.flavors.base import Flavor
from llm_locust.flavors.openai_chat import openai_models
from llm_locust.locust.options import RunConfig
from llm_locust.wire import tls
from llm_locust.wire.urls import join_path

_TIMEOUT_S = 10.0
_MAX_BODY_BYTES = 4 << 20  # a model list is a few KiB; more is not one


@dataclass(frozen=True)
class Discovery:
    api: str  # the flavor's name
    detected_by: str  # how it was chosen, for the summary
    model: str


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no answer (the reason is in ``why``)
    body: Any = None  # the JSON, where it was JSON
    why: str = ""

    def describe(self) -> str:
        if self.status is None:
            return self.why
        return f"HTTP {self.status}" + ("" if self.body is not None else " (not JSON)")


def _get(config: RunConfig, path: str, headers: dict[str, str]) -> _Answer:
    url = join_path(config.host, path)
    try:
        client = HTTPClient.from_url(
            config.host,
            connection_timeout=_TIMEOUT_S,
            network_timeout=_TIMEOUT_S,
            ssl_context_factory=tls.context_factory(config.insecure),
            insecure=config.insecure,
        )
        try:
            response = client.get(url, headers=headers)
            raw = response.read(_MAX_BODY_BYTES)
            status = response.status_code
        finally:
            client.close()
    except OSError as exc:
        return _Answer(None, why=str(exc.strerror or type(exc).__name__))
    try:
        return _Answer(status, orjson.loads(raw))
    except orjson.JSONDecodeError:
        return _Answer(status)


def _anthropic_list(obj: Any) -> bool:
    data = obj.get("data") if isinstance(obj, dict) else None
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(m, dict) and m.get("type") == "model" for m in data)
    )


def discover(config: RunConfig) -> Discovery:
    """The flavor and model of this test; :class:`ConfigError` (naming --api or --model) when they
    cannot be told."""
    if config.api != AUTO:
        chosen = flavor(config.api)
        return Discovery(chosen.name, "--api", config.model or _first_model(config, chosen))
    hostpath = config.host.split("://", 1)[-1].rstrip("/")
    last = hostpath.rpartition("/")[2] if "/" in hostpath else ""
    if last == "api":
        chosen = flavor("ollama-chat")
        return Discovery(chosen.name, "host path /api", config.model or _first_model(config, chosen))
    if last == "v1":
        chosen = flavor("openai-chat")
        return Discovery(chosen.name, "host path /v1", config.model or _first_model(config, chosen))
    openai = _get(
        config, "/v1/models", {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    )
    if openai.status == 200 and openai.body is not None:
        name = "anthropic-messages" if _anthropic_list(openai.body) else "openai-chat"
        chosen = flavor(name)
        models = chosen.models(openai.body)
        if config.model or models:
            return Discovery(name, "GET /v1/models", config.model or models[0])
    ollama = _get(config, "/api/tags", {})
    if ollama.status == 200 and isinstance(ollama.body, dict) and "models" in ollama.body:
        chosen = flavor("ollama-chat")
        models = chosen.models(ollama.body)
        if config.model or models:
            return Discovery(chosen.name, "GET /api/tags", config.model or models[0])
    tried = f"GET /v1/models: {openai.describe()}; GET /api/tags: {ollama.describe()}"
    if openai.status is None and ollama.status is None:
        if not config.model:
            raise ConfigError(f"--model not given and {config.host} does not answer: {tried}")
        # the host does not answer (yet): the requests will say so, as they do without auto
        return Discovery("openai-chat", f"default (the host did not answer: {tried})", config.model)
    raise ConfigError(f"--api auto: cannot tell the API of {config.host}: {tried}; give --api (and --model)")


def _first_model(config: RunConfig, chosen: Flavor) -> str:
    """The first model the server lists; :class:`ConfigError` naming --model when that fails."""
    answer = _get(config, chosen.models_path, chosen.auth_headers(config.api_key))
    where = f"GET {config.host}{chosen.models_path}"
    if answer.status is None:
        raise ConfigError(f"--model not given and {where} failed: {answer.why}")
    if answer.status != 200:
        raise ConfigError(f"--model not given and {where} answered HTTP {answer.status}")
    models = chosen.models(answer.body) if answer.body is not None else []
    if not models:
        raise ConfigError(f"--model not given and {where} listed no model; pass --model")
    return models[0]


__all__ = ["Discovery", "discover", "openai_models"]
