"""--llm-requests: the line of one request, the records read back from lines, the results rebuilt
from them, and the writer that buffers lines off the request path."""

from __future__ import annotations

import random
from array import array
from pathlib import Path
from typing import Any

import gevent
import orjson
import pytest

from llm_locust import cli
from llm_locust.locust.requestlog import BATCH, RequestLog
from llm_locust.metrics.aggregate import Aggregate, clock_offset_s, foreign_clock
from llm_locust.metrics.lines import RUN_KEY, BadLine, from_line, to_line
from llm_locust.metrics.records import RequestRecord, ServerTimings
from llm_locust.reports.rebuild import RequestsFileError, rebuild
from llm_locust.reports.summary import results


def _record(rng: random.Random, outcome: str = "ok", open_loop: bool = False) -> RequestRecord:
    """A record with the awkward floats a real clock gives (no value is a round number)."""
    sent = 1000.0 + rng.random() * 100
    ttft = 20 + rng.random() * 200
    gaps = array("d", (rng.expovariate(1 / 15) for _ in range(rng.randint(0, 40))))
    e2e = ttft + sum(gaps)
    ok = outcome == "ok"
    return RequestRecord(
        outcome=outcome,
        detail="" if ok else "HTTP 500: boom",
        sent_at_s=sent,
        ended_at_s=sent + e2e / 1000 + rng.random() / 1000,
        ttfb_ms=rng.random() * 5,
        ttft_ms=ttft if ok else None,
        ttfvt_ms=ttft + rng.random() if ok else None,
        e2e_ms=e2e if ok else None,
        done_ms=e2e + 0.3 if ok else None,
        itl_ms=gaps if ok else array("d"),
        text_events=len(gaps) + 1,
        output_tokens=len(gaps) + 1 + rng.randint(0, 3),
        output_tokens_source=rng.choice(("usage", "tokenizer", "events")),
        input_tokens=rng.randint(5, 500),
        input_tokens_source=rng.choice(("usage", "tokenizer")),
        tokenizer_output_tokens=rng.choice((None, len(gaps) + 2)),
        streamed=rng.random() < 0.9,
        server=rng.choice(
            (None, ServerTimings(prefill_ms=rng.random() * 9, decode_ms=55.5, decode_tokens=7))
        ),
        turn=rng.randint(1, 3),
        finish_reason=rng.choice((None, "stop", "length")),
        cached_input_tokens=rng.choice((None, 16)),
        expected_input_tokens=rng.choice((None, 100)),
        requested_output_tokens=rng.choice((None, 30)),
        scheduled_at_s=sent - rng.random() / 100 if open_loop else None,
        request_id=f"ab12-{rng.randint(1, 10**6)}",
        response_id=rng.choice((None, "chatcmpl-xyz")),
    )


def _through_json(line: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(line))


def test_a_line_reads_back_as_the_same_record() -> None:
    rng = random.Random(1)
    for _ in range(200):
        rec = _record(rng, rng.choice(("ok", "http_5xx", "cancelled")), open_loop=rng.random() < 0.5)
        back, level, warmup, offset = from_line(_through_json(to_line(rec, "8", True, "w1", 1.7e9 + 0.123)))
        assert back == rec  # every field, every float bit for bit (server_timings aside: not kept)
        assert (level, warmup, offset) == ("8", True, 1.7e9 + 0.123)


def test_a_line_names_its_fields_for_the_reader() -> None:
    rec = _record(random.Random(2), open_loop=True)
    line = _through_json(to_line(rec, None, False, "local", 1.7e9))
    assert line["start_time"] == rec.sent_at_s + 1.7e9  # Unix seconds of the send
    assert line["tpot_ms"] == rec.tpot_ms and line["schedule_lag_ms"] == rec.schedule_lag_ms
    assert line["itl_ms"] == list(rec.itl_ms)
    assert (line["request_id"], line["response_id"], line["worker"]) == (
        rec.request_id,
        rec.response_id,
        "local",
    )


