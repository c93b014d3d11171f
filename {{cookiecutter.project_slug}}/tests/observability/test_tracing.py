"""One trace from the HTTP request through the database and a job hop to an outgoing HTTP call.

The job hop is what the worker does: a separate asyncio task that receives nothing but the
carrier dict, and its own tracer provider (the worker process builds its own).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis
from sqlalchemy import func, select

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.dependencies import UnitOfWorkDep
from {{ cookiecutter.package_name }}.observability.tracing import (
    extracted_context,
    inject_trace_context,
    instrument_httpx,
    instrument_redis,
    setup_tracing,
)
from {{ cookiecutter.package_name }}.resources.users.model import User

from ..conftest import REDIS_URL, make_settings, running


class _Receiver(BaseHTTPRequestHandler):
    """A third-party HTTP endpoint: answers 200 and remembers the headers it was sent."""

    seen: list[dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: Any) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local HTTP server on a free port; yields its URL and the headers it received."""
    handler = type("Receiver", (_Receiver,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler.seen
    server.shutdown()
    server.server_close()


def _add_enqueueing_route(app: FastAPI, queue: asyncio.Queue[dict[str, str]]) -> None:
    """A write route that reads the database and, once committed, 'enqueues' a job carrier."""

    @app.post("/_test/enqueue", status_code=202)
    async def enqueue(uow: UnitOfWorkDep) -> dict[str, int]:
        users = await uow.session.scalar(select(func.count()).select_from(User))

        async def dispatch() -> None:  # what the outbox relay / arq enqueue will do
            await queue.put(inject_trace_context())

        uow.after_commit(dispatch)
        return {"users": int(users or 0)}


async def _worker(
    queue: asyncio.Queue[dict[str, str]], url: str, exporter: InMemorySpanExporter
) -> None:
    """The worker side: its own provider, the carrier only, an instrumented httpx call."""
    carrier = await queue.get()
    provider = setup_tracing(
        make_settings("sqlite+aiosqlite://"), service_name="jobs-worker", exporter=exporter
    )
    tracer = provider.get_tracer("{{ cookiecutter.package_name }}.jobs")
    try:
        with (
            extracted_context(carrier),
            tracer.start_as_current_span(
                "job deliver_webhook", kind=SpanKind.CONSUMER, attributes={"app.job_id": "42"}
            ),
        ):
            async with httpx.AsyncClient() as client:
                instrument_httpx(client, provider)
                response = await client.post(url, json={"event": "demo"})
                response.raise_for_status()
    finally:
        provider.shutdown()


def parent_id(span: ReadableSpan) -> int | None:
    """The span id of the span's parent, None for a root span."""
    return span.parent.span_id if span.parent is not None else None


def _by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_one_trace_from_request_through_job_to_outgoing_call(
    database_url: str, receiver: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = receiver
    exporter = InMemorySpanExporter()
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    app = create_app(make_settings(database_url), span_exporter=exporter)
    _add_enqueueing_route(app, queue)
    async with running(app) as client:
        worker = asyncio.create_task(_worker(queue, url, exporter))
        response = await client.post("/_test/enqueue")
        assert response.status_code == 202, response.text
        await asyncio.wait_for(worker, timeout=30)

    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (job,) = _by_name(spans, "job ")
    (outgoing,) = [s for s in spans if s.kind is SpanKind.CLIENT and s.name.startswith("POST")]
    sql = [s for s in spans if {"db.statement", "db.query.text"} & set(s.attributes or {})]

    assert server.name == "POST /_test/enqueue"
    trace_id = server.context.trace_id
    # Only the outbox relay's polling (a background loop, its own traces) may stand apart; its
    # housekeeping is not traced at all.
    apart = [s for s in spans if s.context.trace_id != trace_id]
    assert all("FROM outbox" in str((s.attributes or {}).get("db.statement", "")) for s in apart), (
        "every span of the request's chain is in one trace",
        [str((s.attributes or {}).get("db.statement", s.name))[:120] for s in apart],
    )
    assert response.headers["x-trace-id"] == format(trace_id, "032x")

    request_sql = [s for s in sql if s.context.trace_id == trace_id]
    assert request_sql, "SQLAlchemy statements are traced"
    assert all(parent_id(s) == server.context.span_id for s in request_sql)

    assert parent_id(job) == server.context.span_id
    assert job.resource.attributes["service.name"] == "jobs-worker"
    assert server.resource.attributes["service.name"] == "{{ cookiecutter.project_slug }}"
    assert parent_id(outgoing) == job.context.span_id

    # The receiver got the W3C context of the outgoing call's span: the trace goes on there.
    (headers,) = seen
    _version, sent_trace, sent_parent, _flags = headers["traceparent"].split("-")
    assert (sent_trace, sent_parent) == (
        format(trace_id, "032x"),
        format(outgoing.context.span_id, "016x"),
    )


async def test_a_client_traceparent_is_continued(database_url: str) -> None:
    exporter = InMemorySpanExporter()
    app = create_app(make_settings(database_url), span_exporter=exporter)
    client_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with running(app) as client:
        response = await client.get(
            "/no/such/route", headers={"traceparent": f"00-{client_trace}-00f067aa0ba902b7-01"}
        )
    assert response.headers["x-trace-id"] == client_trace
    assert response.json()["trace_id"] == client_trace
    (server,) = exporter.get_finished_spans()
    assert parent_id(server) == 0x00F067AA0BA902B7


async def test_problem_details_carry_the_trace_id_of_the_response(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/orgs/not-a-uuid")
    body = response.json()
    assert response.status_code in (401, 404, 422)
    assert len(body["trace_id"]) == 32
    assert body["trace_id"] == response.headers["x-trace-id"]


async def test_unhandled_errors_carry_the_trace_id(database_url: str) -> None:
    app = create_app(make_settings(database_url))

    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    async with running(app, raise_app_exceptions=False) as client:
        response = await client.get("/_test/boom")
    assert response.status_code == 500
    assert response.json()["trace_id"] == response.headers["x-trace-id"]


async def test_request_id_is_echoed_when_sane_and_replaced_when_not(
    client: httpx.AsyncClient,
) -> None:
    sane = await client.get("/health/live", headers={"x-request-id": "req-123.abc"})
    assert sane.headers["x-request-id"] == "req-123.abc"
    for bad in ("x" * 200, "two words", "a\\b"):
        response = await client.get("/health/live", headers={"x-request-id": bad})
        assert response.headers["x-request-id"] != bad
        assert len(response.headers["x-request-id"]) == 32
    first = await client.get("/health/live")
    second = await client.get("/health/live")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_a_carrier_outside_any_trace_is_empty_and_extracts_to_a_new_trace() -> None:
    assert inject_trace_context() == {}
    with extracted_context({}):
        assert not trace.get_current_span().get_span_context().is_valid
    with extracted_context(None):
        assert not trace.get_current_span().get_span_context().is_valid
    with extracted_context({"traceparent": "00-not-a-trace-01", "tracestate": "=="}):
        assert not trace.get_current_span().get_span_context().is_valid


def test_no_exporter_and_no_endpoint_exports_nothing_but_still_has_trace_ids() -> None:
    provider = setup_tracing(make_settings("sqlite+aiosqlite://"), service_name="quiet")
    try:
        processors = provider._active_span_processor._span_processors
        assert processors == ()
        with provider.get_tracer("t").start_as_current_span("s") as span:
            assert span.get_span_context().is_valid
            assert inject_trace_context()["traceparent"].split("-")[1] == format(
                span.get_span_context().trace_id, "032x"
            )
    finally:
        provider.shutdown()


def test_sampling_ratio_zero_records_nothing_but_keeps_the_trace_id() -> None:
    exporter = InMemorySpanExporter()
    settings = make_settings("sqlite+aiosqlite://", trace_sample_ratio=0.0)
    provider = setup_tracing(settings, service_name="sampled", exporter=exporter)
    try:
        with provider.get_tracer("t").start_as_current_span("s") as span:
            assert not span.is_recording()
            assert span.get_span_context().is_valid
        assert exporter.get_finished_spans() == ()
    finally:
        provider.shutdown()


def test_resource_attributes_and_otlp_exporter_when_an_endpoint_is_set() -> None:
    settings = make_settings("sqlite+aiosqlite://", otlp_endpoint="http://127.0.0.1:9/")
    provider = setup_tracing(settings, service_name="svc")
    try:
        attributes = provider.resource.attributes
        assert attributes["service.name"] == "svc"
        assert attributes["deployment.environment"] == "test"
        assert attributes["service.version"]
        (processor,) = provider._active_span_processor._span_processors
        exporter = processor._batch_processor._exporter  # type: ignore[attr-defined]
        assert exporter._endpoint == "http://127.0.0.1:9/v1/traces"
    finally:
        provider.shutdown()


@pytest.mark.redis
async def test_probes_leave_no_spans_and_redis_commands_are_children(database_url: str) -> None:
    if REDIS_URL is None:
        pytest.skip("TEST_REDIS_URL not set")
    exporter = InMemorySpanExporter()
    app = create_app(make_settings(database_url, redis_url=REDIS_URL), span_exporter=exporter)
    async with running(app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    assert exporter.get_finished_spans() == (), "probes and scrapes are not traced"

    exporter = InMemorySpanExporter()  # the app's shutdown stopped the first one
    provider = setup_tracing(make_settings(database_url), service_name="t", exporter=exporter)
    redis = Redis.from_url(REDIS_URL)
    instrument_redis(redis, provider)
    try:
        with provider.get_tracer("t").start_as_current_span("parent") as parent:
            assert await redis.ping()
    finally:
        await redis.aclose()
        provider.shutdown()
    (ping,) = [s for s in exporter.get_finished_spans() if s.name != "parent"]
    assert ping.name == "PING"
    assert parent_id(ping) == parent.get_span_context().span_id
