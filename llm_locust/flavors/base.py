"""The Flavor seam: what an API flavor tells the rest of llm-locust, and the values it hands over.

A flavor is one small module (``flavors/<name>.py``) with one :class:`Flavor` instance, registered
in :data:`llm_locust.flavors.FLAVORS`. It knows:

- how a request is built from a :class:`Sample` and the run's options (path, headers, auth style,
  body: messages or a prompt, the output-length field, "ignore EOS" where the API has one);
- which framing its stream uses (``"sse"`` or ``"ndjson"``; the wire layer reads both, one
  timestamp per event as its bytes arrive) and which media types a streamed answer has;
- how one event decodes into a :class:`Delta` (text, reasoning text, finish, usage in/out, cached
  prompt tokens, server timings, an error, the end of the stream);
- the whole answer of a server that did not stream (:class:`Completion`), how models are listed,
  and the server's own timings (:class:`ServerTimings`), where the API reports them;
- which compiled scanner, if any, recognises its common event, the one that carries only text
  (``plain_scanner``: the flavor's name for the scanners of ``_native/_plain_chunk.c``, which must
  take exactly what the flavor's ``plain_content`` takes; None: every event goes to ``decode``).

The User never builds bodies or parses events itself; the wire layer never knows JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

from llm_locust.metrics.records import ServerTimings

__all__ = [
    "BadEvent",
    "Completion",
    "Delta",
    "Flavor",
    "Request",
    "RequestOptions",
    "Sample",
    "ServerTimings",
]


class BadEvent(ValueError):
    """A streamed event that is not JSON, or not an event of the flavor's API."""


class Delta(NamedTuple):
    """What one streamed event carried. Empty strings mean "nothing of that kind".

    A NamedTuple rather than a frozen dataclass: one is built per streamed token, and a frozen
    dataclass's ``__init__`` costs several times more."""

    content: str = ""  # visible text
    reasoning: str = ""  # reasoning ("thinking") text: counts in TTFT, not in TTFVT
    finish_reason: str | None = None
    completion_tokens: int | None = None  # usage: output tokens (the last one given wins)
    prompt_tokens: int | None = None  # usage: input tokens
    cached_tokens: int | None = None  # usage: input tokens served from a prefix cache
    error: str | None = None  # the server reported an error in the stream
    #: the server's own timing, as it sent it (llama.cpp's ``timings``, Ollama's durations)
    timings: dict[str, Any] | None = None
    done: bool = False  # the flavor's normal end of stream (Ollama done, message_stop, ...)
    #: the server's id of its answer, from the events that carry one and are not plain text chunks
    #: (those are most events: the id is taken once, from the first other one)
    response_id: str | None = None


EMPTY = Delta()
DONE = Delta(done=True)


class Completion(NamedTuple):
    """A whole answer: what a server that ignores ``"stream": true`` sends."""

    content: str
    reasoning: str
    finish_reason: str | None
    completion_tokens: int | None
    prompt_tokens: int | None
    response_id: str | None = None  # the answer's top-level ``id``, where the API has one


@dataclass(frozen=True)
class Sample:
    """What one request sends: messages (a system message, if any, first), the output length,
    and body fields that override the flavor's."""

    messages: Sequence[Mapping[str, str]]
    max_tokens: int | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> str:
        return "\n\n".join(m.get("content", "") for m in self.messages if m.get("role") == "system")

    @property
    def turns(self) -> list[dict[str, str]]:
        """The messages without the system ones."""
        return [dict(m) for m in self.messages if m.get("role") != "system"]

    @property
    def prompt(self) -> str:
        """The messages as one prompt, for APIs that take a prompt: the system message, then each
        message's content, separated by blank lines."""
        return "\n\n".join(m.get("content", "") for m in self.messages if m.get("content"))


@dataclass(frozen=True)
class RequestOptions:
    """The run's options a flavor needs to build a request."""

    model: str
    temperature: float | None = None
    ignore_eos: bool = False
    api_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class Request:
    """One request as the transport sends it."""

    path: str  # under the host's path prefix
    headers: Mapping[str, str]
    body: bytes


class Flavor(Protocol):
    """One API. See the module docstring for what each member means."""

    name: str
    path: str
    models_path: str
    framing: str  # "sse" or "ndjson"
    stream_media_types: tuple[str, ...]
    plain_scanner: str | None
    end_marker: str  # what ends a stream normally, for the 'truncated' detail
    ignore_eos_field: bool  # the request can ask to generate the full output length (--ignore-eos)

    def request(self, sample: Sample, options: RequestOptions) -> Request: ...

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers that carry the key (every request, and the model list)."""
        ...

    def decode(self, name: str, data: str) -> Delta:
        """One event: its SSE event name ("message" when it has none; "" for NDJSON) and data."""
        ...

    def whole(self, obj: Any) -> Completion | None:
        """The answer of a non-streamed JSON body, or None when it is not one of this API's."""
        ...

    def models(self, obj: Any) -> list[str]:
        """The model ids of the answer to ``GET models_path``."""
        ...

    def server_timings(self, raw: Mapping[str, Any]) -> ServerTimings | None:
        """The server's own timings from what a :class:`Delta` carried in ``timings``."""
        ...


def load_json(data: str) -> Any:
    """The JSON of one event's data; :class:`BadEvent` if it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"invalid JSON in event: {data[:80]!r}") from exc


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def count(value: Any) -> int | None:
    """A token count as the API gave it: a non-negative int, else None."""
    return value if type(value) is int and value >= 0 else None


def text_of(value: Any, what: str, data: str) -> str:
    """A text field of an event: a string, or "" for none; :class:`BadEvent` for anything else."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadEvent(f"event's {what} is not a string: {data[:80]!r}")
    return value


JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
