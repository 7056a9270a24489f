"""One request as one JSON line (``--llm-requests``), and the record again from such a line.

A line holds every field of a :class:`~llm_locust.metrics.records.RequestRecord` that a metric
reads, as the record held it: durations in ms as measured (floats survive JSON exactly: orjson
writes the shortest text that reads back as the same double), instants on the sending process's
``perf_counter`` clock with that process's offset to Unix time. So the records read back from the
lines give bit for bit the histograms and counters the run computed from the records themselves.
Derived values (``tpot_ms``, ``schedule_lag_ms``, ``start_time``) are written for the reader and
ignored when reading back.
"""

from __future__ import annotations

from array import array
from typing import Any

from llm_locust.metrics.records import RequestRecord, ServerTimings

#: the line format's version, in every line as ``"v"``; a reader refuses a version it does not know
VERSION = 1
#: the key of the one line (at the end of a file) that describes the run rather than a request
RUN_KEY = "llm_locust_run"

_SERVER_FIELDS = ("prefill_ms", "decode_ms", "decode_tokens", "prompt_tokens", "total_ms", "load_ms")


class BadLine(ValueError):
    """A line that is not a request line of a known version."""


def to_line(
    rec: RequestRecord, level: str | None, warmup: bool, worker: str, clock_offset_s: float
) -> dict[str, Any]:
    """The JSON object of one finished request. ``worker``: the process that sent it ("local" in a
    single process); ``clock_offset_s``: Unix time minus ``perf_counter`` in that process."""
    server = rec.server
    return {
        "v": VERSION,
        "start_time": rec.sent_at_s + clock_offset_s,
        "request_id": rec.request_id,
        "response_id": rec.response_id,
        "worker": worker,
        "level": level,
        "warmup": warmup,
        "turn": rec.turn,
        "outcome": rec.outcome,
        "detail": rec.detail,
        "ttfb_ms": rec.ttfb_ms,
        "ttft_ms": rec.ttft_ms,
        "ttfvt_ms": rec.ttfvt_ms,
        "e2e_ms": rec.e2e_ms,
        "done_ms": rec.done_ms,
        "tpot_ms": rec.tpot_ms,
        "schedule_lag_ms": rec.schedule_lag_ms,
        "itl_ms": rec.itl_ms.tolist(),
        "text_events": rec.text_events,
        "streamed": rec.streamed,
        "output_tokens": rec.output_tokens,
        "output_tokens_source": rec.output_tokens_source,
        "input_tokens": rec.input_tokens,
        "input_tokens_source": rec.input_tokens_source,
        "tokenizer_output_tokens": rec.tokenizer_output_tokens,
        "cached_input_tokens": rec.cached_input_tokens,
        "expected_input_tokens": rec.expected_input_tokens,
        "requested_output_tokens": rec.requested_output_tokens,
        "finish_reason": rec.finish_reason,
        "server": None if server is None else {k: getattr(server, k) for k in _SERVER_FIELDS},
        "sent_at_s": rec.sent_at_s,
        "ended_at_s": rec.ended_at_s,
        "scheduled_at_s": rec.scheduled_at_s,
        "clock_offset_s": clock_offset_s,
    }


def from_line(obj: Any) -> tuple[RequestRecord, str | None, bool, float]:
    """The record of a request line, its level, whether it was warm-up, and its process's clock
    offset. Raises :class:`BadLine` naming what is wrong."""
    if not isinstance(obj, dict):
        raise BadLine(f"not a JSON object but {type(obj).__name__}")
    if obj.get("v") != VERSION:
        raise BadLine(f"line format version {obj.get('v')!r}; this llm-locust reads version {VERSION}")
    try:
        rec = RequestRecord(
            outcome=_str(obj["outcome"], "outcome"),
            detail=str(obj["detail"]),
            sent_at_s=float(obj["sent_at_s"]),
            ended_at_s=float(obj["ended_at_s"]),
            ttfb_ms=_float(obj["ttfb_ms"]),
            ttft_ms=_float(obj["ttft_ms"]),
            ttfvt_ms=_float(obj["ttfvt_ms"]),
            e2e_ms=_float(obj["e2e_ms"]),
            done_ms=_float(obj["done_ms"]),
            itl_ms=array("d", obj["itl_ms"]),
            text_events=int(obj["text_events"]),
            output_tokens=int(obj["output_tokens"]),
            output_tokens_source=_str(obj["output_tokens_source"], "output_tokens_source"),
            input_tokens=int(obj["input_tokens"]),
            input_tokens_source=_str(obj["input_tokens_source"], "input_tokens_source"),
            tokenizer_output_tokens=_int(obj["tokenizer_output_tokens"]),
            streamed=bool(obj["streamed"]),
            server=_server(obj["server"]),
            turn=int(obj["turn"]),
            finish_reason=obj["finish_reason"],
            cached_input_tokens=_int(obj["cached_input_tokens"]),
            expected_input_tokens=_int(obj["expected_input_tokens"]),
            requested_output_tokens=_int(obj["requested_output_tokens"]),
            scheduled_at_s=_float(obj["scheduled_at_s"]),
            request_id=str(obj["request_id"]),
            response_id=obj["response_id"],
        )
        level = obj["level"]
        return rec, None if level is None else str(level), bool(obj["warmup"]), float(obj["clock_offset_s"])
    except KeyError as exc:
        raise BadLine(f"no {exc.args[0]!r} field") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadLine(str(exc)) from None


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadLine(f"{name!r} is {value!r}, not a string")
    return value


def _server(value: Any) -> ServerTimings | None:
    return None if value is None else ServerTimings(**{k: value.get(k) for k in _SERVER_FIELDS})


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
