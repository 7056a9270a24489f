"""Locust's web UI as a user sees it: the LLM tab, its CSV, the live charts page; and the same data
on a distributed master (real processes, real browser)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import LOCUSTFILES, free_port, own_master_port

LOCUST_UP_S = 30.0


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()  # type: ignore[no-any-return]


def post(url: str, form: dict[str, str] | None = None) -> bytes:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        return r.read()  # type: ignore[no-any-return]


def poll(what: str, check: Callable[[], Any], timeout_s: float, log: Path | None = None) -> Any:
    """Call ``check`` until it returns something truthy (connection errors count as not yet)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{tail}")


@contextmanager
def locust_web_ui(tmp_path: Path, host: str, *args: str) -> Iterator[tuple[str, Path]]:
    """Locust with its web UI on a free port (base URL, log file); terminated on exit."""
    port = free_port()
    log = tmp_path / "locust.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES / "chat.py"), "--host", host,
             "--web-host", "127.0.0.1", "--web-port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        poll("the web UI", lambda: get(url + "/stats/requests"), LOCUST_UP_S, log)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def llm_rows(stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The LLM tab's rows in a ``/stats/requests`` answer, by metric name."""
    (tab,) = [s for s in stats.get("extended_stats", []) if s["key"] == "llm"]
    return {row["metric"]: row for row in tab["data"]}


# In the page: the cells of the LLM table's row whose first cell is ``name`` (or null).
_ROW_JS = """name => {
  const row = [...document.querySelectorAll("tr")].find(r => r.cells[0]?.textContent === name);
  return row ? [...row.cells].map(c => c.textContent) : null;
}"""


def test_llm_tab_and_live_charts_in_the_browser(tmp_path: Path, mock_engine, page) -> None:
    mock = mock_engine("--engine", "batching", "--ttft-ms", "80", "--itl-ms", "15")
    options = ("--max-tokens", "24", "--api-key", "sk-never-shown-7")
    with locust_web_ui(tmp_path, mock.url, *options) as (url, _log):
        page.goto(url)
        page.get_by_label("Number of users (peak concurrency)").fill("4")
        page.get_by_label("Ramp up (users started/second)").fill("2")
        page.get_by_role("button", name="Start").click()

        page.get_by_role("tab", name="LLM").click()
        headers = page.locator("thead th").all_inner_texts()
        assert headers == ["Metric", "Value", "Count", "Mean", "p50", "p90", "p95", "p99", "Max"]
        # Count, mean, p50 of TTFT: filled in once the first requests finish, then growing.
        page.wait_for_function(f"() => Number(({_ROW_JS})('TTFT (ms)')?.[2]) > 0", timeout=20_000)
        first = page.evaluate(_ROW_JS, "TTFT (ms)")
        metrics = page.locator("tbody tr td:first-child").all_inner_texts()
        assert metrics[:6] == [
            "TTFT (ms)",
            "TPOT (ms)",
            "ITL (ms)",
            "E2E latency (ms)",
            "Per-stream output (tok/s)",
            "Output throughput, all streams, last 10 s (tok/s)",
        ]
        count1, p50 = int(first[2]), float(first[4])
        assert 80 <= p50 < 120, first  # the mock's TTFT is 80 ms
        page.wait_for_function(f"() => Number(({_ROW_JS})('TTFT (ms)')?.[2]) > {count1}", timeout=10_000)
        assert int(page.evaluate(_ROW_JS, "TTFT (ms)")[2]) > count1
        for metric in ("TPOT (ms)", "ITL (ms)", "E2E latency (ms)", "Per-stream output (tok/s)"):
            cells = page.evaluate(_ROW_JS, metric)
            assert int(cells[2]) > 0 and float(cells[4]) > 0, (metric, cells)
        page.wait_for_function(
            f"() => Number(({_ROW_JS})('Output throughput, all streams, last 10 s (tok/s)')?.[1]) > 0",
            timeout=10_000,
        )
        in_flight = int(page.evaluate(_ROW_JS, "Requests in flight")[1])
        assert 0 <= in_flight <= 4
        assert page.evaluate(_ROW_JS, "Failed requests")[1] == "0"
        assert "sk-never-shown-7" not in page.content()
        page.shot("webui-llm-tab")

        page.get_by_role("tab", name="Download Data").click()
        csv_link = page.get_by_role("link", name="Download LLM statistics CSV")
        csv_text = page.request.get(urllib.parse.urljoin(url + "/", csv_link.get_attribute("href"))).text()
        assert csv_text.splitlines()[0] == "metric,unit,value,count,mean,p50,p90,p95,p99,max"
        assert csv_text.splitlines()[1].startswith("TTFT,ms,,")
        assert (
            page.get_by_role("link", name="LLM live charts (a page").get_attribute("href") == "./llm/charts"
        )

        # The floating link on every tab opens the charts page in a new tab.
        with page.context.expect_page() as opened:
            page.locator("#llm-locust-charts-link").click()
        charts_url = opened.value.url
        opened.value.close()
        assert charts_url == url + "/llm/charts"

        page.goto(charts_url)
        page.wait_for_function("() => Number(document.body.dataset.points || 0) >= 2", timeout=15_000)
        n = page.evaluate("() => document.getElementById('chart-ttft').data[0].x.length")
        page.wait_for_function(
            f"() => document.getElementById('chart-ttft').data[0].x.length > {n}", timeout=10_000
        )
        data = page.evaluate(
            """() => Object.fromEntries(["chart-ttft", "chart-tpot", "chart-tokens", "chart-users"].map(
                 id => [id, document.getElementById(id).data.map(t => ({name: t.name, y: t.y}))]))"""
        )
        assert [t["name"] for t in data["chart-ttft"]] == ["p50", "p95"]
        assert [t["name"] for t in data["chart-users"]] == ["in flight", "users"]
        ttft_p50 = [y for y in data["chart-ttft"][0]["y"] if y is not None]
        assert ttft_p50 and all(80 <= y < 120 for y in ttft_p50), ttft_p50
        assert max(data["chart-tokens"][0]["y"]) > 0
        assert max(data["chart-users"][1]["y"]) == 4
        assert page.locator("svg .point").count() > 0  # plotly drew markers
        assert "Cannot reach" not in page.locator("#llm-status").inner_text()
        assert page.locator("#llm-server-charts").is_hidden()  # the mock serves no /metrics here
        page.shot("webui-charts")
        assert "sk-never-shown-7" not in page.content()

        # Locust's Reset starts our numbers over, and the charts start over with them.
        before = page.evaluate("() => document.getElementById('chart-ttft').data[0].x.length")
        assert before >= 3
        assert page.request.post(url + "/stats/reset").ok
        page.wait_for_function(
            "() => { const n = document.getElementById('chart-ttft').data[0].x.length;"
            f" return n >= 1 && n < {before}; }}",
            timeout=10_000,
        )


