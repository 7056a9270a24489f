"""The mock serves every API flavor from the same engine, with every fault, in each API's own shapes:
in-process on port 0, as tests/test_mock.py; streams parsed in their documented formats (event names,
order, end marker), timed with kernel receive times, usage against a cl100k_base count of the text."""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import brotli
import gevent
import orjson
import pytest
from gevent import socket
from geventhttpclient import HTTPClient

from llm_locust.mock.engine import Engine, Timing
from llm_locust.mock.faults import FAULTS, short_tokens
from llm_locust.mock.server import MockServer
from llm_locust.wire import rxclock
from llm_locust.workload.tokenizer import load_tokenizer

SYSTEM = "You are a terse assistant. "
PROMPT = "Name three colours of the sea."
SSE = ("openai-chat", "openai-completions", "openai-responses", "anthropic-messages")
NAMES = (*SSE[:3], "ollama-chat", "ollama-generate", SSE[3])  # as /mock/stats lists them


def count(text: str) -> int:
    return int(load_tokenizer("cl100k_base").count(text))


def request(name: str, n: int, stream: bool = True, **extra: Any) -> tuple[str, dict[str, str], bytes]:
    """(path, headers, body) of one request of flavor ``name`` for ``n`` tokens, whose prompt text is
    SYSTEM + PROMPT in every API's shape."""
    system, user = {"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}
    usage, ollama = {"stream_options": {"include_usage": True}}, {"options": {"num_predict": n}}
    path, body = {
        "openai-chat": ("/v1/chat/completions", {"messages": [system, user], "max_tokens": n, **usage}),
        "openai-completions": ("/v1/completions", {"prompt": SYSTEM + PROMPT, "max_tokens": n, **usage}),
        "openai-responses": (
            "/v1/responses",
            {"instructions": SYSTEM, "input": [user], "max_output_tokens": n},
        ),
        "ollama-chat": ("/api/chat", {"messages": [system, user], **ollama}),
        "ollama-generate": ("/api/generate", {"system": SYSTEM, "prompt": PROMPT, **ollama}),
        "anthropic-messages": ("/v1/messages", {"system": SYSTEM, "messages": [user], "max_tokens": n}),
    }[name]
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "k"} if name == "anthropic-messages" else {}
    return path, headers, orjson.dumps({"model": "mock", **body, "stream": stream, **extra})


