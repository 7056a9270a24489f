"""The optional compiled hot paths (``llm_locust/_native/_speedups.c``): the stream body reader and HDR
histogram recording. Built by ``pip install`` where a C compiler is present; elsewhere every caller
falls back to the Python code it replaces, which the tests hold it equal to."""

from __future__ import annotations

import functools
import importlib
from typing import Any


@functools.cache
def module() -> Any:
    """:mod:`llm_locust._native._speedups`, or None where it was not built."""
    try:
        speedups: Any = importlib.import_module("llm_locust._native._speedups")
    except ImportError:
        return None
    from geventhttpclient.response import HTTPParseError

    from llm_locust.wire.sse import EventTooLarge

    speedups.set_errors(HTTPParseError, EventTooLarge)
    return speedups
