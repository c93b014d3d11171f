"""Start and stop a process's telemetry: tracing, instrumentation, the metrics port.

`start_telemetry` is the API's (called by the app's lifespan); `start_worker_telemetry` the arq
worker's (its own tracer provider, `<service>-worker`, and its metrics on METRICS_PORT).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from threading import Thread
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

import structlog
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from {{ cookiecutter.package_name }}.observability.exposition import (
    app_registry,
    metrics_token_required,
    start_metrics_server,
)
from {{ cookiecutter.package_name }}.observability.tracing import (
    instrument_app,
    instrument_engine,
    instrument_redis,
    setup_tracing,
    uninstrument_app,
)

if TYPE_CHECKING:
    from {{ cookiecutter.package_name }}.db.engines import Database
    from {{ cookiecutter.package_name }}.settings import Settings

log = structlog.get_logger(__name__)


@dataclass
class Telemetry:
    """What a process opened for observability, to put in the state and close at the end."""

    app: FastAPI | None
    registry: CollectorRegistry
    provider: TracerProvider | None = None
    server: tuple[WSGIServer, Thread] | None = field(default=None)

    @property
    def state(self) -> dict[str, Any]:
        """Entries of the lifespan state (`request.state.metrics_registry`...)."""
        return {"metrics_registry": self.registry, "tracer_provider": self.provider}

    def shutdown(self) -> None:
        """Stop the metrics port, flush and stop tracing."""
        if self.server is not None:
            server, thread = self.server
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        if self.provider is not None:
            if self.app is not None:
                uninstrument_app(self.app)
            self.provider.shutdown()  # flushes what the OTLP exporter still holds


def start_telemetry(
    app: FastAPI,
    settings: Settings,
    db: Database,
    redis: Any | None,
    *,
    span_exporter: SpanExporter | None = None,
) -> Telemetry:
    """Set up tracing and instrument this app's engines and Redis; open the metrics port."""
    telemetry = Telemetry(app=app, registry=app_registry(db))
    if settings.tracing_enabled:
        provider = setup_tracing(
            settings, service_name=settings.service_name, exporter=span_exporter
        )
        instrument_app(app, provider)
        for engine in db.engines().values():
            instrument_engine(engine, provider)
        if redis is not None:
            instrument_redis(redis, provider)
        telemetry.provider = provider
    if settings.metrics_port:
        telemetry.server = _serve_metrics(settings, telemetry.registry)
    elif settings.metrics_token is None and metrics_token_required(settings):
        log.warning(
            "metrics_unreachable",
            reason="production needs METRICS_TOKEN or METRICS_PORT to expose /metrics",
        )
    return telemetry


def start_worker_telemetry(
    settings: Settings, db: Database, *, span_exporter: SpanExporter | None = None
) -> Telemetry:
    """The worker's tracing (provider `<service>-worker`, its engines traced) and metrics port.

    The worker has no HTTP app, so its metrics need METRICS_PORT (the deployments set it)."""
    telemetry = Telemetry(app=None, registry=app_registry(db))
    if settings.tracing_enabled:
        provider = setup_tracing(
            settings, service_name=f"{settings.service_name}-worker", exporter=span_exporter
        )
        for engine in db.engines().values():
            instrument_engine(engine, provider)
        telemetry.provider = provider
    if settings.metrics_port:
        telemetry.server = _serve_metrics(settings, telemetry.registry)
    else:
        log.warning("worker_metrics_off", reason="set METRICS_PORT to expose the worker's metrics")
    return telemetry


def _serve_metrics(settings: Settings, registry: CollectorRegistry) -> tuple[WSGIServer, Thread]:
    port = settings.metrics_port or 0
    server = start_metrics_server(port, host=settings.metrics_host, registry=registry)
    log.info("metrics_listening", host=settings.metrics_host, port=server[0].server_port)
    return server