def test_results_rebuilt_from_lines_equal_the_runs(tmp_path: Path) -> None:
    """Two processes with their own clocks, warm-up and failures: the rebuilt results are the run's,
    exactly (histograms, counters, duration, levels, turns)."""
    rng = random.Random(3)
    run = Aggregate()
    run.goodput_bounds = {"ttft_ms": 120.0}
    lines = []
    for worker, offset in (("w1", clock_offset_s()), ("w2", clock_offset_s() + 3600.25)):
        process = Aggregate()  # a worker's aggregate, its instants on its own clock
        process.goodput_bounds = run.goodput_bounds
        for i in range(150):
            rec = _record(rng, "ok" if i % 7 else "http_5xx", open_loop=True)
            level, warmup = rng.choice(("1 req/s", "4 req/s")), i < 5
            lines.append(to_line(rec, level, warmup, worker, offset))
            if warmup:
                process.counts["warmup_excluded"] += 1
            else:
                with foreign_clock() as use:  # as the worker converts its instants, with its offset
                    use(offset)
                    process.record(rec, level)
        run.merge_wire(process.take_delta())
    rng.shuffle(lines)  # the master writes the workers' batches as they come
    path = tmp_path / "requests.jsonl"
    meta = {"host": "http://x", "model": "m", "options": {"goodput_ms": {"ttft_ms": 120.0}}}
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in [*lines, {RUN_KEY: meta}]))

    rebuilt = rebuild(str(path))
    expected = results(run, meta)
    for key in expected:
        if key != "metadata":
            assert rebuilt[key] == expected[key], key
    assert rebuilt["completed"] > 200 and rebuilt["warmup_excluded"] == 10 and rebuilt["good_requests"]
    assert rebuilt["metadata"]["model"] == "m"


def test_a_malformed_line_is_named_by_its_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = orjson.dumps(to_line(_record(random.Random(4)), None, False, "local", 0.0))
    path = tmp_path / "r.jsonl"
    path.write_bytes(good + b"\n" + good + b"\n" + b'{"v": 1, "outcome": "ok"}\n')
    with pytest.raises(RequestsFileError, match=r"r.jsonl line 3: no 'detail' field"):
        rebuild(str(path))
    path.write_bytes(good + b"\n" + good[:40] + b"\n")
    assert cli.main(["report", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llm-locust report: error: ") and "r.jsonl line 2: not JSON" in err
    assert len(err.splitlines()) == 1
    with pytest.raises(BadLine, match="version 9"):
        from_line({"v": 9})


def test_report_writes_json_and_csv_from_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(5)
    path = tmp_path / "r.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps(to_line(_record(rng), None, False, "local", 0.0)) + b"\n" for _ in range(9))
    )
    assert (
        cli.main(["report", str(path), "--json", str(tmp_path / "o.json"), "--csv", str(tmp_path / "o.csv")])
        == 0
    )
    out = capsys.readouterr().out
    assert "Successful requests:" in out
    assert "rebuilt from the 9 request lines of r.jsonl" in out and "no run line" in out  # a cut-off run
    assert orjson.loads((tmp_path / "o.json").read_bytes())["completed"] == 9
    assert (tmp_path / "o.csv").read_text().startswith("metric,unit,count")
    # a results file, indented (as --llm-json writes it) or on one line, is read as results
    compact = tmp_path / "compact.json"
    compact.write_bytes(orjson.dumps(orjson.loads((tmp_path / "o.json").read_bytes())))
    for results_file in (tmp_path / "o.json", compact):
        assert cli.main(["report", str(results_file)]) == 0
        assert "Successful requests:" in capsys.readouterr().out


# -- the writer ----------------------------------------------------------------------------------
def test_the_writer_writes_every_line_once_in_order_then_the_run_line(tmp_path: Path) -> None:
    rng = random.Random(6)
    path = tmp_path / "r.jsonl"
    recs = [_record(rng) for _ in range(BATCH * 2 + 17)]
    with open(path, "wb") as file:
        log = RequestLog("local", file, None)
        for i, rec in enumerate(recs):
            log.add(rec, None, False)
            if i % 100 == 0:
                gevent.sleep(0)  # the flusher runs between requests, as it would in a run
        log.close({"model": "m"})
        assert file.closed
    lines = path.read_bytes().splitlines()
    assert [from_line(orjson.loads(x))[0].request_id for x in lines[:-1]] == [r.request_id for r in recs]
    assert orjson.loads(lines[-1]) == {RUN_KEY: {"model": "m"}}


def test_a_workers_flush_sends_what_the_flusher_had_taken_too() -> None:
    """A worker's flush at the test's stop waits for the batch the flusher is encoding, so the
    lines all go before its final report, each once."""
    sent: list[bytes] = []
    log = RequestLog("w1", None, sent.append)
    rng = random.Random(7)
    recs = [_record(rng) for _ in range(BATCH + 100)]
    for rec in recs:
        log.add(rec, "2", False)  # BATCH reached: the flusher is woken
    while len(log._pending) == len(recs):  # until the flusher has taken a batch: it encodes it, yielding
        gevent.sleep(0)
    assert not sent  # mid-batch
    log.flush()
    ids = [orjson.loads(x)["request_id"] for data in sent for x in data.splitlines()]
    assert ids == [r.request_id for r in recs]
    assert log.lines == len(recs)
    assert max(len(data.splitlines()) for data in sent) <= BATCH  # a bounded message
    log.close(None)
    assert len(ids) == len(recs)
