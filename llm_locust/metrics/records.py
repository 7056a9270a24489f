"""One request's timing record and the numbers derived from it (see docs: metric definitions).

All instants are ``time.perf_counter()`` seconds taken in this process; all durations are
milliseconds. A record is built by :class:`RequestTimer` while the stream is read and frozen
into a :class:`RequestRecord` when the request ends.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OK = "ok"
CANCELLED = "cancelled"
#: Failure categories, in the order the summary prints them.
FAILURE_CATEGORIES: tuple[str, ...] = (
    "http_3xx",
    "http_4xx",
    "http_429",
    "http_5xx",
    "connect",
    "timeout",
    "not_a_stream",
    "reset_mid_stream",
    "bad_event",
    "server_error_event",
    "truncated",
    "empty",
)
#: What each failure category means, in a few words (reports' legends; README "Errors" in full).
FAILURE_MEANINGS: dict[str, str] = {
    "http_3xx": "a redirect (not followed)",
    "http_4xx": "HTTP 4xx other than 429",
    "http_429": "HTTP 429 (rate limited)",
    "http_5xx": "HTTP 5xx",
    "connect": "could not connect (or TLS failed)",
    "timeout": "--request-timeout passed",
    "not_a_stream": "a 2xx answer that is not an event stream",
    "reset_mid_stream": "connection closed mid-stream",
    "bad_event": "unparseable stream event",
    "server_error_event": "error event in the stream",
    "truncated": "stream ended without [DONE] or finish_reason",
    "empty": "stream ended with no generated text",
}


@dataclass(frozen=True, slots=True)
class ServerTimings:
    """What the server says about its own timing of one request (llama.cpp's ``timings``, Ollama's
    durations), in our units. None where the server does not say."""

    prefill_ms: float | None = None  # processing the prompt
    decode_ms: float | None = None  # generating the output tokens after the first
    decode_tokens: int | None = None  # the tokens those decode_ms produced
    prompt_tokens: int | None = None
    total_ms: float | None = None  # the server's whole request (Ollama: total_duration)
    load_ms: float | None = None  # loading the model first (Ollama: load_duration)

    @property
    def decode_tokens_per_s(self) -> float | None:
        if not self.decode_ms or not self.decode_tokens:
            return None
        return self.decode_tokens / (self.decode_ms / 1000.0)

    @property
    def time_per_token_ms(self) -> float | None:
        """The server's decode time per output token (the server's own TPOT)."""
        if not self.decode_ms or not self.decode_tokens:
            return None
        return self.decode_ms / self.decode_tokens


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What one completion request measured.

    ``outcome`` is ``"ok"``, ``"cancelled"`` or one of :data:`FAILURE_CATEGORIES`.
    Latencies are ``None`` when the event they measure never happened.
    """

    outcome: str
    detail: str
    sent_at_s: float
    ended_at_s: float
    ttfb_ms: float | None
    ttft_ms: float | None
    ttfvt_ms: float | None
    e2e_ms: float | None
    done_ms: float | None
    itl_ms: array[float] = field(repr=False)
    text_events: int
    output_tokens: int
    output_tokens_source: str
    input_tokens: int
    input_tokens_source: str
    tokenizer_output_tokens: int | None = None
    #: what the server said about its own timing, when it says (llama.cpp: prompt_ms, predicted_ms, ...)
    server_timings: dict[str, Any] | None = field(default=None, repr=False)
    #: False for a whole JSON answer to a streaming request: one event, TTFT = E2E, no ITL or TPOT
    streamed: bool = True
    #: the server's own timings, in our units, where its API reports them (see ServerTimings)
    server: ServerTimings | None = None
    # -- what the workload asked for, to verify lengths and measure the prefix cache ---------------
    #: the conversation's turn this request sent (1: the first user message)
    turn: int = 1
    #: the finish reason the stream ended with ("stop", "length", "max_tokens", ...), if it said
    finish_reason: str | None = None
    #: input tokens the server said it served from a prefix cache, where its API reports them
    cached_input_tokens: int | None = None
    #: input tokens the sample was built for (synthetic prompts: exact for the run's tokenizer)
    expected_input_tokens: int | None = None
    #: output tokens the request asked for (its max-tokens field), if it asked
    requested_output_tokens: int | None = None
    #: open loop: the instant (perf_counter s) the arrival schedule had this request due; None in a
    #: closed loop, where a request is due when its user is free
    scheduled_at_s: float | None = None
    #: the ``x-request-id`` header this request was sent with ("" where it was not sent)
    request_id: str = ""
    #: the server's id of its answer (OpenAI's chunk ``id``, Responses' ``response.id``, Anthropic's
    #: ``message.id``); None where the API has none (Ollama) or the stream never said
    response_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    @property
    def elapsed_ms(self) -> float:
        """Send to end of the request, whatever ended it."""
        return (self.ended_at_s - self.sent_at_s) * 1000.0

    @property
    def schedule_lag_ms(self) -> float | None:
        """Open loop: send - scheduled, the time the client kept a due request (a free connection or
        concurrency slot, a busy event loop); None in a closed loop."""
        if self.scheduled_at_s is None:
            return None
        return max(self.sent_at_s - self.scheduled_at_s, 0.0) * 1000.0

    @property
    def ttft_from_schedule_ms(self) -> float | None:
        """Open loop: TTFT counted from the scheduled instant (what the arrival waited in all)."""
        lag = self.schedule_lag_ms
        return None if lag is None or self.ttft_ms is None else lag + self.ttft_ms

    @property
    def e2e_from_schedule_ms(self) -> float | None:
        """Open loop: E2E latency counted from the scheduled instant."""
        lag = self.schedule_lag_ms
        return None if lag is None or self.e2e_ms is None else lag + self.e2e_ms

    @property
    def tpot_ms(self) -> float | None:
        """(e2e - ttft) / (output_tokens - 1); only defined for more than one output token, streamed."""
        if self.output_tokens <= 1 or self.e2e_ms is None or self.ttft_ms is None or not self.streamed:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)

    @property
    def tokens_per_s(self) -> float | None:
        """Per-stream output tokens per second, TTFT included (the seed benchmark's figure)."""
        if not self.e2e_ms or self.output_tokens <= 0:
            return None
        return self.output_tokens / (self.e2e_ms / 1000.0)

    @property
    def decode_tokens_per_s(self) -> float | None:
        tpot = self.tpot_ms
        return 1000.0 / tpot if tpot else None

    # -- what the workload asked for, checked -------------------------------------------------
    @property
    def input_tokens_diff(self) -> int | None:
        """Server-counted input tokens minus those the sample was built for; None unless the server
        counted them (``usage``) and the sample said how many it was built for."""
        if self.expected_input_tokens is None or self.input_tokens_source != "usage":
            return None
        return self.input_tokens - self.expected_input_tokens

    @property
    def short_output(self) -> bool:
        """A successful request that ended more than min(5 % of them, 50) tokens short of the
        output tokens it asked for (AIPerf's rule); False when it asked for no number."""
        requested = self.requested_output_tokens
        if requested is None or self.outcome != OK:
            return False
        short_by = requested - self.output_tokens
        return short_by > 50 or 20 * short_by > requested  # > min(0.05 * requested, 50), in integers

    # -- server-side figures, beside ours -----------------------------------------------------
    @property
    def server_prefill_ms(self) -> float | None:
        return self.server.prefill_ms if self.server is not None else None

    @property
    def server_decode_tokens_per_s(self) -> float | None:
        return self.server.decode_tokens_per_s if self.server is not None else None

    @property
    def client_ttft_share_ms(self) -> float | None:
        """TTFT minus the server's prefill: the client's and the network's share (and queueing the
        server does not count as prefill)."""
        prefill = self.server_prefill_ms
        return None if prefill is None or self.ttft_ms is None else self.ttft_ms - prefill

    @property
    def server_tpot_ms(self) -> float | None:
        """The server's own decode time per output token (compare with :attr:`tpot_ms`)."""
        return self.server.time_per_token_ms if self.server is not None else None


