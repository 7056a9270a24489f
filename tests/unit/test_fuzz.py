"""The fast, deterministic slice of the stream readers' fuzzing (issue 11, part 3).

The targets are fuzz/targets.py's (the long coverage-guided run is ``make fuzz``, fuzz/run.py).
Here: every committed corpus input once, hypothesis examples built from stream pieces with a fixed
seed (``derandomize``), a memory bound on an inflation bomb, and one regression test per bug the
fuzzing found. The regression tests of bugs not fixed yet fail until the library is fixed.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import sysconfig
import tracemalloc
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fuzz import plain_flavors as PF  # noqa: E402
from fuzz import targets as T  # noqa: E402
from fuzz.run import C_SOURCES  # noqa: E402
from fuzz.targets import Collect, Reading, compare, run_compiled, run_greenlet, run_reactor  # noqa: E402

CORPUS = ROOT / "fuzz" / "corpus"
HEAD = T._HEADS["chunked"] + b"\r\n"
needs_c = pytest.mark.skipif(T.creader is None, reason="llm_locust._native._speedups is not built")


def corpus_inputs() -> list[tuple[str, Path]]:
    return [(d.name, f) for d in sorted(CORPUS.iterdir()) if d.is_dir() for f in sorted(d.iterdir())]


@pytest.mark.parametrize(("target", "path"), corpus_inputs(), ids=lambda v: getattr(v, "name", v))
def test_corpus_input(target: str, path: Path) -> None:
    T.TARGETS[target](path.read_bytes())


def test_the_corpus_is_small_and_covers_every_target() -> None:
    inputs = corpus_inputs()
    assert {t for t, _ in inputs} == set(T.TARGETS)
    assert sum(p.stat().st_size for _, p in inputs) < 512 * 1024


# Pieces of real streams and of broken ones, which hypothesis strings together after a header.
PIECES = [
    b'data: {"choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\r\n\r\n',
    b'data: {"choices":[{"delta":{"reasoning_content":"hm"}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}],'
    b'"usage":{"completion_tokens":3}}\n\n',
    b"data: [DONE]\n\n",
    b": keep-alive\n\n",
    b"event: error\ndata: {}\n\n",
    b"data: a\rdata: b\r\r",
    b"data:",
    b"\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b"\xff\xc3",
    b"\xe2\x82\xac",
    b"id: 1\nretry: 5\n",
    b"0\r\n\r\n",
    b"5;x\r\n",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
]
payloads = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=12)), max_size=12).map(b"".join)
# the header's bytes 4-7 make a blown-up line near 1 MiB (kinds 12-14) about one example in five
headers = st.binary(min_size=T.HEADER, max_size=T.HEADER)
inputs = st.builds(bytes.__add__, headers, payloads)
SLICE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SLICE
@given(inputs)
def test_sse_decoder(data: bytes) -> None:
    T.sse_target(data)


@needs_c
@SLICE
@given(inputs)
def test_reactor_greenlet_and_compiled_readers(data: bytes) -> None:
    T.reader_target(data)


@needs_c
@SLICE
@given(st.builds(bytes.__add__, headers, st.sampled_from(PIECES).map(lambda p: p[6:]) | payloads))
def test_plain_chunk_scanner(data: bytes) -> None:
    T.plain_target(data)


# every flavor's real text event, and its parts, for the other flavors' scanners
FLAVOR_PIECES = [orjson.dumps(event) for event, _path in PF.REAL.values()] + [
    b'{"done":true}', b'"thinking":"hm"', b'"type":"text_delta"', b'"finish_reason":"length"', b"null",
]  # fmt: skip


@needs_c
@SLICE
@given(st.builds(bytes.__add__, headers, st.lists(st.sampled_from(FLAVOR_PIECES) | st.binary(max_size=8),
                                                  max_size=4).map(b"".join)))  # fmt: skip
def test_plain_event_scanners_of_the_other_flavors(data: bytes) -> None:
    T.plain_flavors_target(data)


@SLICE
@given(inputs)
def test_compressed_bodies(data: bytes) -> None:
    T.content_target(data)


def test_an_inflation_bomb_is_refused_with_bounded_memory() -> None:
    """64 MiB of one byte without a line end, gzip-compressed to 64 KiB: the readers refuse the line
    after 1 MiB and never hold much more than that."""
    packed = gzip.compress(b"a" * (64 << 20), 1)
    head = T._HEADS["chunked"] + b"Content-Encoding: gzip\r\n\r\n"
    raw = b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)
    reads = [raw[i : i + T.READ_BYTES] for i in range(0, len(raw), T.READ_BYTES)]
    tracemalloc.start()
    try:
        py, stamps = run_reactor(head, reads, Collect, "gzip")
        green = run_greenlet(head, reads, stamps, Collect, "gzip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert py is not None and py.kind() == green.kind() == "EventTooLarge"
    assert peak < 16 << 20


# ---- regression tests: one per bug the fuzzing found ------------------------------------------


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def outcomes(raw: bytes, consumer: type[Collect] | type[Reading] = Collect) -> tuple[T.Outcome, ...]:
    """The reactor's, the greenlet reader's and the compiled reader's outcomes on one read."""
    py, stamps = run_reactor(HEAD, [raw], consumer)
    assert py is not None
    return py, run_greenlet(HEAD, [raw], stamps, consumer), run_compiled(HEAD, [raw], stamps, consumer)


