"""``LLMUser``: a Locust user that streams chat completions and measures them exactly."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import time
from typing import Any

import gevent
import orjson
from gevent import GreenletExit
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from locust import User, constant
from locust.exception import StopUser

from llm_locust.flavors import openai_chat
from llm_locust.locust.options import FAIL_BACKOFF_GROWTH, RunConfig
from llm_locust.locust.plugin import install
from llm_locust.locust.state import LLMState, state_of
from llm_locust.metrics.records import CANCELLED, OK, RequestRecord, RequestTimer
from llm_locust.wire import answer, reactor, rxclock, tls
from llm_locust.wire.content import BadEncoding, BodyLines, UnsupportedEncoding, decoder_for, mark_headers_end
from llm_locust.wire.sse import EventTooLarge, iter_events
from llm_locust.workload.tokenizer import count_off_loop

_ERROR_BODY_BYTES = 2048
_DRAIN_AFTER_DONE_S = 1.0


class _Deadline(Exception):
    """The request ran past --request-timeout."""


class _StreamEnd(Exception):
    def __init__(self, category: str, detail: str) -> None:
        self.category = category
        self.detail = detail


class _Reading:
    """What one stream said so far: fed one SSE event at a time, by either reader.

    With the compiled reader (``body``), the body itself records the plain text chunks, which never
    reach :meth:`event`; the text events that do are recorded through the body too, so that the
    timings stay in arrival order, and :meth:`adopt_body` moves them into the timer at the end."""

    __slots__ = ("body", "done_at", "finish", "text", "timer", "timings", "usage_in", "usage_out")

    def __init__(self, timer: RequestTimer, body: Any = None) -> None:
        self.timer = timer
        self.body = body
        self.text: list[str] = []
        self.finish: str | None = None
        self.usage_out: int | None = None
        self.usage_in: int | None = None
        self.timings: dict[str, Any] | None = None
        self.done_at: float | None = None

    def took_text(self, at: float, visible: bool, piece: str) -> None:
        """One text event: into the compiled reader's body while it records, else the timer."""
        body = self.body
        if body is not None:
            body.text(at, visible, piece)
            return
        self.timer.text(at, visible)
        text = self.text
        text.append(piece)
        if len(text) >= 64:  # a list of one-token strings costs ~57 bytes per token per open stream
            text[:] = ["".join(text)]

    def event(self, name: str, data: str, at: float) -> bool:
        """Take one event; True at ``[DONE]``. Raises _StreamEnd / BadEvent on a failed stream."""
        if data == "[DONE]":
            self.done_at = at
            return True
        if name == "error":
            raise _StreamEnd("server_error_event", data[:200])
        obj = openai_chat.load(data)
        content = openai_chat.plain_content(obj)
        if content is not None:  # most events: one token of text
            self.took_text(at, True, content)
            return False
        delta = openai_chat.delta_of(obj, data)
        if delta.error is not None:
            raise _StreamEnd("server_error_event", delta.error[:200])
        if delta.content or delta.reasoning:
            self.took_text(at, bool(delta.content), delta.content or delta.reasoning)
        if delta.finish_reason is not None:
            self.finish = delta.finish_reason
        if delta.timings is not None:
            self.timings = delta.timings
        if delta.completion_tokens is not None:
            self.usage_out = delta.completion_tokens
            self.usage_in = delta.prompt_tokens
        return False

    def adopt_body(self) -> None:
        """The timings and text the compiled reader recorded, into the timer (once, at the end)."""
        body, self.body = self.body, None
        if body is None:
            return
        *timing, text = body.timing()
        self.timer.adopt(*timing)
        self.text = [text]


