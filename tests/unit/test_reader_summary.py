"""The summary says which stream reader read the run, and warns when it was not the compiled one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_locust._native import speedups
from llm_locust.locust.health import Health
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


@pytest.mark.usefixtures("restore_reader")
def test_a_master_reports_the_workers_readers_and_warns_for_the_one_without_the_compiled() -> None:
    """On a master the workers' choices count (a worker host may lack the compiler), not its own."""
    master = Health()
    reactor.choose_reader("auto")
    master.merge_wire("w1", Health().take_wire())
    master.merge_wire("w2", {**Health().take_wire(), "reader": {"in_use": "reactor", "requested": "auto",
                                                                "compiled_built": False}})  # fmt: skip
    reader = master.reader(local=False)
    assert reader == {
        "in_use": "reactor", "requested": "auto", "compiled_built": False,
        "processes": 2, "without_compiled": 1,
    }  # fmt: skip
    first, warning = reader_lines(reader, 16)
    assert first == "Stream reader:  reactor (Python) in 1 of 2 processes"
    assert warning.startswith("WARNING: the compiled stream reader is not built")
    everywhere = Health()
    everywhere.merge_wire("w1", Health().take_wire())
    everywhere.merge_wire("w2", Health().take_wire())
    assert reader_lines(everywhere.reader(local=False), 16) == [
        "Stream reader:  compiled (C, llm_locust._native)"
    ]


@pytest.mark.usefixtures("restore_reader")
def test_a_local_run_reports_its_own_reader() -> None:
    reactor.choose_reader("reactor")
    assert Health().reader(local=True) == {
        "in_use": "reactor", "requested": "reactor", "compiled_built": True,
        "processes": 1, "without_compiled": 1,
    }  # fmt: skip
