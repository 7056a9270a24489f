"""One request on one connection: its timer, its socket, its stream state and its record.

An :class:`Exchange` sends one :class:`~llm_locust.flavors.base.Request`, reads what comes back
(a stream in the flavor's framing, a whole JSON answer, or something that is neither) and turns
every outcome into exactly one :class:`~llm_locust.metrics.records.RequestRecord`. A User (closed
loop) or, later, an arrival scheduler (open loop) starts exchanges; neither owns sockets.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import gevent
import orjson
from gevent import GreenletExit
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

from llm_locust.flavors.base import BadEvent, Flavor, Request
from llm_locust.locust.client import LLMClient
from llm_locust.locust.health import Health
from llm_locust.metrics.records import CANCELLED, OK, RequestRecord, RequestTimer
from llm_locust.wire import answer, reactor, rxclock, tls
from llm_locust.wire.content import BadEncoding, BodyLines, UnsupportedEncoding, decoder_for, mark_headers_end
from llm_locust.wire.ndjson import NDJSONDecoder
from llm_locust.wire.sse import EventTooLarge, iter_events

_ERROR_BODY_BYTES = 2048
_DRAIN_AFTER_DONE_S = 1.0
REQUEST_ID_HEADER = "x-request-id"

_request_ids: list[Any] = []  # [prefix, counter] of this process, made at its first request
_fork_hook: list[bool] = []


def new_request_id() -> str:
    """A request id unique over the run's processes and machines: a random prefix per process (48
    bits, made again in a forked child) and a counter; a fraction of a microsecond per request."""
    ids = _request_ids
    if not ids:
        if not _fork_hook:
            os.register_at_fork(after_in_child=_request_ids.clear)
            _fork_hook.append(True)
        ids += [os.urandom(6).hex(), itertools.count(1)]
    return f"{ids[0]}-{next(ids[1])}"


class _Deadline(Exception):
    """The request ran past --request-timeout."""


class _StreamEnd(Exception):
    def __init__(self, category: str, detail: str) -> None:
        self.category = category
        self.detail = detail


class _Reading:
    """What one stream said so far: fed one event at a time, by any reader, decoded by the flavor.

    With the compiled reader (``body``), the body itself records the plain text chunks, which never
    reach :meth:`event`; the text events that do are recorded through the body too, so that the
    timings stay in arrival order, and :meth:`adopt_body` moves them into the timer at the end."""

    __slots__ = (
        "body",
        "cached_in",
        "decode",
        "done_at",
        "finish",
        "response_id",
        "text",
        "timer",
        "timings",
        "usage_in",
        "usage_out",
    )

    def __init__(self, timer: RequestTimer, flavor: Flavor, body: Any = None) -> None:
        self.timer = timer
        self.decode = flavor.decode
        self.body = body
        self.text: list[str] = []
        self.finish: str | None = None
        self.usage_out: int | None = None
        self.usage_in: int | None = None
        self.cached_in: int | None = None
        self.timings: dict[str, Any] | None = None
        self.done_at: float | None = None
        self.response_id: str | None = None

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
        """Take one event; True at the flavor's end of stream. Raises _StreamEnd / BadEvent on a
        failed stream."""
        delta = self.decode(name, data)
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
        if delta.prompt_tokens is not None:
            self.usage_in = delta.prompt_tokens
        if delta.cached_tokens is not None:
            self.cached_in = delta.cached_tokens
        if delta.response_id is not None and self.response_id is None:
            self.response_id = delta.response_id
        if delta.done:
            self.done_at = at
            return True
        return False

    def adopt_body(self) -> None:
        """The timings and text the compiled reader recorded, into the timer (once, at the end)."""
        body, self.body = self.body, None
        if body is None:
            return
        *timing, text = body.timing()
        self.timer.adopt(*timing)
        self.text = [text]


class Exchange:
    """One request: :meth:`run` sends it and returns its record and the text it generated. A
    request cut by the end of the test is handed to ``record_cancelled`` before ``GreenletExit``
    goes on (it is counted once, as ``cancelled``)."""

    def __init__(
        self,
        client: LLMClient,
        flavor: Flavor,
        request: Request,
        *,
        path: str,
        timeout_s: float,
        health: Health,
        record_cancelled: Callable[[RequestRecord], None],
    ) -> None:
        self.client = client
        self.flavor = flavor
        self.request = request
        self.path = path
        self.timeout_s = timeout_s
        self.health = health
        self.record_cancelled = record_cancelled
        self.request_id = new_request_id()
        self._reading: _Reading | None = None
        self._whole_id: str | None = None  # the id of a whole (not streamed) answer

    @property
    def response_id(self) -> str | None:
        """The server's id of its answer, once its stream (or its whole answer) said it."""
        reading = self._reading
        return self._whole_id if reading is None else reading.response_id

    def run(self) -> tuple[RequestRecord, str]:
        """Send the request (with :attr:`request_id` as ``x-request-id``, unless the request has that
        header already) and read its answer. The record's ids are the caller's to set (one
        ``dataclasses.replace`` per request, with its other fields): :attr:`request_id`,
        :attr:`response_id`."""
        client, timeout_s = self.client, self.timeout_s
        headers = dict(self.request.headers)
        if not any(k.lower() == REQUEST_ID_HEADER for k in headers):
            headers[REQUEST_ID_HEADER] = self.request_id
        else:
            self.request_id = next(v for k, v in headers.items() if k.lower() == REQUEST_ID_HEADER)
        for attempt in (0, 1):
            timer = RequestTimer(time.perf_counter)
            deadline = gevent.Timeout(timeout_s, _Deadline)
            deadline.start()
            try:
                try:
                    response = client.http().request(
                        "POST", self.path, body=self.request.body, headers=headers
                    )
                except HTTPConnectionClosed:
                    # A kept-alive connection the server had closed: retry once on a fresh one.
                    client.drop()
                    if attempt == 0:
                        continue
                    return timer.finish("connect", "connection closed before any response"), ""
                except ssl.SSLError as exc:
                    client.drop()
                    return timer.finish("connect", tls.describe(exc, client.host)), ""
                except (OSError, HTTPParseError) as exc:
                    client.drop()
                    return timer.finish("connect", describe(exc)), ""
                sent = rxclock.sent_at(client.sock)
                if sent is not None:
                    timer.sent(sent)
                body_untouched = rxclock.end_headers(response._sock)
                mark_headers_end(response)
                timer.headers(rxclock.event_clock(response._sock)())
                return self._read(response, timer, body_untouched)
            except _Deadline:
                client.drop()
                detail = f"no end of stream after {timeout_s:g} s (--request-timeout)"
                return timer.finish("timeout", detail), ""
            except GreenletExit:
                client.drop()
                rec = timer.finish(CANCELLED, "stopped by the end of the test")
                rec = dataclasses.replace(rec, request_id=self.request_id, response_id=self.response_id)
                self.record_cancelled(rec)
                raise
            finally:
                deadline.close()
        raise AssertionError("unreachable")

    def _read(self, response: Any, timer: RequestTimer, body_untouched: bool) -> tuple[RequestRecord, str]:
        status = response.status_code
        if status >= 400:
            return self._http_error(response, timer, status), ""
        if status >= 300:  # never followed: the next request would go to a host nobody chose
            self.client.drop()
            return timer.finish("http_3xx", answer.redirect_detail(response)[:300]), ""
        media = answer.media_type(response)
        coding = response.get("content-encoding")
        try:
            content = decoder_for(",".join(coding) if isinstance(coding, list) else coding)
        except UnsupportedEncoding as exc:
            why = f", Content-Encoding {exc} (cannot decode it; llm-locust asks for identity)"
            return self._not_a_stream(response, timer, media, why=why), ""
        if media not in self.flavor.stream_media_types:
            if answer.is_json(media):  # the whole answer of a server that ignores "stream": true
                return self._read_whole(response, timer, media, content)
            return self._not_a_stream(response, timer, media, content=content), ""
        return self._read_stream(response, timer, body_untouched, content)

    def _not_a_stream(
        self, response: Any, timer: RequestTimer, media: str, why: str = "", content: Any = None
    ) -> RequestRecord:
        prefix = answer.body_prefix(response, content)
        self.client.drop()
        detail = answer.not_a_stream_detail(response.status_code, media, prefix, why)
        return timer.finish("not_a_stream", detail[:300])

    def _read_whole(
        self, response: Any, timer: RequestTimer, media: str, content: Any
    ) -> tuple[RequestRecord, str]:
        """A JSON body: one answer of the flavor's API is measured as one event (TTFT = E2E; no
        ITL, no TPOT) and flagged ``streamed=False``; anything else is ``not_a_stream``."""
        clock = rxclock.event_clock(response._sock)
        try:
            body = answer.read_whole(response, content)
        except (OSError, HTTPParseError) as exc:
            self.client.drop()
            return timer.finish("reset_mid_stream", describe(exc)), ""
        except BadEncoding as exc:
            self.client.drop()
            return timer.finish("bad_event", str(exc)[:200]), ""
        at = clock()
        status = response.status_code
        if body is None:
            self.client.drop()
            over = f" (over {answer.MAX_WHOLE_BYTES >> 20} MiB)"
            detail = answer.not_a_stream_detail(status, media, b"", over)
            return timer.finish("not_a_stream", detail), ""
        try:
            completion = self.flavor.whole(orjson.loads(body))
        except orjson.JSONDecodeError:
            completion = None
        if completion is None:
            detail = answer.not_a_stream_detail(status, media, body[: answer.PREFIX_BYTES])
            return timer.finish("not_a_stream", detail[:300]), ""
        self._whole_id = completion.response_id
        text = completion.content or completion.reasoning
        if not text:
            return timer.finish("empty", "a whole (not streamed) answer without any generated text"), ""
        timer.text(at, bool(completion.content))
        rec = timer.finish(OK, done_at_s=at)
        rec = with_stream_counts(rec, completion.completion_tokens, completion.prompt_tokens)
        return dataclasses.replace(rec, streamed=False, finish_reason=completion.finish_reason), text

    def _read_stream(
        self, response: Any, timer: RequestTimer, body_untouched: bool, content: Any
    ) -> tuple[RequestRecord, str]:
        flavor = self.flavor
        clock = rxclock.event_clock(response._sock)  # taken now: the response drops it at the end
        usable = reactor.usable(response)
        compiled = usable and content is None and reactor.compiled_for(response, body_untouched)
        scanner = flavor.plain_scanner
        body = reactor.new_body(response, scanner, flavor.framing) if compiled else None
        reading = self._reading = _Reading(timer, flavor, body)
        last_read_at: float | None = None
        category = OK
        detail = ""
        try:
            if usable:
                self.health.count_reader("compiled" if body is not None else "reactor")
                try:
                    last_read_at = reactor.read_events(response, reading.event, body, content, flavor.framing)
                finally:  # also for a failed or cut stream: its timings so far are the record's
                    reading.adopt_body()
            else:
                self.health.count_reader("greenlet")
                reactor.read_unstamped()
                ndjson = flavor.framing == "ndjson"
                lines = BodyLines(response, content, tail=ndjson)
                decoder = NDJSONDecoder() if ndjson else None
                for name, data, at in iter_events(lines.readline, clock, decoder):
                    if reading.event(name, data, at):
                        break
        except _StreamEnd as end:
            category, detail = end.category, end.detail
        except (BadEvent, EventTooLarge, BadEncoding) as exc:
            category, detail = "bad_event", str(exc)[:200]
        except (OSError, HTTPParseError) as exc:
            category, detail = "reset_mid_stream", describe(exc)
        except (GreenletExit, _Deadline):
            raise
        except Exception as exc:  # a shape our parser did not expect
            category, detail = "bad_event", f"{type(exc).__name__}: {exc}"[:200]
        done_at = reading.done_at
        if category == OK:
            if done_at is None:
                done_at = last_read_at if last_read_at is not None else clock()
                if reading.finish is None:
                    category, detail = "truncated", f"stream closed without {flavor.end_marker}"
            else:
                self._drain(response)
            if category == OK and timer.text_events == 0:
                category, detail = "empty", "stream ended without any generated text"
        if category != OK or getattr(response, "llm_dirty", False):  # dirty: bytes after the body
            self.client.drop()
        rec = timer.finish(category, detail, done_at_s=done_at)
        rec = with_stream_counts(rec, reading.usage_out, reading.usage_in)
        if reading.finish is not None or reading.cached_in is not None:
            rec = dataclasses.replace(
                rec, finish_reason=reading.finish, cached_input_tokens=reading.cached_in
            )
        if reading.timings is not None:
            server = flavor.server_timings(reading.timings)
            rec = dataclasses.replace(rec, server_timings=reading.timings, server=server)
        return rec, "".join(reading.text)

    def _drain(self, response: Any) -> None:
        """Read to the end of the body after the end of the stream, so the connection can be reused."""
        if response.message_complete:
            return
        try:
            with gevent.Timeout(_DRAIN_AFTER_DONE_S):
                reactor.drain(response)
        except (gevent.Timeout, OSError, HTTPParseError):
            self.client.drop()

    def _http_error(self, response: Any, timer: RequestTimer, status: int) -> RequestRecord:
        try:
            body = response.read(_ERROR_BODY_BYTES)
            if not response.message_complete:
                self.client.drop()
        except (OSError, HTTPParseError):
            body = b""
            self.client.drop()
        message = error_message(body)
        if status == 429:
            category = "http_429"
            retry = response.get("retry-after")
            if retry:
                message = f"{message} (Retry-After: {retry})"
        else:
            category = "http_4xx" if status < 500 else "http_5xx"
        return timer.finish(category, f"HTTP {status}: {message}"[:300])


def with_stream_counts(rec: RequestRecord, usage_out: int | None, usage_in: int | None) -> RequestRecord:
    fields: dict[str, Any] = {}
    if usage_out is not None:
        fields.update(output_tokens=usage_out, output_tokens_source="usage")
    else:
        fields.update(output_tokens=rec.text_events, output_tokens_source="events")
    if usage_in is not None:
        fields.update(input_tokens=usage_in, input_tokens_source="usage")
    return dataclasses.replace(rec, **fields)


def describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "socket timed out"
    return f"{type(exc).__name__}: {exc}"[:200]


def error_message(body: bytes) -> str:
    """The message of an error body: OpenAI's, Anthropic's and Ollama's JSON shapes, or its text."""
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