class RequestTimer:
    """Collects the instants of one request as its stream is read.

    The clock is injected so tests can drive it; production code passes ``time.perf_counter``.
    ``text(at_s, visible)`` is called once per event that carries generated text, with the
    instant that event's line arrived.
    """

    __slots__ = (
        "_clock",
        "first_text_at_s",
        "first_visible_at_s",
        "headers_at_s",
        "itl_ms",
        "last_text_at_s",
        "sent_at_s",
        "text_events",
    )

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.sent_at_s = clock()
        self.headers_at_s: float | None = None
        self.first_text_at_s: float | None = None
        self.first_visible_at_s: float | None = None
        self.last_text_at_s: float | None = None
        self.itl_ms: array[float] = array("d")
        self.text_events = 0

    def sent(self, at_s: float) -> None:
        """The request was written to the socket at ``at_s`` (metrics.md's s_i), known after the fact:
        the timer starts before a connection is taken from the pool or opened."""
        self.sent_at_s = at_s

    def headers(self, at_s: float | None = None) -> None:
        """The response headers arrived (at ``at_s`` when the caller knows it better than the clock)."""
        self.headers_at_s = self._clock() if at_s is None else at_s

    def text(self, at_s: float, visible: bool) -> None:
        last = self.last_text_at_s
        if last is None:
            self.first_text_at_s = at_s
        else:
            self.itl_ms.append((at_s - last) * 1000.0)
        if visible and self.first_visible_at_s is None:
            self.first_visible_at_s = at_s
        self.last_text_at_s = at_s
        self.text_events += 1

    def adopt(
        self,
        text_events: int,
        first_text_at_s: float | None,
        first_visible_at_s: float | None,
        last_text_at_s: float | None,
        itl_ms: bytes,
    ) -> None:
        """The text timings another recorder took (the compiled reader's, in the same way as
        :meth:`text`): they replace this timer's."""
        self.text_events = text_events
        self.first_text_at_s = first_text_at_s
        self.first_visible_at_s = first_visible_at_s
        self.last_text_at_s = last_text_at_s
        self.itl_ms = array("d")
        self.itl_ms.frombytes(itl_ms)

    def _since_send_ms(self, at_s: float | None) -> float | None:
        return None if at_s is None else (at_s - self.sent_at_s) * 1000.0

    def finish(
        self,
        outcome: str,
        detail: str = "",
        *,
        done_at_s: float | None = None,
        output_tokens: int = 0,
        output_tokens_source: str = "events",
        input_tokens: int = 0,
        input_tokens_source: str = "tokenizer",
        tokenizer_output_tokens: int | None = None,
    ) -> RequestRecord:
        ended = self._clock()
        return RequestRecord(
            outcome=outcome,
            detail=detail,
            sent_at_s=self.sent_at_s,
            ended_at_s=ended,
            ttfb_ms=self._since_send_ms(self.headers_at_s),
            ttft_ms=self._since_send_ms(self.first_text_at_s),
            ttfvt_ms=self._since_send_ms(self.first_visible_at_s),
            e2e_ms=self._since_send_ms(self.last_text_at_s),
            done_ms=self._since_send_ms(done_at_s),
            itl_ms=self.itl_ms,
            text_events=self.text_events,
            output_tokens=output_tokens,
            output_tokens_source=output_tokens_source,
            input_tokens=input_tokens,
            input_tokens_source=input_tokens_source,
            tokenizer_output_tokens=tokenizer_output_tokens,
        )
