"""``--llm-html``: one self-contained page with the run's numbers and charts, no secrets, no network."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import LOCUSTFILES, LocustRun, run_locust
from fakes import make_record

from llm_locust.cli import start_mock_process
from llm_locust.metrics.aggregate import Aggregate
from llm_locust.metrics.records import RequestTimer
from llm_locust.metrics.timeseries import TimeSeries
from llm_locust.reports import html as html_report
from llm_locust.reports import summary as report

SECRET = "sk-secret-xyz"


class _Tables(HTMLParser):
    """Every table of a page as rows of cell texts (header row first); script text is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.outside_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        if not self._in_script:
            self.outside_scripts.append(" ".join(f"{k}={v}" for k, v in attrs))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> _Tables:
    parser = _Tables()
    parser.feed(page)
    return parser


def table_with(page: str, first_heading: str) -> list[list[str]]:
    found = [t for t in parse(page).tables if t and t[0] and t[0][0] == first_heading]
    assert len(found) == 1, [t[0] for t in parse(page).tables]
    return found[0]


def assert_offline(page: str) -> None:
    """No src/href outside the inlined scripts points off the page."""
    attrs = " ".join(parse(page).outside_scripts)
    assert not re.search(r"(src|href)=\s*(https?:)?//", attrs), attrs
    assert "<script src=" not in page


# -- headless runs (each run once per module: 2 shared cores) -----------------------------------
@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    # 10 % HTTP 500s (seeded), so the failure table and chart are exercised too
    proc, url = start_mock_process(
        "--engine", "fixed", "--ttft-ms", "40", "--itl-ms", "10", "--fault", "http_500:0.1", "--seed", "7"
    )
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory, mock_url: str) -> tuple[LocustRun, Path]:
    tmp = tmp_path_factory.mktemp("plain")
    out = tmp / "reports" / "run.html"
    args = (
        "-u",
        "4",
        "-r",
        "4",
        "-t",
        "4s",
        "--max-tokens",
        "16",
        "--api-key",
        SECRET,
        "--llm-html",
        str(out),
    )
    (tmp / "reports").mkdir()
    return run_locust(tmp, mock_url, *args), out


@pytest.fixture(scope="module")
def ladder_run(tmp_path_factory: pytest.TempPathFactory, mock_url: str) -> tuple[LocustRun, Path]:
    tmp = tmp_path_factory.mktemp("ladder")
    out = tmp / "ladder.html"
    run = run_locust(
        tmp,
        mock_url,
        "--levels",
        "1,4",
        "--level-duration",
        "3",
        "--max-tokens",
        "16",
        locustfile=LOCUSTFILES / "seed_benchmark.py",
        env={"LOCUST_LLM_HTML": str(out)},  # the option's env var
    )
    return run, out


def test_report_holds_the_runs_numbers_without_secrets(plain_run: tuple[LocustRun, Path]) -> None:
    run, path = plain_run
    assert run.results is not None, run.output
    res = run.results
    assert path.exists(), run.output
    page = path.read_text(encoding="utf-8")
    assert_offline(page)
    assert SECRET not in page and SECRET not in run.output
    assert res["completed"] > 0 and res["failed"] > 0, run.output

    cards = re.findall(r'<div class="v[^"]*">([^<]*)</div><div class="l">([^<]*)</div>', page)
    values = {label: value for value, label in cards}
    assert values["Requests OK"] == f"{res['completed']:,}"
    assert values["Failed"] == f"{res['failed']:,}"

    summary = {row[0]: row for row in table_with(page, "Metric")[1:]}
    assert summary["TTFT"][2] == f"{res['count_ttft']:,}"
    assert summary["TTFT"][4] == f"{res['median_ttft_ms']:,.2f}"  # 40 ms mock: two decimals
    assert summary["ITL"][2] == f"{res['count_itl']:,}"

    failures = {row[0]: row[1] for row in table_with(page, "Category")[1:]}
    assert failures["http_5xx"] == str(res["failures"]["http_5xx"])
    options = {row[0]: row[1] for row in table_with(page, "Option")[1:]}
    assert options["api_key_set"] == "yes"
    assert options["max_tokens"] == "16"
    assert 'id="levels"' not in page  # no ladder, no per-level section


def test_ladder_report_has_the_per_level_table(ladder_run: tuple[LocustRun, Path]) -> None:
    run, path = ladder_run
    assert run.results is not None and path.exists(), run.output
    page = path.read_text(encoding="utf-8")
    assert_offline(page)
    rows = table_with(page, "Users")
    assert rows[0][:3] == ["Users", "Per-stream tok/s min / median / max", "OK"]
    assert [r[0] for r in rows[1:]] == ["1", "4"]
    for row, level in zip(rows[1:], run.results["levels"], strict=True):
        assert row[2] == str(level["completed"])
        assert row[-1] == f"{level['output_throughput']:,.1f}"
    assert "4 users" in page  # the level change is marked on the over-time charts


