"""One trace from an HTTP request through the outbox, the relay and the job that it caused, to
the job's outgoing HTTP call, and on to the receiver: through the real arq worker (its own
process-like provider, `<service>-worker`) and through the in-process runner of embedded mode.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.jobs.worker import build_worker
from {{ cookiecutter.package_name }}.observability.tracing import (
    extracted_context,
    inject_trace_context,
    instrument_redis,
    setup_tracing,
)
from {{ cookiecutter.package_name }}.settings import Settings

from ..api import Api
from ..conftest import REDIS_URL, make_settings, running
from ..jobs.conftest import eventually
from ..jobs.receiver import Receiver, receiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def parent_id(span: ReadableSpan) -> int | None:
    """The span id of the span's parent, None for a root span."""
    return span.parent.span_id if span.parent is not None else None


def _one(spans: Sequence[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind is kind]
    assert len(found) == 1, (name, [(s.name, s.kind) for s in spans])
    return found[0]


def _statement(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("db.statement") or attributes.get("db.query.text") or "")


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


async def _request_a_task(
    settings: Settings, exporter: InMemorySpanExporter, url: str
) -> tuple[str, str]:
    """A client creates a task in an org with a webhook; returns (org id, X-Trace-Id).

    The client sends its own `traceparent`: the request continues it, and the job must hang
    off the server span, not off the client's."""
    app = create_app(settings, span_exporter=exporter)
    async with running(app) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = await api.project(org, owner)
        await api.webhook(org, owner, url, ["task.created"])
        exporter.clear()
        response = await client.post(
            f"/orgs/{org}/tasks",
            json={"project_id": project["id"], "title": "Trace me ✨"},
            headers={**owner.headers, "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        )
        assert response.status_code == 201, response.text
        if not settings.redis_url:  # in-process: the job runs in this app, wait for its spans
            await eventually(lambda: _finished(exporter, "process webhooks.deliver"))
    return org, response.headers["x-trace-id"]


async def _finished(exporter: InMemorySpanExporter, name: str) -> bool:
    return any(s.name == name for s in exporter.get_finished_spans())


def _assert_one_chain(
    spans: Sequence[ReadableSpan], trace_id: str, hook: Receiver, *, job_service: str
) -> None:
    """server -> (outbox INSERT, send) ; send -> process -> webhook deliver -> POST, one trace,
    and the receiver got the traceparent of the POST."""
    assert trace_id == CLIENT_TRACE  # the client's trace is continued...
    server = _one(spans, "POST /orgs/{org_id}/tasks", SpanKind.SERVER)
    assert parent_id(server) == int(CLIENT_SPAN, 16)
    send = _one(spans, "send webhooks.deliver", SpanKind.PRODUCER)
    process = _one(spans, "process webhooks.deliver", SpanKind.CONSUMER)
    deliver = _one(spans, "webhook deliver", SpanKind.INTERNAL)
    outgoing = _one(spans, "POST", SpanKind.CLIENT)
    inserts = [s for s in spans if _statement(s).startswith("INSERT INTO outbox")]

    apart = [s for s in spans if format(s.context.trace_id, "032x") != trace_id]
    assert not apart, [(s.name, _statement(s)[:60]) for s in apart]
    assert [parent_id(s) for s in inserts] == [server.context.span_id]
    # ...but the job's parent is the server span (via the relay's send), not the client's span.
    assert parent_id(send) == server.context.span_id
    assert parent_id(process) == send.context.span_id
    assert parent_id(deliver) == process.context.span_id
    assert parent_id(outgoing) == deliver.context.span_id
    assert server.resource.attributes["service.name"] == "{{ cookiecutter.project_slug }}"
    assert process.resource.attributes["service.name"] == job_service
    assert outgoing.resource.attributes["service.name"] == job_service
    job_sql = [s for s in spans if parent_id(s) == process.context.span_id and _statement(s)]
    assert any(_statement(s).startswith("UPDATE outbox") for s in job_sql), "marked done in the job"

    attributes = dict(deliver.attributes or {})
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["app.event.type"] == "task.created"
    assert attributes["http.response.status_code"] == 200
    [received] = hook.ok()
    assert attributes["app.event.id"] == received.headers["webhook-id"]
    assert (process.attributes or {})["messaging.message.id"]
    _version, sent_trace, sent_parent, _flags = received.headers["traceparent"].split("-")
    assert (sent_trace, sent_parent) == (trace_id, format(outgoing.context.span_id, "016x"))


@pytest.mark.redis
@pytest.mark.skipif(REDIS_URL is None, reason="TEST_REDIS_URL not set")
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_one_trace_from_request_through_the_arq_worker_to_the_receiver(
    database_url: str, hook: Receiver
) -> None:
    # A queue of this test's own: nothing else on the shared Redis takes or drops its jobs.
    settings = make_settings(
        database_url, redis_url=REDIS_URL, jobs_queue_name=f"test:{uuid.uuid4().hex}"
    )
    api_spans, worker_spans = InMemorySpanExporter(), InMemorySpanExporter()
    _org, trace_id = await _request_a_task(settings, api_spans, hook.url)
    assert hook.received == []  # with Redis, nothing runs in the API process

    worker = build_worker(
        settings, burst=True, span_exporter=worker_spans, handle_signals=False, poll_delay=0.02
    )
    try:
        await worker.main()
    finally:
        await worker.close()

    spans = [*api_spans.get_finished_spans(), *worker_spans.get_finished_spans()]
    _assert_one_chain(spans, trace_id, hook, job_service="{{ cookiecutter.project_slug }}-worker")
    send = _one(spans, "send webhooks.deliver", SpanKind.PRODUCER)
    assert (send.attributes or {})["messaging.system"] == "arq"
    # The enqueue itself is traced: the Redis commands of arq's enqueue hang off the send.
    assert any(s.kind is SpanKind.CLIENT and parent_id(s) == send.context.span_id for s in spans)


async def test_one_trace_from_request_through_the_in_process_runner(
    database_url: str, hook: Receiver
) -> None:
    exporter = InMemorySpanExporter()
    _org, trace_id = await _request_a_task(make_settings(database_url), exporter, hook.url)
    spans = exporter.get_finished_spans()
    _assert_one_chain(spans, trace_id, hook, job_service="{{ cookiecutter.project_slug }}")
    process = _one(spans, "process webhooks.deliver", SpanKind.CONSUMER)
    assert (process.attributes or {})["messaging.system"] == "in_process"


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
