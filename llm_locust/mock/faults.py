"""The mock's faults: what each does and the outcome a client should report for it.

A fault is injected per request with ``"mock_fault": KIND`` in the body (e.g. via --extra-body) or at
random with ``--fault KIND:PROBABILITY``. Every flavor serves every fault in its own API's shapes (its
error body, its in-stream error, its end marker); the outcome a client should report is the same for
every flavor.
"""

from __future__ import annotations

#: fault -> what it does, and the outcome a client should report (llm-locust's categories).
_FAULTS: dict[str, tuple[str, str]] = {
    "http_500": ("HTTP 500 with the API's JSON error", "http_5xx"),
    "http_429": ("HTTP 429 with Retry-After", "http_429"),
    "http_400": ("HTTP 400 with the API's JSON error", "http_4xx"),
    "reset": ("a TCP reset half-way through the stream", "reset_mid_stream"),
    "malformed": ("an event (NDJSON: a line) that is not JSON", "bad_event"),
    "error_event": ("the API's in-stream error half-way", "server_error_event"),
    "stall": ("--stall-s of silence half-way (longer than the client's timeout)", "timeout"),
    "truncated": ("the body ends half-way, before the API's end of stream", "truncated"),
    "empty": ("a stream that ends normally without any text", "empty"),
    "short": ('the answer ends normally ("stop") after half of its tokens, with usage of those', "ok"),
    "redirect": ("HTTP 302 to another host", "http_3xx"),
    "html": ("200 with an HTML login page", "not_a_stream"),
    "no_stream": ('one whole JSON answer, ignoring "stream": true', "ok"),
    "gzip": ("the stream gzip-compressed (one flush per event)", "ok"),
    "deflate": ("the stream deflate-compressed (one flush per event)", "ok"),
    "br": ("the stream brotli-compressed (one flush per event)", "ok"),
    "slow_headers": ("a status line, then --stall-s of silence", "timeout"),
    "huge_event": ("an event line of 2 MiB", "bad_event"),
    "huge_headers": ("a header of 2 MiB", "connect"),
}
FAULTS: tuple[str, ...] = tuple(_FAULTS)
#: fault -> the outcome a client should report for it ("ok": it must still read the answer)
FAULT_OUTCOMES: dict[str, str] = {kind: outcome for kind, (_what, outcome) in _FAULTS.items()}
FAULT_HELP = "; ".join(f"{kind}: {what}" for kind, (what, _outcome) in _FAULTS.items())
#: faults that compress the stream: the Content-Encoding they name
COMPRESSED = ("gzip", "deflate", "br")
#: faults answered with an HTTP error status (the number after the underscore)
HTTP_ERRORS = ("http_500", "http_429", "http_400")


def short_tokens(n: int) -> int:
    """The tokens that the ``short`` fault sends of an answer that would have had ``n``: half,
    rounded up (so at least 1 of any answer with tokens; 0 of an empty one)."""
    return (n + 1) // 2