def chart_report(page: Any) -> list[dict[str, Any]]:
    """Each chart div: its id, whether plotly drew an SVG, and the points per trace."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.chart')].every(d => d.querySelector('.main-svg'))",
        timeout=15_000,
    )
    return page.evaluate(  # type: ignore[no-any-return]
        """() => [...document.querySelectorAll('.chart')].map(d => ({
            id: d.id,
            svg: !!d.querySelector('.main-svg'),
            points: (d.data || []).map(t => (t.y || []).filter(v => v !== null).length),
        }))"""
    )


@pytest.mark.parametrize(
    ("run_name", "shot"), [("plain_run", "html-report"), ("ladder_run", "html-report-ladder")]
)
def test_every_chart_renders_from_disk(
    request: pytest.FixtureRequest, page: Any, run_name: str, shot: str
) -> None:
    _run, path = request.getfixturevalue(run_name)
    urls: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.resolve().as_uri())
    drawn = chart_report(page)
    ids = {c["id"] for c in drawn}
    assert {"ts-ttft", "ts-tpot", "ts-tokens", "ts-users", "hist-ttft", "hist-tpot", "hist-e2el"} <= ids
    assert "failures-chart" in ids  # the mock fails 10 % of requests
    assert ({"levels-stream", "levels-aggregate"} <= ids) == (run_name == "ladder_run")
    for chart in drawn:
        assert chart["svg"] and chart["points"] and max(chart["points"]) > 0, chart
    assert not errors
    assert all(u.startswith(("file:", "data:")) for u in urls), urls
    page.shot(shot)


# -- render() on results made by report.results ------------------------------------------------
def _meta(**kw: Any) -> dict[str, Any]:
    options = {"host": "http://127.0.0.1:1", "model": "m", "max_tokens": 8, "api_key_set": True}
    base = {"host": "http://127.0.0.1:1", "model": "m", "users": 2, "workers": None, "mode": "local"}
    return {**base, "options": options, "start_time": None, "end_time": None, **kw}


def test_render_with_failures_and_no_timeseries() -> None:
    agg = Aggregate()
    for ttft in (100.0, 120.0, 140.0):
        agg.record(make_record(ttft_ms=ttft))
    for outcome in ("http_5xx", "http_5xx", "timeout"):
        agg.record(RequestTimer(lambda: 100.0).finish(outcome, "boom"))
    page = html_report.render(report.results(agg, _meta(), []))
    assert "No over-time data" in page
    assert 'id="ts-ttft"' not in page
    assert {row[0]: row[1] for row in table_with(page, "Category")[1:]} == {
        "http_5xx": "2",
        "timeout": "1",
        "total": "3",
    }
    assert 'id="failures-chart"' in page and 'id="hist-ttft"' in page
    assert {row[0] for row in table_with(page, "Metric")[1:]} >= {"TTFT", "TPOT", "ITL", "E2E latency"}


def test_render_a_run_where_nothing_completed() -> None:
    ts = TimeSeries()
    for k in range(1, 4):
        ts.sample(1_000_000.0 + 2 * k, users=2, in_flight=2)
    res = report.results(Aggregate(), _meta(start_time="2026-01-01T00:00:00+00:00"), ts.to_json())
    page = html_report.render(res)
    assert "No request completed" in page
    assert "TTFT: no request finished." in page and 'id="ts-ttft"' not in page
    assert 'id="ts-users"' in page  # users and in-flight are known even with no completions
    assert "TTFT: no samples." in page and 'id="hist-ttft"' not in page
    assert "No failures" in page


def test_render_escapes_text_and_hides_secret_options() -> None:
    evil = "</script><script>alert(1)</script>"
    meta = _meta(model=evil, host="http://x/<b>")
    meta["options"] = {**meta["options"], "model": evil, "api_key": "sk-leak-123", "extra_body": {"x": evil}}
    page = html_report.render(report.results(Aggregate(), meta, []))
    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in page
    assert "sk-leak-123" not in page
    assert {row[0]: row[1] for row in table_with(page, "Option")[1:]}["api_key"] == "(hidden)"


def test_write_html_creates_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "report.html"
    html_report.write_html(str(path), report.results(Aggregate(), _meta(), []))
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_llm_locust_report_renders_a_saved_results_file(tmp_path: Path, capsys: Any) -> None:
    """`llm-locust report results.json --html out.html`: the summary again and the same page."""
    import orjson

    from llm_locust.cli import main

    agg = Aggregate()
    for ttft in (100.0, 120.0):
        agg.record(make_record(ttft_ms=ttft))
    res = report.results(agg, _meta(), [])
    saved = tmp_path / "results.json"
    saved.write_bytes(orjson.dumps(res))
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(saved), "--html", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "llm-locust results" in printed and "Successful requests:                        2" in printed
    assert out.read_text(encoding="utf-8") == html_report.render(orjson.loads(saved.read_bytes()))
    (tmp_path / "bad.json").write_text('{"completed": 1}')
    assert main(["report", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an llm-locust results file" in err
