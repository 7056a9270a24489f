"""``--server-metrics auto|URL|off``: the server's own Prometheus metrics, polled beside our numbers.

The owner of a test (a single process, or the master; never a worker) starts one :class:`Poller`
greenlet at test start and stops it at test stop, polling once more then. It never runs on a user's
request path: its GET has a short timeout, and the text (a vLLM page is thousands of lines) is parsed
a few dozen lines at a time with a turn of the event loop between, so the users' streams keep being
read. ``auto`` probes the host's ``/metrics``
once and turns itself off with one info line when that is not Prometheus text; a URL that fails gets
one warning line. Later failed polls are counted, not logged. The API key goes with the GET only when
the metrics URL has the test host's origin (scheme, host, port).

The measured window starts with the first poll after the warm-up (``--warmup``) and ends with the
poll at test stop; a stats reset starts it over. See :mod:`llm_locust.metrics.server` for what is
computed from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gevent
from geventhttpclient import URL, HTTPClient

from llm_locust.errors import ConfigError
from llm_locust.locust.keys import origin
from llm_locust.metrics.server import (
    Engine,
    Parser,
    Scrape,
    ServerMetricsError,
    Window,
    gauge_now,
    pieces,
    recognise,
)
from llm_locust.wire.urls import public_url

logger = logging.getLogger("llm_locust")

INTERVAL_S = 1.0
TIMEOUT_S = 2.0
_MAX_BYTES = 32 << 20


def check_option(value: str | None) -> str:
    """``--server-metrics``'s value: ``auto``, ``off`` or an http(s) URL; ConfigError otherwise."""
    value = (value or "auto").strip()
    if value in ("auto", "off"):
        return value
    if origin(value) is None or not value.lower().startswith(("http://", "https://")):
        raise ConfigError(f"--server-metrics {public_url(value)!r} must be auto, off or an http(s):// URL")
    return value


def metrics_url(option: str, host: str) -> str | None:
    """The URL to poll: the host's origin + ``/metrics`` for ``auto``; None for ``off``."""
    if option == "off":
        return None
    if option != "auto":
        return option
    parts = urlsplit(host)
    return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))


