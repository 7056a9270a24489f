"""The results' metadata: versions are read without ever failing the run."""

from __future__ import annotations

import locust

from llm_locust.locust.plugin import installed_version


def test_versions_of_installed_and_missing_distributions() -> None:
    assert installed_version("locust") == locust.__version__
    # a source tree on sys.path without an install (how the benches ran on a bare machine): the
    # summary and files are still written, with "unknown", instead of a traceback at quit
    assert installed_version("llm-locust-not-installed-anywhere") == "unknown"
