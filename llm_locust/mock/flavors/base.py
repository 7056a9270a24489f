"""What a mock flavor is: one API's request reading and answer writing, on the engine's schedule.

The server reads a request's body and hands it to the flavor of its route (:meth:`MockFlavor.ask`);
the engine decides how many tokens, and when; the flavor writes them in its API's shapes: a stream
(:meth:`MockFlavor.writer`, one :class:`StreamWriter` per answer), a whole JSON answer
(:meth:`MockFlavor.whole`) and an error body (:meth:`MockFlavor.error_body`). A flavor never
sleeps, counts or touches a socket; the server does, so that every flavor has the same timing,
the same faults and the same ``/mock/stats``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson


class BadRequest(Exception):
    """A request the API would refuse: answered with ``status`` and the flavor's error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request asks for, in terms every flavor shares."""

    prompt: str  # the text whose cl100k_base count is the answer's prompt/input tokens
    max_tokens: int | None  # the request's output limit (None: the engine's default)
    stream: bool
    include_usage: bool = True  # OpenAI's stream_options.include_usage; other APIs always report usage
    #: request fields the API echoes back in its answer (Responses: instructions, temperature, ...)
    echo: Mapping[str, Any] = field(default_factory=dict)
    #: the text of the request's last user message (completions and generate: the prompt), for
    #: ``--record-prompts``
    last_user: str = ""


@dataclass(slots=True)
class Reply:
    """One answer's facts. The server fixes the counts before the first byte and fills in the
    instants (``time.perf_counter()`` seconds) as it sends; writers read them when they write."""

    rid: str  # unique per answer on this server
    model: str
    created: int  # Unix seconds
    prompt_tokens: int
    #: of prompt_tokens, those found in the mock's prefix cache (None: --prefix-cache-block 0)
    cached_tokens: int | None
    n_tokens: int  # output tokens, reasoning included
    n_reasoning: int  # the first n_reasoning of them are reasoning text (0 where the API has none)
    arrived_s: float  # the request reached the socket
    start_s: float = 0.0  # it got its slot / batch sequence (arrived_s unless it queued)
    first_s: float | None = None  # its first token was sent
    last_s: float | None = None  # its last token was sent
    stopped: bool = False  # it ends by itself before its limit (the ``short`` fault)

    @property
    def finish_is_length(self) -> bool:
        """The answer stopped at its token limit ("length"), not by itself ("stop"): the mock writes
        its whole budget, so any answer with tokens reached it, unless it was cut ``short``."""
        return self.n_tokens > 0 and not self.stopped

    @property
    def cached(self) -> int:
        """``cached_tokens``, 0 without a prefix cache."""
        return self.cached_tokens or 0


class StreamWriter(Protocol):
    """The bytes of one streamed answer, event by event, in the order the server calls them:
    ``start`` once, ``token`` per token (the first ``n_reasoning`` with ``reasoning=True``), ``end``
    once. The fault methods may be called between two tokens instead. Each call returns whole
    events (SSE events with their blank line, NDJSON lines with their LF), or b"" for none."""

    def start(self) -> bytes:
        """What the API sends before the first token (sent at once, before prefill)."""
        ...

    def token(self, word: str, reasoning: bool) -> bytes:
        """One token's event (with any events that open or close a block around it)."""
        ...

    def end(self) -> bytes:
        """Finish reason, usage and the API's end marker."""
        ...

    def error_event(self) -> bytes:
        """The API's in-stream error."""
        ...

    def malformed(self) -> bytes:
        """An event (NDJSON: a line) that is not JSON."""
        ...

    def huge_event_start(self) -> bytes:
        """The start of a text event whose line the server then makes 2 MiB long, without its end."""
        ...


class MockFlavor(Protocol):
    """One API served by the mock."""

    name: str  # as in /mock/stats served_by_flavor and llm-locust's --api
    path: str  # the POST route
    id_prefix: str  # of answer ids (chat: "chatcmpl-")
    media_type: str  # Content-Type of a streamed answer
    reasoning: bool  # the API has a reasoning field; else reasoning tokens are sent as text
    ends_after_error: bool  # the body ends after an in-stream error (else the stream goes on)

    def ask(self, body: Any, headers: Mapping[str, str]) -> Ask:
        """Read a request (its JSON body and lower-case headers); :class:`BadRequest` if the API
        would refuse it."""
        ...

    def error_body(self, status: int, message: str, *, fault: bool) -> object:
        """The API's JSON error body for an HTTP error (``fault``: an injected one)."""
        ...

    def whole(self, reply: Reply, ask: Ask, reasoning: str, text: str) -> object:
        """The API's non-streamed answer (JSON), with usage."""
        ...

    def writer(self, reply: Reply, ask: Ask) -> StreamWriter:
        """A writer for one streamed answer."""
        ...


def json_str(text: str) -> str:
    """``text`` as a JSON string literal (with its quotes)."""
    return orjson.dumps(text).decode()


def max_tokens_of(value: object, field_name: str) -> int | None:
    """A request's output limit: an int, or None when absent; :class:`BadRequest` otherwise."""
    if value is None:
        return None
    if type(value) is not int:
        raise BadRequest(400, f"{field_name} must be an integer, not {value!r}")
    return value
