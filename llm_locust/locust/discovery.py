"""Asking the server which model it serves (``GET /v1/models``), for when --model is not given."""

from __future__ import annotations

import orjson
from geventhttpclient import HTTPClient

from llm_locust.errors import ConfigError
from llm_locust.locust.options import RunConfig
from llm_locust.wire import tls
from llm_locust.wire.urls import join_path

_TIMEOUT_S = 10.0
_MAX_BODY_BYTES = 4 << 20  # a model list is a few KiB; more is not one


def first_model(config: RunConfig) -> str:
    """The first model id the server lists; :class:`ConfigError` naming --model when that fails."""
    url = join_path(config.host, "/v1/models")
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
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
            body = response.read(_MAX_BODY_BYTES)
            status = response.status_code
        finally:
            client.close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"--model not given and GET {config.host}/v1/models failed: {reason}") from exc
    if status != 200:
        raise ConfigError(f"--model not given and GET {config.host}/v1/models answered HTTP {status}")
    try:
        models = orjson.loads(body)["data"]
        return str(models[0]["id"])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise ConfigError(
            f"--model not given and {config.host}/v1/models listed no model; pass --model"
        ) from exc