class LLMUser(User):
    """Streams ``POST {host}/v1/chat/completions`` in a closed loop (no think time by default).

    Subclass it in a locustfile. Override :meth:`messages` to vary prompts, or write tasks that
    call :meth:`chat` with your own messages; every call is recorded exactly once.
    """

    abstract = True
    wait_time = constant(0)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        install()  # defining a subclass registers the options and listeners (idempotent)
        if not cls.tasks:
            # The default task only applies to subclasses without tasks of their own (Locust would
            # otherwise inherit it and mix it, at random, with the subclass's tasks).
            cls.tasks = [LLMUser.chat_completion]

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._llm: LLMState = state_of(environment)
        self._http: HTTPClient | None = None
        self._sock: Any = None  # the connection of the request in flight
        self._failed_in_row = 0  # failed requests since the last success (for --fail-backoff)

    def chat_completion(self) -> None:
        """The default task: one request with the configured messages."""
        self.chat()

    def messages(self) -> list[dict[str, str]]:
        """The messages of the next request (default: --system-prompt and --prompt)."""
        return self._llm.require_config().messages

    def on_stop(self) -> None:
        self._drop_connection()

    # -- one request -----------------------------------------------------------------------
    def chat(self, messages: list[dict[str, str]] | None = None, **body: Any) -> RequestRecord:
        """Send one streaming request, record it, and return its record.

        ``body`` items override the request body built from the options (e.g. ``max_tokens=32``).
        """
        state = self._llm
        if state.config is None:
            # The test's options were rejected (reported in one line) and the run is ending.
            raise StopUser()
        config = state.config
        msgs = self.messages() if messages is None else messages
        payload = openai_chat.build_body(
            model=config.model,
            messages=msgs,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            ignore_eos=config.ignore_eos,
            extra_body={**config.extra_body, **body},
        )
        # identity: a compressed token stream costs CPU at both ends, and a compressor may hold
        # events back (one that compresses anyway is still decoded: llm_locust.wire.content)
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
        }
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        state.in_flight += 1
        try:
            rec, text = self._send(payload, headers, config.request_timeout_s)
            if rec.ok:
                try:
                    rec = self._with_token_counts(rec, text, msgs)
                except GreenletExit:
                    state.record(rec)  # the stream had completed; only the client-side count was cut
                    raise
        finally:
            state.in_flight -= 1
        state.record(rec)
        self._back_off(rec, config)
        return rec

    def _back_off(self, rec: RequestRecord, config: RunConfig) -> None:
        """After a failure, wait --fail-backoff (doubled per failure in a row, capped), so that a
        dead or refusing endpoint is not sent requests as fast as it can fail them."""
        if rec.ok:
            self._failed_in_row = 0
            return
        if rec.outcome == CANCELLED or config.fail_backoff_s <= 0:
            return
        self._failed_in_row += 1
        growth = min(2 ** min(self._failed_in_row - 1, 16), FAIL_BACKOFF_GROWTH)
        gevent.sleep(config.fail_backoff_s * growth)

    def _client(self) -> HTTPClient:
        if self._http is None:
            config = self._llm.require_config()
            self._http = HTTPClient.from_url(
                config.host,
                concurrency=1,
                connection_timeout=min(config.request_timeout_s, 30.0),
                # No per-read socket timeout: it would arm a timer for every read of every token.
                # --request-timeout is enforced once per request by a gevent.Timeout instead.
                network_timeout=None,
                ssl_context_factory=tls.context_factory(config.insecure),
                insecure=config.insecure,
            )
            pool = self._http._connection_pool
            pool._is_socket_alive = rxclock.socket_alive  # type: ignore[method-assign]
            get_socket = pool.get_socket

            def taken() -> Any:  # remember the connection: its send instant is the request's s_i
                self._sock = get_socket()
                return self._sock

            pool.get_socket = taken  # type: ignore[method-assign]
            if rxclock.supported() and not self._http.ssl:
                pool._create_tcp_socket = rxclock.create_tcp_socket  # type: ignore[method-assign]
        return self._http

    def _drop_connection(self) -> None:
        """Close the connection of the request (a failed stream's socket is checked out of the pool,
        so closing the pool alone would leave it open until the collector finds the response) and
        start the next request on a fresh client."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._http is not None:
            self._http.close()
            self._http = None

    def _send(self, payload: bytes, headers: dict[str, str], timeout_s: float) -> tuple[RequestRecord, str]:
        path = self._llm.path
        for attempt in (0, 1):
            timer = RequestTimer(time.perf_counter)
            deadline = gevent.Timeout(timeout_s, _Deadline)
            deadline.start()
            try:
                try:
                    response = self._client().request("POST", path, body=payload, headers=headers)
                except HTTPConnectionClosed:
                    # A kept-alive connection the server had closed: retry once on a fresh one.
                    self._drop_connection()
                    if attempt == 0:
                        continue
                    return timer.finish("connect", "connection closed before any response"), ""
                except ssl.SSLError as exc:
                    self._drop_connection()
                    return timer.finish("connect", tls.describe(exc, self._llm.require_config().host)), ""
                except (OSError, HTTPParseError) as exc:
                    self._drop_connection()
                    return timer.finish("connect", _describe(exc)), ""
                sent = rxclock.sent_at(self._sock)
                if sent is not None:
                    timer.sent(sent)
                body_untouched = rxclock.end_headers(response._sock)
                mark_headers_end(response)
                timer.headers(rxclock.event_clock(response._sock)())
                return self._read(response, timer, body_untouched)
            except _Deadline:
                self._drop_connection()
                detail = f"no end of stream after {timeout_s:g} s (--request-timeout)"
                return timer.finish("timeout", detail), ""
            except GreenletExit:
                self._drop_connection()
                self._llm.record(timer.finish(CANCELLED, "stopped by the end of the test"))
                raise
            finally:
                deadline.close()
        raise AssertionError("unreachable")

    def _read(self, response: Any, timer: RequestTimer, body_untouched: bool) -> tuple[RequestRecord, str]:
        status = response.status_code
        if status >= 400:
            return self._http_error(response, timer, status), ""
        if status >= 300:  # never followed: the next request would go to a host nobody chose
            self._drop_connection()
            return timer.finish("http_3xx", answer.redirect_detail(response)[:300]), ""
        media = answer.media_type(response)
        coding = response.get("content-encoding")
        try:
            content = decoder_for(",".join(coding) if isinstance(coding, list) else coding)
        except UnsupportedEncoding as exc:
            why = f", Content-Encoding {exc} (cannot decode it; llm-locust asks for identity)"
            return self._not_a_stream(response, timer, media, why=why), ""
        if media not in openai_chat.STREAM_CONTENT_TYPES:
            if answer.is_json(media):  # the whole answer of a server that ignores "stream": true
                return self._read_whole(response, timer, media, content)
            return self._not_a_stream(response, timer, media, content=content), ""
        return self._read_stream(response, timer, body_untouched, content)

    def _not_a_stream(
        self, response: Any, timer: RequestTimer, media: str, why: str = "", content: Any = None
    ) -> RequestRecord:
        prefix = answer.body_prefix(response, content)
        self._drop_connection()
        detail = answer.not_a_stream_detail(response.status_code, media, prefix, why)
        return timer.finish("not_a_stream", detail[:300])

    def _read_whole(
        self, response: Any, timer: RequestTimer, media: str, content: Any
    ) -> tuple[RequestRecord, str]:
        """A JSON body: one chat completion is measured as one event (TTFT = E2E; no ITL, no TPOT)
        and flagged ``streamed=False``; anything else is ``not_a_stream``."""
        clock = rxclock.event_clock(response._sock)
        try:
            body = answer.read_whole(response, content)
        except (OSError, HTTPParseError) as exc:
            self._drop_connection()
            return timer.finish("reset_mid_stream", _describe(exc)), ""
        except BadEncoding as exc:
            self._drop_connection()
            return timer.finish("bad_event", str(exc)[:200]), ""
        at = clock()
        status = response.status_code
        if body is None:
            self._drop_connection()
            over = f" (over {answer.MAX_WHOLE_BYTES >> 20} MiB)"
            detail = answer.not_a_stream_detail(status, media, b"", over)
            return timer.finish("not_a_stream", detail), ""
        try:
            completion = openai_chat.completion_of(orjson.loads(body))
        except orjson.JSONDecodeError:
            completion = None
        if completion is None:
            detail = answer.not_a_stream_detail(status, media, body[: answer.PREFIX_BYTES])
            return timer.finish("not_a_stream", detail[:300]), ""
        text = completion.content or completion.reasoning
        if not text:
            return timer.finish("empty", "a whole (not streamed) answer without any generated text"), ""
        timer.text(at, bool(completion.content))
        rec = timer.finish(OK, done_at_s=at)
        rec = _with_stream_counts(rec, completion.completion_tokens, completion.prompt_tokens)
        return _replace(rec, streamed=False), text

    def _read_stream(
        self, response: Any, timer: RequestTimer, body_untouched: bool, content: Any
    ) -> tuple[RequestRecord, str]:
        clock = rxclock.event_clock(response._sock)  # taken now: the response drops it at the end
        usable = reactor.usable(response)
        compiled = usable and content is None and reactor.compiled_for(response, body_untouched)
        body = reactor.new_body(response) if compiled else None
        reading = _Reading(timer, body)
        last_read_at: float | None = None
        category = OK
        detail = ""
        try:
            if usable:
                self._llm.health.count_reader("compiled" if body is not None else "reactor")
                try:
                    last_read_at = reactor.read_events(response, reading.event, body, content)
                finally:  # also for a failed or cut stream: its timings so far are the record's
                    reading.adopt_body()
            else:
                self._llm.health.count_reader("greenlet")
                reactor.read_unstamped()
                for name, data, at in iter_events(BodyLines(response, content).readline, clock):
                    if reading.event(name, data, at):
                        break
        except _StreamEnd as end:
            category, detail = end.category, end.detail
        except (openai_chat.BadEvent, EventTooLarge, BadEncoding) as exc:
            category, detail = "bad_event", str(exc)[:200]
        except (OSError, HTTPParseError) as exc:
            category, detail = "reset_mid_stream", _describe(exc)
        except (GreenletExit, _Deadline):
            raise
        except Exception as exc:  # a shape our parser did not expect
            category, detail = "bad_event", f"{type(exc).__name__}: {exc}"[:200]
        done_at = reading.done_at
        if category == OK:
            if done_at is None:
                done_at = last_read_at if last_read_at is not None else clock()
                if reading.finish is None:
                    category, detail = "truncated", "stream closed without [DONE] or finish_reason"
            else:
                self._drain(response)
            if category == OK and timer.text_events == 0:
                category, detail = "empty", "stream ended without any generated text"
        if category != OK or getattr(response, "llm_dirty", False):  # dirty: bytes after the body
            self._drop_connection()
        rec = timer.finish(category, detail, done_at_s=done_at)
        rec = _with_stream_counts(rec, reading.usage_out, reading.usage_in)
        if reading.timings is not None:
            rec = _replace(rec, server_timings=reading.timings)
        return rec, "".join(reading.text)

    def _drain(self, response: Any) -> None:
        """Read to the end of the body after [DONE] so the connection can be reused."""
        if response.message_complete:
            return
        try:
            with gevent.Timeout(_DRAIN_AFTER_DONE_S):
                reactor.drain(response)
        except (gevent.Timeout, OSError, HTTPParseError):
            self._drop_connection()

    def _http_error(self, response: Any, timer: RequestTimer, status: int) -> RequestRecord:
        try:
            body = response.read(_ERROR_BODY_BYTES)
            if not response.message_complete:
                self._drop_connection()
        except (OSError, HTTPParseError):
            body = b""
            self._drop_connection()
        message = _error_message(body)
        if status == 429:
            category = "http_429"
            retry = response.get("retry-after")
            if retry:
                message = f"{message} (Retry-After: {retry})"
        else:
            category = "http_4xx" if status < 500 else "http_5xx"
        return timer.finish(category, f"HTTP {status}: {message}"[:300])

    def _with_token_counts(self, rec: RequestRecord, text: str, msgs: list[dict[str, str]]) -> RequestRecord:
        state = self._llm
        need_tokenizer = rec.output_tokens_source != "usage" or rec.input_tokens_source != "usage"
        if not need_tokenizer and not state.check_usage_now():
            return rec
        tokenizer = state.tokenizer(wait=need_tokenizer)
        if tokenizer is None:
            return rec
        counted = count_off_loop(tokenizer, text) if text else 0
        fields: dict[str, Any] = {"tokenizer_output_tokens": counted}
        if rec.output_tokens_source != "usage":
            fields.update(output_tokens=counted, output_tokens_source="tokenizer")
        if rec.input_tokens_source != "usage":
            prompt_tokens = state.prompt_tokens(tokenizer, "".join(m.get("content", "") for m in msgs))
            fields.update(input_tokens=prompt_tokens, input_tokens_source="tokenizer")
        return _replace(rec, **fields)


def _replace(rec: RequestRecord, **fields: Any) -> RequestRecord:
    return dataclasses.replace(rec, **fields)


def _with_stream_counts(rec: RequestRecord, usage_out: int | None, usage_in: int | None) -> RequestRecord:
    fields: dict[str, Any] = {}
    if usage_out is not None:
        fields.update(output_tokens=usage_out, output_tokens_source="usage")
    else:
        fields.update(output_tokens=rec.text_events, output_tokens_source="events")
    if usage_in is not None:
        fields.update(input_tokens=usage_in, input_tokens_source="usage")
    return _replace(rec, **fields)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "socket timed out"
    return f"{type(exc).__name__}: {exc}"[:200]


def _error_message(body: bytes) -> str:
    if not body:
        return "(empty body)"
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()[:200]
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)[:200]
        return str(err)[:200]
    return str(obj)[:200]
