"""Start and stop the app's telemetry in its lifespan: tracing, instrumentation, metrics port."""

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
    """What the lifespan opened for observability, to put in the state and close at the end."""

    app: FastAPI
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
            uninstrument_app(self.app)
            self.provider.shutdown()


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
        for engine in (db.primary, db.replica):
            if engine is not None:
                instrument_engine(engine, provider)
        if redis is not None:
            instrument_redis(redis, provider)
        telemetry.provider = provider
    if settings.metrics_port:
        telemetry.server = start_metrics_server(
            settings.metrics_port, host=settings.metrics_host, registry=telemetry.registry
        )
    elif settings.metrics_token is None and metrics_token_required(settings):
        log.warning(
            "metrics_unreachable",
            reason="production needs METRICS_TOKEN or METRICS_PORT to expose /metrics",
        )
    return telemetry
