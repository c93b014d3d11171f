"""Print the span tree of real requests, in-process, on the embedded (dev mode) defaults.

Runs the service on a throw-away SQLite file, registers a user, creates an organization and a
project, then follows one write request through a job hop (the carrier only, as arq will carry
it) to an outgoing HTTP call to a local receiver. Prints each trace as a tree:

    uv run python perf/trace_demo.py        (or: make trace-demo)
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import func, select

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT
from {{ cookiecutter.package_name }}.dependencies import UnitOfWorkDep
from {{ cookiecutter.package_name }}.observability.tracing import (
    extracted_context,
    inject_trace_context,
    instrument_httpx,
    setup_tracing,
)
from {{ cookiecutter.package_name }}.resources.projects.model import Project
from {{ cookiecutter.package_name }}.settings import Settings

PASSWORD = "a demo password that is long enough"  # noqa: S105 - a throw-away dev database


class Receiver(BaseHTTPRequestHandler):
    """Stands in for a webhook receiver or the AI provider."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def print_tree(spans: Sequence[ReadableSpan]) -> None:
    """Print spans as trees, children under parents, in start order."""
    by_id = {s.context.span_id: s for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent and span.parent.span_id in by_id else None
        children.setdefault(parent, []).append(span)

    def show(span: ReadableSpan, depth: int) -> None:
        service = span.resource.attributes.get("service.name")
        millis = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        attributes = span.attributes or {}
        detail = attributes.get("db.statement") or attributes.get("http.url") or ""
        detail = str(detail).split("\n")[0][:60]
        print(
            f"{'  ' * depth}{span.name}  [{span.kind.name.lower()}, {service}, "
            f"span {span.context.span_id:016x}, {millis:.1f} ms]  {detail}"
        )
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for root in children.get(None, []):
        print(f"trace {root.context.trace_id:032x}")
        show(root, 1)


async def demo(url: str) -> None:
    """Run the requests and print their traces."""
    exporter = InMemorySpanExporter()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    settings = Settings(_env_file=None, environment="dev", database_url=url, log_level="WARNING")  # type: ignore[call-arg]
    app = create_app(settings, span_exporter=exporter)
    jobs: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    @app.post("/demo/notify", status_code=202)
    async def notify(uow: UnitOfWorkDep) -> None:
        """A write whose after-commit hook enqueues a job, as the outbox relay will."""
        await uow.session.execute(select(func.count()).select_from(Project))

        async def enqueue() -> None:
            await jobs.put(inject_trace_context())

        uow.after_commit(enqueue)

    async def worker() -> None:
        carrier = await jobs.get()  # all that crosses the queue
        provider = setup_tracing(
            settings, service_name=f"{settings.service_name}-worker", exporter=exporter
        )
        with (
            extracted_context(carrier),
            provider.get_tracer("jobs").start_as_current_span(
                "job deliver_webhook", kind=SpanKind.CONSUMER
            ),
        ):
            async with httpx.AsyncClient() as client:
                instrument_httpx(client, provider)
                await client.post(f"http://127.0.0.1:{receiver.server_port}/hook", json={})
        provider.shutdown()

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            email = "demo@example.com"
            await client.post("/auth/register", json={"email": email, "password": PASSWORD})
            token = (
                await client.post("/auth/token", data={"username": email, "password": PASSWORD})
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            org = (await client.post("/orgs", json={"name": "Demo"}, headers=auth)).json()["id"]
            exporter.clear()
            response = await client.post(
                f"/orgs/{org}/projects", json={"name": "Launch"}, headers=auth
            )
            print(
                f"POST /orgs/<org_id>/projects -> {response.status_code}, "
                f"X-Trace-Id {response.headers['x-trace-id']}"
            )
            print_tree(exporter.get_finished_spans())
            exporter.clear()
            consumer = asyncio.create_task(worker())
            response = await client.post("/demo/notify", headers=auth)
            await asyncio.wait_for(consumer, timeout=30)
            print(
                f"\nPOST /demo/notify -> {response.status_code}, "
                f"X-Trace-Id {response.headers['x-trace-id']}"
            )
            print_tree(exporter.get_finished_spans())
    receiver.shutdown()


def main() -> None:
    """Migrate a throw-away SQLite database (alembic runs its own loop), then run the demo."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}"
        config = Config(str(PROJECT_ROOT / "alembic.ini"))
        config.attributes.update(database_url=url, configure_logger=False)
        command.upgrade(config, "head")
        asyncio.run(demo(url))


if __name__ == "__main__":
    main()
