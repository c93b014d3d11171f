"""OpenTelemetry tracing: one provider per process, and the trace context carried into jobs.

`setup_tracing()` builds the provider (resource, sampler, exporter); the app's lifespan calls it
and `instrument_*()` attach the maintained instrumentations (FastAPI's own, SQLAlchemy, redis,
httpx) to *instances*, never by patching libraries globally, so a process may build many apps.

A job hop crosses the outbox and the queue as a small dict of W3C `traceparent`/`tracestate`:
the outbox row stores `inject_trace_context()` of the span that wrote it (jobs/outbox.py), the
relay sends the job inside `extracted_context(row's carrier)` under a PRODUCER span and puts that
span's carrier in the job, and the one job wrapper (jobs/runner.py) runs every attempt in a
CONSUMER span under the carrier it received. So request -> send -> process -> outgoing call is
one trace, across processes (the arq worker builds its own provider, `<service>-worker`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NoOpTracer, Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from {{ cookiecutter.package_name }} import __version__
from {{ cookiecutter.package_name }}.settings import Settings

INSTRUMENTATION_NAME = "{{ cookiecutter.package_name }}"
# Paths whose requests are not traced (nor their database or Redis calls): scrapes and probes
# would drown the real traffic.
UNTRACED_PATHS = frozenset({"/metrics", "/health/live", "/health/ready"})


def setup_tracing(
    settings: Settings, *, service_name: str, exporter: SpanExporter | None = None
) -> TracerProvider:
    """A tracer provider for this process: OTLP when an endpoint is configured, else no export.

    `exporter` (tests, scripts) is exported synchronously, in addition to OTLP. Spans get
    trace ids even when nothing exports them, so logs and responses can still carry one.
    The first provider built in a process also becomes the global one (OpenTelemetry allows
    setting it once); code that has the provider at hand should prefer it.
    """
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.version": __version__,
            "deployment.environment": settings.environment,
            "deployment.environment.name": settings.environment,
        }
    )
    provider = TracerProvider(
        resource=resource,
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_traces_url(settings.otlp_endpoint)))
        )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    return provider


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (`http://collector:4318`)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def tracer_for(provider: TracerProvider | None) -> Tracer:
    """This service's tracer from `provider`; a no-op one when tracing is off."""
    if provider is None:
        return NoOpTracer()
    return provider.get_tracer(INSTRUMENTATION_NAME, __version__)


def inject_trace_context() -> dict[str, str]:
    """The current trace context as a W3C carrier (`traceparent`, `tracestate`) for a job."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


@contextmanager
def extracted_context(carrier: Mapping[str, str] | None) -> Iterator[otel_context.Context]:
    """Make the carrier's trace context current: spans started inside become its children.

    An empty or missing carrier (a job enqueued outside any request) starts a new trace."""
    ctx = extract(dict(carrier or {}))
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        otel_context.detach(token)


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None outside any trace."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    """Trace every HTTP request of this app with FastAPI's own OpenTelemetry support.

    FastAPI names the server span after the route it selected (`GET /orgs/{org_id}/tasks`),
    so no second route lookup per request, as the contrib instrumentor does (measured: half of
    the tracing cost of a cached GET). Its config is fixed when the app is built, before the
    lifespan creates this process's provider, so the provider is filled into that same config.
    Prometheus has the metrics; our logs the records: FastAPI's own signals stay off."""
    # FastAPI has no public setter for a provider made after the app: fill its config dict.
    config = app._telemetry
    config["tracer_provider"] = provider
    config["tracing"] = True
    config["metrics"] = False
    config["logs"] = False
    config["operation_spans"] = False  # one span per request, not one per dependency
    config["exclude"] = _untraced


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def uninstrument_app(app: FastAPI) -> None:
    """Undo `instrument_app` (at shutdown, so a restarted lifespan can instrument again)."""
    config = app._telemetry
    config["tracing"] = False
    config["tracer_provider"] = None


def instrument_engine(engine: AsyncEngine, provider: TracerProvider) -> None:
    """A span per SQL statement on this engine (its listeners go away with the engine)."""
    # The instrumentations are imported when tracing is set up, not by `import app` (the httpx
    # one alone pulls in httpx's command line, click and rich: 0.2 s of a cold start).
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    meter = NoOpMeterProvider().get_meter(INSTRUMENTATION_NAME)
    EngineTracer(  # type: ignore[no-untyped-call]  # the instrumentation ships no types here
        provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__),
        engine.sync_engine,
        meter.create_up_down_counter("db.client.connections.usage"),
    )


def instrument_redis(client: Any, provider: TracerProvider) -> None:
    """A span per Redis command on this client."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client, tracer_provider=provider)


# Span attributes holding the full URL of an outgoing request (old and stable HTTP conventions).
URL_ATTRIBUTES = ("http.url", "url.full")


def instrument_httpx(
    client: Any, provider: TracerProvider, *, show_url: Callable[[str], str] | None = None
) -> None:
    """A span per outgoing request of this httpx client, with `traceparent` sent along.

    `show_url` rewrites the URL recorded on the span (receiver URLs can carry tokens)."""

    async def redact(span: Any, request: Any) -> None:
        recorded = getattr(span, "attributes", None) or {}
        for key in URL_ATTRIBUTES:
            if show_url is not None and key in recorded:
                span.set_attribute(key, show_url(str(request.url)))

    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(
        client,
        tracer_provider=provider,
        meter_provider=NoOpMeterProvider(),
        request_hook=redact if show_url is not None else None,
    )


def genai_attributes(
    *, system: str, model: str, prompt_id: str | None = None, operation: str = "chat"
) -> dict[str, str]:
    """Span attributes of an AI call, named after the OpenTelemetry GenAI conventions."""
    attributes = {
        "gen_ai.system": system,
        "gen_ai.provider.name": system,
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
    }
    if prompt_id is not None:
        # No GenAI convention names a prompt template yet; this one is ours.
        attributes["app.prompt.id"] = prompt_id
    return attributes
