"""The end-of-run files: ``--llm-json``, ``--llm-csv``, ``--llm-html``, and ``PREFIX_llm.csv`` beside
the CSV files of Locust's ``--csv PREFIX``.

Their paths take the tags Locust's ``--html`` takes: ``{u}`` (users, ``-u``), ``{r}`` (spawn rate,
``-r``) and ``{t}`` (run time in seconds, ``-t``), e.g. ``--llm-json 'run_{u}u.json'``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from llm_locust.locust.options import RunConfig
from llm_locust.locust.paths import tagged
from llm_locust.reports import summary as report

logger = logging.getLogger("llm_locust")


@dataclass(frozen=True, slots=True)
class ReportFile:
    kind: str  # "json", "csv" or "html"
    path: str

def report_files(config: RunConfig, options: Any) -> list[ReportFile]:
    """The files this run writes at its end."""
    files = [
        ReportFile(kind, path)
        for kind, path in (("json", config.llm_json), ("csv", config.llm_csv), ("html", config.llm_html))
        if path
    ]
    prefix = getattr(options, "csv_prefix", None)
    if prefix:
        files.append(ReportFile("csv", f"{prefix}_llm.csv"))
    return [ReportFile(f.kind, tagged(f.path, options)) for f in files]


def write_reports(results: dict[str, Any], config: RunConfig, options: Any) -> None:
    """Write every report file; one that cannot be written is one error line, the others are
    still written."""
    for f in report_files(config, options):
        try:
            if f.kind == "json":
                report.write_json(f.path, results)
            elif f.kind == "csv":
                report.write_csv(f.path, results)
            else:
                from llm_locust.reports import html as html_report

                html_report.write_html(f.path, results)
        except OSError as exc:
            logger.error("cannot write LLM report %s: %s", f.path, exc.strerror or exc)