class Poller:
    """Polls one metrics URL every :data:`INTERVAL_S` for one test; folds the measured window.
    ``option``: auto, off or a URL; ``host``: the test's host and ``api_key`` its key (sent only to
    that host's origin); ``warmup_now``: whether the test is within --warmup now."""

    def __init__(
        self,
        option: str,
        host: str,
        api_key: str = "",
        insecure: bool = False,
        warmup_now: Callable[[], bool] = lambda: False,
    ) -> None:
        self.option = option
        self._warmup_now = warmup_now
        self.url = metrics_url(option, host)
        self.engine: Engine | None = None
        self.window = Window()
        self.latest: Scrape | None = None
        self.polls = 0
        self.failures = 0
        self.active = False  # the probe answered in Prometheus text
        self._greenlet: gevent.Greenlet | None = None
        self._headers = {"Accept": "text/plain"}
        same_origin = self.url is not None and origin(self.url) == origin(host)
        if api_key and same_origin:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._insecure = insecure

    # -- lifecycle (the test's owner) -----------------------------------------------------------
    def start(self) -> None:
        if self.url is not None and self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """At test stop: end the loop, then poll once more (the window's end); once."""
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is None:
            return
        greenlet.kill(block=True)
        if self.active:
            self.poll()

    def reset(self) -> None:
        """Locust's stats reset: the window starts over at the next poll."""
        self.window = Window()

    def _run(self) -> None:
        try:
            self.poll(probe=True)
        except ServerMetricsError as exc:
            self._off(str(exc))
            return
        self.active = True
        logger.info(
            "--server-metrics: polling %s every %gs (%s)",
            public_url(self.url or ""),
            INTERVAL_S,
            self.engine.name if self.engine is not None else "no known engine's names",
        )
        while True:
            gevent.sleep(INTERVAL_S)
            self.poll()

    def _off(self, why: str) -> None:
        where = public_url(self.url or "")
        if self.option == "auto":
            logger.info("--server-metrics auto: %s is not Prometheus metrics (%s); not polled", where, why)
        else:
            logger.warning("--server-metrics %s: %s; the server's metrics are left out", where, why)

    # -- one poll ------------------------------------------------------------------------------
    def poll(self, probe: bool = False) -> None:
        """Fetch and parse once; fold it into the window (after the warm-up). The probe raises
        ServerMetricsError; later polls count failures."""
        try:
            now = time.time()
            scrape = self._parse(self._fetch(), now)
        except ServerMetricsError:
            if probe:
                raise
            self.failures += 1
            return
        self.polls += 1
        self.latest = scrape
        if self.engine is None:
            self.engine = recognise(scrape)
        if self._warmup_now():
            self.window = Window()  # the window starts at the first poll after the warm-up
            return
        self.window.add(scrape)

    @staticmethod
    def _parse(text: str, now: float) -> Scrape:
        """A piece at a time, one turn of the event loop between pieces: a stream's reads wait for
        one piece at most. (Whole in gevent's thread pool, the parse holds the GIL in 5 ms slices
        against the loop, and held it longer: bench/server_metrics.py compares.)"""
        parser = Parser()
        for piece in pieces(text):
            parser.feed(piece)
            gevent.idle()
        return parser.finish(now)

    def _fetch(self) -> str:
        assert self.url is not None
        url = URL(self.url)
        client = HTTPClient.from_url(
            url, connection_timeout=TIMEOUT_S, network_timeout=TIMEOUT_S, insecure=self._insecure
        )
        try:
            with gevent.Timeout(TIMEOUT_S * 2, ServerMetricsError(f"no answer within {TIMEOUT_S * 2:g} s")):
                resp = client.get(url.request_uri, headers=self._headers)
                if resp.status_code != 200:
                    raise ServerMetricsError(f"HTTP {resp.status_code}")
                body = resp.read(_MAX_BYTES)
        except ServerMetricsError:
            raise
        except Exception as exc:  # refused, reset, TLS, an unparsable answer: one category, counted
            raise ServerMetricsError(
                str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            ) from None
        finally:
            client.close()
        return bytes(body).decode("utf-8", "replace")

    # -- what it saw ---------------------------------------------------------------------------
    def now(self) -> tuple[float | None, float | None, float | None]:
        """The latest poll's running, waiting and KV-cache use (None where the engine has none)."""
        engine, latest = self.engine, self.latest
        if engine is None or latest is None:
            return None, None, None
        return (
            gauge_now(latest, engine.running),
            gauge_now(latest, engine.waiting),
            gauge_now(latest, engine.kv_cache_usage, combine="max"),
        )

    def results(self, ours: dict[str, Any]) -> dict[str, Any] | None:
        """``server_metrics`` of the results (None when not polled); ``ours``: the results so far,
        for the tokens check and our TTFT/TPOT beside the server's times."""
        if not self.active or self.url is None:
            return None
        w = self.window
        canonical = w.canonical(self.engine)
        server_tokens = canonical.get("generation_tokens")
        our_tokens = ours.get("total_output_tokens")
        first, last = w.first, w.last
        return {
            "url": public_url(self.url),
            "engine": self.engine.name if self.engine is not None else None,
            "interval_s": INTERVAL_S,
            "polls": self.polls,
            "failures": self.failures,
            "window": {
                "start_unix_s": first.time_s if first is not None else None,
                "end_unix_s": last.time_s if last is not None else None,
                "duration_s": w.duration_s,
                "polls": w.polls,
            },
            **canonical,
            "tokens_check": {
                "server_generation_tokens": server_tokens,
                "our_output_tokens": our_tokens,
                "difference": server_tokens - our_tokens
                if server_tokens is not None and our_tokens is not None
                else None,
            },
            "ours": {k: ours.get(k) for k in _OURS},
            "series": w.series(),
        }


#: our numbers shown beside the server's latencies
_OURS = ("mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms")
