"""Prometheus scrapes of the merged metrics: ``<base>/llm/metrics`` on Locust's web UI and, with
``--llm-prometheus-port PORT``, the same text on a port of its own (headless runs too).

Both are served only where the merged numbers live: a single process or the master, never a worker.
The families are :mod:`llm_locust.reports.prometheus`'s, built at each scrape from ``state.aggregate``.

Counters stay monotonic for the life of the process: a stats reset (the web UI's button, Locust's
``--reset-stats``) first adds what it clears to :attr:`Exporter.carried`, which every later scrape
adds back, so ``rate()`` and ``increase()`` never see a drop. A new test from the web UI does not
reset our aggregate (Locust's reset_stats does): its requests simply add on. Gauges (users, in
flight, the open loop's target rate) are what holds at the scrape. The bind address of the port is
Locust's ``--web-host`` (default every interface, as the web UI): the exposition carries numbers, the
model's name and the API flavor only, never a key, a host or a prompt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from llm_locust.locust.startup import exit_at_start
from llm_locust.reports import prometheus

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from prometheus_client.registry import CollectorRegistry

    from llm_locust.locust.state import LLMState

logger = logging.getLogger("llm_locust")


class Exporter:
    """What one process exports: the aggregate now plus what resets cleared before."""

    def __init__(self, state: LLMState) -> None:
        self.state = state
        self.carried = prometheus.ZERO
        self.server: Any = None  # gevent.pywsgi.WSGIServer of --llm-prometheus-port
        self._registry: CollectorRegistry | None = None

    def carry(self) -> None:
        """Before the aggregate is cleared: keep its totals, so the counters do not drop."""
        self.carried = self.carried.plus(prometheus.totals(self.state.aggregate))

    def live(self) -> prometheus.Live:
        state = self.state
        runner: Any = state.environment.runner
        control = state.rate_control
        config = state.config
        return prometheus.Live(
            users=runner.user_count if runner is not None else 0,
            in_flight=state.in_flight_total(),
            target_requests_per_s=control.rate_now() if control is not None else None,
            model=config.model if config is not None else "",
            api=config.api if config is not None else "",
        )

    def families(self) -> list[Metric]:
        total = self.carried.plus(prometheus.totals(self.state.aggregate))
        return prometheus.families(total, self.live())

    @property
    def registry(self) -> CollectorRegistry:
        if self._registry is None:
            from prometheus_client.registry import Collector

            exporter = self

            class _Scrape(Collector):
                def collect(self) -> Iterable[Metric]:
                    return exporter.families()

            self._registry = prometheus.registry_of(_Scrape())
        return self._registry

    def scrape(self) -> bytes:
        """The exposition, always in the text format 0.0.4 (:data:`CONTENT_TYPE`). Not OpenMetrics,
        even when a scraper prefers it: prometheus_client 0.26 writes OpenMetrics sample names with
        their colons turned into underscores (``llm_locust_users``) under ``# TYPE llm_locust:users``,
        and Prometheus 2.x asks for OpenMetrics by default."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def wsgi_app(exporter: Exporter) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
    """The exposition at every path (``/metrics`` as Prometheus asks for it) of the port's server."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = exporter.scrape()
        start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    return app


def exporter_of(state: LLMState) -> Exporter:
    exporter: Exporter | None = state.exporter
    if exporter is None:
        exporter = state.exporter = Exporter(state)
        state.before_reset.append(exporter.carry)
    return exporter


def install_route(environment: Any, state: LLMState) -> None:
    """``<base>/llm/metrics`` on the web UI, behind its login where it has one (as every /llm/ route)."""
    web_ui = environment.web_ui
    if web_ui is None or getattr(web_ui, "llm_locust_metrics_installed", False):
        return
    web_ui.llm_locust_metrics_installed = True
    from flask import Response

    exporter = exporter_of(state)
    options = environment.parsed_options
    base = (getattr(options, "web_base_path", None) or "").rstrip("/")

    def metrics() -> Response:
        return Response(exporter.scrape(), content_type=CONTENT_TYPE)

    view = web_ui.auth_required_if_enabled(metrics)
    web_ui.app.add_url_rule(f"{base}/llm/metrics", "llm_locust_metrics", view)


def serve_port(environment: Any, state: LLMState, port: int) -> None:
    """``--llm-prometheus-port``: serve the exposition on ``port`` (a single process or the master).
    A port that cannot be bound ends the process with a one-line error, before any test starts."""
    import gevent.pywsgi

    if not 0 < port < 65536:
        exit_at_start(f"--llm-prometheus-port {port} is not a TCP port (1-65535)", environment.parsed_options)
    exporter = exporter_of(state)
    options = environment.parsed_options
    host = getattr(options, "web_host", "") or ""
    host = "" if host == "*" else host
    server = gevent.pywsgi.WSGIServer((host, port), wsgi_app(exporter), log=None)
    try:
        server.start()
    except OSError as exc:
        exit_at_start(
            f"--llm-prometheus-port {port}: cannot listen on {host or '*'}:{port}: "
            f"{os.strerror(exc.errno) if exc.errno else exc}",
            options,
        )
    exporter.server = server
    logger.info("Prometheus metrics on http://%s:%s/metrics", host or "0.0.0.0", port)
    environment.events.quit.add_listener(lambda **kw: server.stop(timeout=1))


def install(environment: Any, state: LLMState) -> None:
    """The web UI's route where there is a web UI, the port where the option asks (not on workers)."""
    from locust.runners import WorkerRunner

    if isinstance(environment.runner, WorkerRunner):
        return
    install_route(environment, state)
    port = getattr(environment.parsed_options, "llm_prometheus_port", 0) or 0
    if port:
        serve_port(environment, state, int(port))
