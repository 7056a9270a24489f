"""The summary says which stream reader read the run, and warns when it was not the compiled one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_locust._native import speedups
from llm_locust.reports.summary import reader_lines
from llm_locust.wire import reactor


@pytest.fixture
def restore_reader() -> Iterator[None]:
    yield
    reactor.choose_reader("auto")


@pytest.mark.usefixtures("restore_reader")
def test_reader_info_records_the_choice_and_why() -> None:
    assert speedups.module() is not None  # the checkout's tests run with the extension built
    assert reactor.choose_reader("auto") == "compiled"
    assert reactor.reader_info() == {"in_use": "compiled", "requested": "auto", "compiled_built": True}
    reactor.choose_reader("reactor")
    assert reactor.reader_info() == {"in_use": "reactor", "requested": "reactor", "compiled_built": True}


def test_compiled_reader_is_named_without_a_warning() -> None:
    info = {"in_use": "compiled", "requested": "auto", "compiled_built": True}
    assert reader_lines(info, 16) == ["Stream reader:  compiled (C, llm_locust._native)"]


def test_a_forced_reader_is_named_with_the_variable_that_forced_it() -> None:
    info = {"in_use": "greenlet", "requested": "greenlet", "compiled_built": True}
    assert reader_lines(info, 16) == [
        "Stream reader:  greenlet (Python, a greenlet per stream)",
        "WARNING: the compiled stream reader was not used (LLM_LOCUST_READER=greenlet): fewer streams per "
        "client core",
    ]


def test_a_missing_compiled_reader_is_a_warning_that_says_how_to_get_it() -> None:
    info = {"in_use": "reactor", "requested": "auto", "compiled_built": False}
    lines = reader_lines(info, 16)
    assert lines[0] == "Stream reader:  reactor (Python)"
    assert lines[1].startswith("WARNING: the compiled stream reader is not built (no C compiler when ")
    assert "reinstall with gcc present" in lines[1]


def test_results_from_before_the_reader_was_recorded_still_summarize() -> None:
    assert reader_lines(None, 16) == []