# -- reading answers ----------------------------------------------------------------------------------
@dataclass
class Raw:
    """One response as bytes: status, headers, the de-chunked (and decoded) body."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    ended: bool = False  # the chunked body ended cleanly (its last chunk came)
    error: str = ""  # what ended the read, when not the end of the body
    head: bytes = b""
    elapsed_s: float = 0.0


def exchange(port: int, body: bytes, path: str, headers: dict[str, str], timeout_s: float = 5) -> Raw:
    sock = socket.create_connection(("127.0.0.1", port))
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{lines}Content-Length: {len(body)}\r\n\r\n"
    )
    t0 = time.perf_counter()
    sock.sendall(head.encode() + body)
    sock.settimeout(timeout_s)
    data, out = b"", Raw()
    try:
        while chunk := sock.recv(1 << 20):  # to the end: the mock closes after one request
            data += chunk
    except OSError as exc:
        out.error = type(exc).__name__
    out.elapsed_s = time.perf_counter() - t0
    sock.close()
    out.head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return out
    status, *fields = out.head.decode("latin-1").split("\r\n")
    out.status = int(status.split()[1])
    out.headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    chunked = out.headers.get("transfer-encoding") == "chunked"
    out.body = b"" if chunked else rest
    while chunked and rest and not out.ended:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        out.body, rest, out.ended = out.body + rest[:n], rest[n + 2 :], n == 0
    coding = out.headers.get("content-encoding")
    if coding:
        wbits = 31 if coding == "gzip" else 15
        out.body = brotli.decompress(out.body) if coding == "br" else zlib.decompress(out.body, wbits)
    return out


def events(name: str, body: bytes) -> list[tuple[str, str]]:
    """(event name, data) of each SSE event ("message" without a name); ("", line) per NDJSON line."""
    if name not in SSE:
        return [("", line) for line in body.decode().split("\n") if line]
    out = []
    for block in body.decode().split("\n\n"):
        if block:
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            out.append((fields.get("event", "message"), fields["data"]))
    return out


def piece(name: str, obj: Any) -> tuple[str, str]:
    """(text, reasoning) that one decoded event carries."""
    if name == "openai-chat":
        delta = obj["choices"][0]["delta"] if obj.get("choices") else {}
        return delta.get("content") or "", delta.get("reasoning_content") or ""
    if name == "openai-completions":
        return (obj["choices"][0]["text"] if obj.get("choices") else ""), ""
    if name == "openai-responses":  # response.output_text.delta, response.reasoning_text.delta
        delta = obj["delta"] if obj["type"].endswith("_text.delta") else ""
        return ("", delta) if "reasoning" in obj["type"] else (delta, "")
    if name == "ollama-chat":
        return obj["message"]["content"], obj["message"].get("thinking", "")
    if name == "ollama-generate":
        return obj["response"], obj.get("thinking", "")
    delta = obj.get("delta", {}) if obj["type"] == "content_block_delta" else {}
    return delta.get("text", ""), delta.get("thinking", "")


@dataclass
class Summary:
    text: str = ""
    reasoning: str = ""
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    ended: bool = False  # the API's own end of stream came
    error: Any = None  # the in-stream error object
    error_at: int = 0  # len(text) when it came
    bad: int = 0  # events that are not JSON
    names: list[str] = field(default_factory=list)  # SSE event names, or the type of each event
    objs: list[Any] = field(default_factory=list)


def summary(name: str, body: bytes) -> Summary:
    s = Summary()
    for event, data in events(name, body):
        if data == "[DONE]":
            s.ended = True
            continue
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            s.bad += 1
            continue
        s.objs.append(obj)
        s.names.append(event or ("done" if obj.get("done") else "error" if "error" in obj else "line"))
        if event == "error" or (name not in ("openai-responses", "anthropic-messages") and "error" in obj):
            s.error, s.error_at = obj, len(s.text)
            continue
        text, reasoning = piece(name, obj)
        s.text += text
        s.reasoning += reasoning
        usage = obj.get("usage") or {}
        if name in ("openai-chat", "openai-completions") and usage:
            s.prompt_tokens, s.output_tokens = usage["prompt_tokens"], usage["completion_tokens"]
        elif name == "openai-responses" and event == "response.completed":
            usage = obj["response"]["usage"]
            s.prompt_tokens, s.output_tokens, s.ended = usage["input_tokens"], usage["output_tokens"], True
        elif name.startswith("ollama") and obj.get("done"):
            s.prompt_tokens, s.output_tokens, s.ended = obj["prompt_eval_count"], obj["eval_count"], True
        elif event == "message_start":
            s.prompt_tokens = obj["message"]["usage"]["input_tokens"]
        elif event == "message_delta":
            s.output_tokens = obj["usage"]["output_tokens"]
        elif event == "message_stop":
            s.ended = True
    return s


def finish_of(name: str, s: Summary) -> str:
    """How a stream says it ended: its finish reason, stop reason, done reason or final status."""
    if name == "openai-responses":
        return str(s.objs[-1]["response"]["status"])
    if name == "anthropic-messages":
        return str(next(o["delta"]["stop_reason"] for o in s.objs if o["type"] == "message_delta"))
    if name.startswith("ollama"):
        return str(s.objs[-1]["done_reason"])
    return str(next(c["finish_reason"] for o in s.objs for c in o["choices"] if c["finish_reason"]))


#: each API's end of an answer that stopped by itself (not at its token limit)
STOP = {"openai-responses": "completed", "anthropic-messages": "end_turn"}


def whole(name: str, obj: Any) -> tuple[str, str, int, int]:
    """(text, reasoning, prompt tokens, output tokens) of a non-streamed answer."""
    if name in ("openai-chat", "openai-completions"):
        choice, u = obj["choices"][0], obj["usage"]
        m = choice.get("message", {"content": choice.get("text")})
        return m["content"], m.get("reasoning_content", ""), u["prompt_tokens"], u["completion_tokens"]
    if name == "openai-responses":
        assert obj["object"] == "response" and obj["status"] == "incomplete"
        parts = [p for item in obj["output"] for p in item["content"]]
        text = "".join(p["text"] for p in parts if p["type"] == "output_text")
        reasoning = "".join(p["text"] for p in parts if p["type"] == "reasoning_text")
        return text, reasoning, obj["usage"]["input_tokens"], obj["usage"]["output_tokens"]
    if name.startswith("ollama"):
        assert obj["done"] is True and obj["done_reason"] == "length"
        text, reasoning = piece(name, obj)
        return text, reasoning, obj["prompt_eval_count"], obj["eval_count"]
    assert obj["type"] == "message" and obj["stop_reason"] == "max_tokens"
    blocks = obj["content"]
    text = "".join(b["text"] for b in blocks if b["type"] == "text")
    reasoning = "".join(b["thinking"] for b in blocks if b["type"] == "thinking")
    return text, reasoning, obj["usage"]["input_tokens"], obj["usage"]["output_tokens"]


# -- servers --------------------------------------------------------------------------------------------
class Mock:
    """A mock in this process, on a free port (a context manager that stops it)."""

    def __init__(self, engine: Engine, **kwargs: Any) -> None:
        self.server = MockServer(engine, **kwargs)
        self.port = self.server.start("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.port}"

    def ask(self, name: str, n: int, timeout_s: float = 5, **extra: Any) -> Raw:
        path, headers, body = request(name, n, **extra)
        return exchange(self.port, body, path, headers, timeout_s)

    def __enter__(self) -> Mock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def get(self, path: str, post: bool = False) -> Any:
        client = HTTPClient.from_url(self.url)
        try:
            return orjson.loads((client.post(path, body=b"") if post else client.get(path)).read())
        finally:
            client.close()


@pytest.fixture(scope="module")
def mock() -> Iterator[Mock]:
    """One mock for the tests that need no particular timing (--stall-s 0.3)."""
    with Mock(Engine("fixed", Timing(ttft_ms=5, itl_ms=1)), stall_s=0.3) as m:
        yield m


# -- streams ---------------------------------------------------------------------------------------------
RESPONSES_EVENTS = "created in_progress output_item.added content_part.added" + " output_text.delta" * 3
RESPONSES_EVENTS += " output_text.done content_part.done output_item.done completed"
ANTHROPIC_EVENTS = "message_start content_block_start ping" + " content_block_delta" * 3
ANTHROPIC_EVENTS += " content_block_stop message_delta message_stop"
EXPECTED_NAMES = {
    "openai-chat": ["message"] * 6,  # role, 3 tokens, finish, usage (then [DONE])
    "openai-completions": ["message"] * 5,  # 3 tokens, finish, usage (then [DONE])
    "openai-responses": ["response." + kind for kind in RESPONSES_EVENTS.split()],
    "ollama-chat": ["line"] * 3 + ["done"],
    "ollama-generate": ["line"] * 3 + ["done"],
    "anthropic-messages": ANTHROPIC_EVENTS.split(),
}


@pytest.mark.parametrize("name", NAMES)
def test_each_stream_has_its_apis_events_in_order_and_exact_usage(mock: Mock, name: str) -> None:
    mock.server.reset()
    raw = mock.ask(name, 3)
    media = "application/x-ndjson" if name.startswith("ollama") else "text/event-stream"
    assert (raw.status, raw.headers["content-type"], raw.ended, raw.error) == (200, media, True, "")
    s = summary(name, raw.body)
    assert s.names == EXPECTED_NAMES[name] and s.ended and s.bad == 0 and s.error is None
    assert s.output_tokens == count(s.text) == 3 and s.reasoning == ""
    assert s.prompt_tokens == count(SYSTEM + PROMPT)
    if name in ("openai-responses", "anthropic-messages"):
        assert [o["type"] for o in s.objs] == s.names  # the event line names the data's type
    if name == "openai-responses":
        assert [o["sequence_number"] for o in s.objs] == list(range(len(s.objs)))
        final = s.objs[-1]["response"]
        assert (final["status"], final["incomplete_details"]["reason"]) == ("incomplete", "max_output_tokens")
        assert final["output"][0]["content"][0]["text"] == s.text and final["instructions"] == SYSTEM
    if name == "anthropic-messages":
        assert s.objs[-2]["delta"]["stop_reason"] == "max_tokens"
    if name.startswith("ollama"):
        assert s.objs[-1]["done_reason"] == "length" and all(not o["done"] for o in s.objs[:-1])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", s.objs[0]["created_at"])
    served = mock.server.snapshot()["served_by_flavor"]
    mine = {k: v for k, v in served[name].items() if "late" not in k}  # the late counts vary
    assert mine == dict(requests=1, ok=1, responses=1, tokens_sent=3, output_tokens=3, prompt_tokens=13)
    assert all(not counts for other, counts in served.items() if other != name)


def timed_stream(url: str, name: str, n: int) -> tuple[float, list[float], str]:
    """(TTFT s, token arrival times, text) of one stream: from the instant the request was written
    to the kernel's receive time of each token event (as tests/test_mock.py measures chat)."""
    client = HTTPClient.from_url(url, concurrency=1)
    pool = client._connection_pool
    pool._create_tcp_socket, pool._is_socket_alive = rxclock.create_tcp_socket, rxclock.socket_alive
    client.get("/health").read()  # connected first
    path, headers, body = request(name, n)
    resp = client.post(path, body=body, headers=headers)
    sock = resp._sock
    rxclock.end_headers(sock)
    clock = rxclock.event_clock(sock)
    sent = sock.sent_at_s
    times: list[float] = []
    text = ""
    while line := resp.readline(b"\n"):
        data = line[6:] if line.startswith(b"data: {") else line if line.startswith(b"{") else b""
        if data and (got := "".join(piece(name, orjson.loads(data)))):
            times.append(clock())
            text += got
    client.close()
    return times[0] - sent, times, text