def test_live_charts_show_the_server_s_own_metrics(tmp_path: Path, mock_engine, page) -> None:
    """--server-metrics auto against the mock's vLLM-named /metrics: the charts page shows the
    server's running/waiting requests and KV-cache use from its first point that carries them."""
    mock = mock_engine("--engine", "batching", "--max-seqs", "2", "--ttft-ms", "50", "--itl-ms", "15",
                       "--metrics", "vllm")  # fmt: skip
    options = ("--max-tokens", "24", "--autostart", "-u", "4", "-r", "4")
    with locust_web_ui(tmp_path, mock.url, *options) as (url, _log):
        page.goto(url + "/llm/charts")
        page.wait_for_function("() => Number(document.body.dataset.points || 0) >= 2", timeout=15_000)
        assert page.locator("#llm-server-charts").is_visible()
        data = page.evaluate(
            """() => Object.fromEntries(["chart-server-requests", "chart-server-kv"].map(
                 id => [id, document.getElementById(id).data.map(t => ({name: t.name, y: t.y}))]))"""
        )
        assert [t["name"] for t in data["chart-server-requests"]] == ["running", "waiting"]
        running = data["chart-server-requests"][0]["y"]
        assert max(running) > 0 and all(0 <= r <= 2 for r in running), running  # --max-seqs 2
        assert all(0 <= u <= 1 for u in data["chart-server-kv"][0]["y"])
        page.shot("webui-server-charts")


def test_master_web_ui_shows_the_workers_requests(tmp_path: Path, mock_engine) -> None:
    """--processes 2: the master's LLM tab data, CSV and /llm/timeseries count what the workers sent."""
    mock = mock_engine("--engine", "fixed", "--ttft-ms", "20", "--itl-ms", "4", "--output-tokens", "8")
    distributed = ("--processes", "2", *own_master_port())
    with locust_web_ui(tmp_path, mock.url, *distributed, "--model", "mock") as (url, log):
        poll("2 workers", lambda: json.loads(get(url + "/stats/requests"))["worker_count"] == 2, 30, log)
        assert json.loads(post(url + "/swarm", {"user_count": "4", "spawn_rate": "4", "host": mock.url}))[
            "success"
        ]

        def running_rows() -> dict[str, dict[str, Any]] | None:
            rows = llm_rows(json.loads(get(url + "/stats/requests")))
            return rows if rows["Requests in flight"]["value"] >= 1 and rows["TTFT (ms)"]["count"] else None

        rows = poll("worker data on the master", running_rows, 20, log)
        assert 20 <= rows["TTFT (ms)"]["p50"] < 40
        assert rows["Requests in flight"]["value"] <= 4
        points = poll("points", lambda: json.loads(get(url + "/llm/timeseries?since=0"))["points"], 10, log)
        assert max(p["users"] for p in points) <= 4

        post(url + "/stop")
        poll("the stop", lambda: json.loads(get(url + "/stats/requests"))["state"] == "stopped", 30, log)
        served = mock.stats()
        rows = llm_rows(json.loads(get(url + "/stats/requests")))
        completed = rows["Completed requests"]["value"]
        assert completed == rows["TTFT (ms)"]["count"] > 0
        assert rows["Failed requests"]["value"] == 0
        # a stop without --stop-timeout cuts the streams in flight: they are 'cancelled', and a stream
        # the mock finished sending may still have been cut before the client read its end
        cancelled = rows.get("Cancelled (cut by a stop)", {"value": 0})["value"]
        assert completed + cancelled == served["requests"]
        assert completed <= served["ok"]
        series = json.loads(get(url + "/llm/timeseries?since=0"))
        assert series["points"][-1]["completed"] == completed  # the last point includes the final reports
        later = json.loads(get(url + f"/llm/timeseries?since={series['points'][-2]['time_s']}"))
        assert later["points"] == series["points"][-1:]
        assert later["first_time_s"] == series["points"][0]["time_s"]
        csv_lines = get(url + "/llm/stats/csv").decode().splitlines()
        assert f"Completed requests,,{completed},,,,,,," in csv_lines