def strict_compare(py: T.Outcome, green: T.Outcome, c: T.Outcome) -> None:
    compare("reactor vs greenlet", py, green, exact=True)
    compare("reactor vs compiled", py, c, exact=False)


@needs_c
@pytest.mark.parametrize(
    "raw",
    [
        b"5\ndata:\r\n0\r\n\r\n",  # bare LF after the chunk size
        b"5\r\ndata:\n0\r\n\r\n",  # bare LF after chunk data
        b"5 \r\ndata:\r\n0\r\n\r\n",  # a space after the chunk size
        b"5\t\r\ndata:\r\n0\r\n\r\n",  # a tab after the chunk size
        b"5;\x01\r\ndata:\r\n0\r\n\r\n",  # a control byte in a chunk extension
        b"5\r\ndata:\r\n0\r\nbad trailer\r\n\r\n",  # a trailer line that is no header
        b"5\r\ndata:\r\n0\r\n\n",  # a bare LF ending the body
        b"ffffffffffffffff\r\ndata: [DONE]\n\n",  # a chunk size of 2**64-1 (llhttp takes it)
    ],
)
def test_bug1_the_compiled_reader_accepts_the_chunked_framing_llhttp_refuses(raw: bytes) -> None:
    """Found by the reader target. The Python reactor (llhttp) fails each of these bodies; the
    compiled reader reads them as fine (or, for the size, refuses what llhttp takes)."""
    py, green, c = outcomes(raw)
    strict_compare(py, green, c)


@needs_c
def test_bug1_events_of_the_last_read_before_bytes_after_the_body() -> None:
    """Found by the reader target. Bytes after the end of the body in its last read: llhttp fails
    the read before any of its events is seen; the compiled reader hands its events over first
    (here a bad event), then the response's parser fails: bad_event instead of reset_mid_stream."""
    raw = b"e\r\ndata: {oops}\n\n\r\n0\r\n\r\nGARBAGE"
    py, green, c = outcomes(raw, Reading)
    strict_compare(py, green, c)


@needs_c
def test_bug2_content_that_is_not_a_string() -> None:
    """Found by the reader target with the real consumer. ``delta.content`` (or the reasoning) of
    another JSON type than a string: the Python readers record it as text (``LLMUser`` then fails
    on ``"".join(reading.text)``, outside its error handling), the compiled reader's ``body.text``
    raises TypeError (a bad_event)."""
    py, green, c = outcomes(
        chunked(b'data: {"choices":[{"delta":{"content":5}}]}\n\n', b"data: [DONE]\n\n"), Reading
    )
    strict_compare(py, green, c)
    assert all(type(piece) is str for piece in py.state[1])


def test_bug3_two_gzip_members_in_the_last_read() -> None:
    """Found by the content target. When the last read decodes into more than one piece (two gzip
    members here), the reactor's one-event fast path finishes the stream after the first piece
    because the message is complete: the [DONE] of the second member is never seen."""
    packed = gzip.compress(b"data: a\n\n") + gzip.compress(b"data: [DONE]\n\n")
    head = T._HEADS["chunked"] + b"Content-Encoding: gzip\r\n\r\n"
    raw = b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed)
    py, stamps = run_reactor(head, [raw], Collect, "gzip")
    green = run_greenlet(head, [raw], stamps, Collect, "gzip")
    assert py is not None
    assert [d for _n, d, _at in green.state] == ["a", "[DONE]"]
    compare("reactor vs greenlet", py, green, exact=True)


@needs_c
def test_bug4_a_second_response_after_the_body() -> None:
    """Found by the reader target. A response after the end of the body: the reactor and the
    compiled reader end the stream cleanly; the greenlet reader (TLS) fails with "connection closed
    before the end of the body" (geventhttpclient released the socket when the first message
    completed and the second one made ``message_complete`` false again)."""
    py, green, c = outcomes(b"9\r\ndata: x\n\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
    strict_compare(py, green, c)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc to build the sanitized extension")
def test_bug5_no_undefined_behaviour_on_an_empty_data_value(tmp_path: Path) -> None:
    """Found by ``make fuzz``'s UBSan replay. ``buf_add`` memcpy's 0 bytes to the NULL buffer of an
    event whose first data value is empty (``data:``): undefined behaviour (memcpy's arguments must
    not be NULL even for 0 bytes), reported at _speedups.c's ``buf_add``."""
    include = sysconfig.get_paths()["include"]
    so = tmp_path / ("_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))
    flags = ["-O1", "-fPIC", "-shared", "-fsanitize=undefined", "-fno-sanitize-recover=undefined"]
    sources = [str(ROOT / src) for src in C_SOURCES]
    subprocess.run(["gcc", *flags, f"-I{include}", *sources, "-o", str(so)], check=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from fuzz import targets; "
        "b = targets.creader.Body(-1, True); "
        "assert b.feed(b'6\\r\\ndata:\\n\\r\\n1\\r\\n\\n\\r\\n0\\r\\n\\r\\n', 1.0) == [('message', '', 1.0)]"
    )
    env = {"LLM_LOCUST_FUZZ_SPEEDUPS": str(so), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "runtime error" not in proc.stderr, proc.stderr[-2000:]