@pytest.mark.parametrize("name", NAMES)
def test_ttft_and_itl_follow_the_engines_schedule(name: str) -> None:
    """Token k of a stream arrives 40 + 8k ms after its request was sent: never early, and late only
    by the mock's timer slack (about 1 ms) or when this shared machine keeps its loop from running."""
    with Mock(Engine("fixed", Timing(ttft_ms=40, itl_ms=8))) as m:
        runs = [timed_stream(m.url, name, 12) for _ in range(3)]
    late_ms = sorted(
        (t - (times[0] - ttft_s) - 0.040 - 0.008 * k) * 1000
        for ttft_s, times, _ in runs
        for k, t in enumerate(times)
    )
    assert late_ms[0] > -0.5 and late_ms[len(late_ms) // 2] < 1.5 and late_ms[len(late_ms) * 9 // 10] < 5
    assert all(len(times) == 12 == count(text) for _, times, text in runs)


@pytest.mark.parametrize("name", NAMES)
def test_slots_queue_requests_of_every_flavor_in_one_fifo(name: str) -> None:
    """One slot: a request of ``name`` sent while a chat request holds it starts when that one ends."""
    with Mock(Engine("slots", Timing(ttft_ms=20, itl_ms=5), slots=1)) as m:
        first = gevent.spawn(timed_stream, m.url, "openai-chat", 40)  # holds the slot for 215 ms
        while not m.server.engine.running:
            gevent.sleep(0.001)
        second = gevent.spawn(timed_stream, m.url, name, 5)
        while not m.server.engine.waiting:  # the second one is queued
            gevent.sleep(0.001)
        assert m.server.engine.running == 1 and not first.ready()
        gevent.joinall([first, second], raise_error=True)
    # its prefill starts when the chat stream's last token is out (late only when this machine is busy)
    assert 19 < (second.value[1][0] - first.value[1][-1]) * 1000 < 32


def test_ollama_reports_the_mocks_own_durations() -> None:
    """prompt_eval from the slot to the first token, eval from the first to the last token, total from
    the arrival to the last line: a queued request's wait shows in its total only."""
    with Mock(Engine("slots", Timing(ttft_ms=30, itl_ms=10), slots=1)) as m:
        jobs = [gevent.spawn(m.ask, "ollama-chat", 6) for _ in range(2)]
        gevent.joinall(jobs, raise_error=True)
    lasts = [summary("ollama-chat", j.value.body).objs[-1] for j in jobs]
    # which of the two reached the slot first is the mock's accept order, not the spawn order
    alone, queued = sorted(
        ({k: v / 1e6 for k, v in last.items() if "dur" in k} for last in lasts),
        key=lambda ms: ms["total_duration"],
    )
    for ms in (alone, queued):  # on the schedule: never early; late only when the mock's loop was
        assert 30 <= ms["prompt_eval_duration"] < 40 and ms["eval_duration"] == pytest.approx(50, abs=8)
        assert ms["load_duration"] == 0
    assert 0 <= alone["total_duration"] - alone["prompt_eval_duration"] - alone["eval_duration"] < 3
    wait = queued["total_duration"] - queued["prompt_eval_duration"] - queued["eval_duration"]
    assert wait == pytest.approx(alone["total_duration"], abs=5)  # it waited for the first one


# -- whole answers, reasoning ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("how", ["stream_false", "no_stream_fault"])
def test_whole_answers_in_each_apis_shape(mock: Mock, name: str, how: str) -> None:
    extra = {"stream": False} if how == "stream_false" else {"mock_fault": "no_stream"}
    raw = mock.ask(name, 7, **extra)
    assert (raw.status, raw.headers["content-type"]) == (200, "application/json")
    text, reasoning, prompt_tokens, output_tokens = whole(name, orjson.loads(raw.body))
    assert output_tokens == count(text) == 7 and reasoning == ""
    assert prompt_tokens == count(SYSTEM + PROMPT)


@pytest.mark.parametrize("name", NAMES)
def test_reasoning_tokens_come_first_in_each_apis_reasoning_field(name: str) -> None:
    with Mock(Engine("fixed", Timing(ttft_ms=5, itl_ms=1)), reasoning_tokens=3) as m:
        s = summary(name, m.ask(name, 8).body)
        answer = orjson.loads(m.ask(name, 8, stream=False).body)
    expected = (0, 8) if name == "openai-completions" else (3, 5)  # completions: no reasoning field
    assert (count(s.reasoning), count(s.text), s.output_tokens) == (*expected, 8)
    text, reasoning, _, output_tokens = whole(name, answer)
    assert output_tokens == count(reasoning) + count(text) == 8
    if name == "openai-chat":
        assert list(s.objs[1]["choices"][0]["delta"]) == ["reasoning_content"]
        assert s.objs[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    if name == "openai-responses":
        added = [o["item"]["type"] for o in s.objs if o["type"] == "response.output_item.added"]
        final = s.objs[-1]["response"]
        assert added == [item["type"] for item in final["output"]] == ["reasoning", "message"]
        assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 3
    if name == "anthropic-messages":
        starts = [(o["index"], o["content_block"]["type"]) for o in s.objs if "content_block" in o]
        assert starts == [(0, "thinking"), (1, "text")]
        deltas = [o["delta"]["type"] for o in s.objs if o["type"] == "content_block_delta"]
        assert deltas == ["thinking_delta"] * 3 + ["signature_delta"] + ["text_delta"] * 5
    if name.startswith("ollama"):
        assert [bool(piece(name, o)[1]) for o in s.objs[:-1]] == [True] * 3 + [False] * 5


# -- faults ------------------------------------------------------------------------------------------------
def error_shape(name: str, obj: Any, status: int | None = None) -> bool:
    """The API's error object (HTTP body, or in the stream when ``status`` is None)."""
    message = f"mock fault http_{status}" if status else "mock error event"
    if name.startswith("openai"):
        if name == "openai-responses" and status is None:
            return obj["type"] == "error" and obj["code"] == "server_error" and obj["message"] == message
        return bool(obj["error"]["message"] == message)
    if name.startswith("ollama"):
        return bool(obj == {"error": message})
    kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(status or 500, "api_error")
    return bool(obj == {"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", NAMES)
def test_every_fault_in_each_apis_shape(mock: Mock, name: str, fault: str) -> None:
    mock.server.reset()
    # slow_headers is silent for the mock's --stall-s (0.3 s): read it with a shorter timeout
    raw = mock.ask(name, 6, timeout_s=0.1 if fault == "slow_headers" else 5, mock_fault=fault)
    streamed = raw.status == 200 and fault not in ("html", "huge_event", "no_stream")
    s = summary(name, raw.body) if streamed else Summary()
    assert mock.server.snapshot()["served_by_flavor"][name][f"injected:{fault}"] == 1
    if fault.startswith("http_"):
        status = int(fault[5:])
        assert raw.status == status and error_shape(name, orjson.loads(raw.body), status)
        assert (raw.headers.get("retry-after") == "1") == (status == 429)
    elif fault == "reset":
        assert raw.error == "ConnectionResetError" and not s.ended and count(s.text) == 3
    elif fault == "malformed":
        assert s.bad == 1 and s.ended and count(s.text) == 6
    elif fault == "error_event":
        assert error_shape(name, s.error) and count(s.text[: s.error_at]) == 3
        if name in ("openai-chat", "openai-completions"):
            assert s.ended and count(s.text) == 6  # the stream goes on to [DONE], as before flavors
        else:
            assert raw.ended and not s.ended and s.names[-1] == "error"  # the body ends after the error
    elif fault == "stall":
        assert s.ended and count(s.text) == 6 and raw.elapsed_s >= 0.3
    elif fault == "truncated":
        assert raw.ended and not s.ended and count(s.text) == 3 and s.error is None
    elif fault == "empty":
        assert s.ended and s.text == s.reasoning == "" and s.output_tokens == 0 and s.bad == 0
    elif fault == "short":  # half of the 6 tokens, ended as an answer that stopped by itself
        assert s.ended and count(s.text) == s.output_tokens == short_tokens(6) == 3 and s.bad == 0
        assert finish_of(name, s) == STOP.get(name, "stop")
    elif fault == "redirect":
        assert raw.status == 302 and raw.headers["location"] == "http://127.0.0.1:9" + request(name, 1)[0]
    elif fault == "html":
        assert (raw.status, raw.headers["content-type"][:9], raw.body[:6]) == (200, "text/html", b"<html>")
    elif fault == "no_stream":
        assert (
            raw.headers["content-type"] == "application/json" and whole(name, orjson.loads(raw.body))[3] == 6
        )
    elif fault in ("gzip", "deflate", "br"):
        assert raw.headers["content-encoding"] == fault and s.ended and count(s.text) == s.output_tokens == 6
    elif fault == "slow_headers":
        assert raw.head == b"HTTP/1.1 200 OK\r\n" and raw.error == "TimeoutError"
    elif fault == "huge_event":
        last_line = raw.body.rsplit(b"\n", 1)[-1]
        assert len(last_line) > 2 << 20 and not raw.ended
        assert last_line.startswith(b"data: {" if name in SSE else b'{"model":"mock"')
    elif fault == "huge_headers":
        assert raw.status == 0 and re.search(rb"X-Huge: h{2097152}", raw.head)
    else:
        raise AssertionError(f"no check for fault {fault}")


# -- the rest of the surface -------------------------------------------------------------------------------
def test_bad_requests_get_each_apis_error_body_and_anthropic_what_the_real_api_refuses(mock: Mock) -> None:
    mock.server.reset()
    for name in NAMES:
        path, headers, body = request(name, 5)
        raw = exchange(mock.port, b"{not json", path, headers)
        assert raw.status == 400
        assert isinstance(orjson.loads(raw.body)["error"], str if name.startswith("ollama") else dict)
    no_max = orjson.dumps({"model": "mock", "messages": [{"role": "user", "content": PROMPT}]})
    raw = exchange(mock.port, no_max, path, headers)
    error = {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert raw.status == 400 and orjson.loads(raw.body) == {"type": "error", "error": error}
    raw = exchange(mock.port, body, path, {})  # no anthropic-version
    error["message"] = "anthropic-version: header is required"
    assert raw.status == 400 and orjson.loads(raw.body) == {"type": "error", "error": error}
    assert all(mock.server.snapshot()["served_by_flavor"][name] == {"bad_request": 1} for name in NAMES[:-1])
    assert mock.server.snapshot()["served_by_flavor"]["anthropic-messages"] == {"bad_request": 3}


def test_served_by_flavor_adds_up_to_the_totals_and_models_are_listed(mock: Mock) -> None:
    mock.server.reset()
    for i, name in enumerate(NAMES):
        for _ in range(i + 1):
            assert mock.ask(name, 4).ended
    stats = mock.get("/mock/stats")
    by_flavor = stats["served_by_flavor"]
    assert list(by_flavor) == list(NAMES)
    assert [by_flavor[name]["ok"] for name in NAMES] == [1, 2, 3, 4, 5, 6]
    for key in ("requests", "ok", "output_tokens", "prompt_tokens", "tokens_sent"):
        assert stats["served"][key] == sum(c.get(key, 0) for c in by_flavor.values())
    assert stats["served"]["output_tokens"] == 4 * 21
    tags = mock.get("/api/tags")  # the model as Ollama lists one, and as OpenAI does
    assert [(m["name"], m["model"]) for m in tags["models"]] == [("mock", "mock")]
    assert {"modified_at", "size", "digest", "details"} <= set(tags["models"][0])
    assert [m["id"] for m in mock.get("/v1/models")["data"]] == ["mock"]
    assert mock.get("/mock/reset", post=True) == {"reset": True}
    after = mock.get("/mock/stats")
    assert after["served"] == {} and after["served_by_flavor"] == {name: {} for name in NAMES}
