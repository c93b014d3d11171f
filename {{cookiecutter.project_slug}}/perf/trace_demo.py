"""Print the traces of real requests in dev mode: request -> outbox -> job -> outgoing call.

Runs the service in-process on the embedded defaults (a throw-away SQLite file, no Redis: jobs
run in-process with the same wrapper as the arq worker), with a local webhook receiver. Then:

1. POST /orgs/{id}/tasks in an organization with a webhook: the write, its outbox row, the
   relay's send, the job, the signed delivery and its HTTP call, all in one trace;
2. POST /orgs/{id}/projects/{id}/summary (flag `ai-summary` on): the job and its AI call span
   (GenAI attributes), with the local deterministic provider.

Each trace is printed as a tree: span name, kind, service, span id and parent span id.

    uv run python perf/trace_demo.py        (or: make trace-demo)
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.settings import Settings

PASSWORD = "a demo password that is long enough"  # noqa: S105 - a throw-away dev database
# Attributes worth a glance, per span (the first one present is shown).
SHOWN = ("db.statement", "db.query.text", "app.event.type", "gen_ai.request.model", "http.url")


class Receiver(BaseHTTPRequestHandler):
    """Stands in for an organization's webhook receiver; remembers the traceparent it got."""

    traceparents: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).traceparents.append(self.headers.get("traceparent", "-"))
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
        attributes = span.attributes or {}
        detail = next((str(attributes[k]) for k in SHOWN if k in attributes), "").strip()
        parent = f"{span.parent.span_id:016x}" if span.parent else "-" * 16
        print(
            f"{'  ' * depth}{span.name}  [{span.kind.name.lower()}, {service}] "
            f"span {span.context.span_id:016x} parent {parent}  {detail.split(chr(10))[0][:50]}"
        )
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for root in children.get(None, []):
        print(f"trace {root.context.trace_id:032x}")
        show(root, 1)


async def demo(url: str, flags_file: Path) -> None:
    """Run the requests and print their traces."""
    exporter = InMemorySpanExporter()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="dev",
        database_url=url,
        redis_url=None,
        log_level="WARNING",
        flags_file=flags_file,
    )
    app = create_app(settings, span_exporter=exporter)
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
            project = (
                await client.post(f"/orgs/{org}/projects", json={"name": "Launch"}, headers=auth)
            ).json()["id"]
            hook = f"http://127.0.0.1:{receiver.server_port}/hooks"
            await client.post(
                f"/orgs/{org}/webhooks",
                json={"url": hook, "events": ["task.created"]},
                headers=auth,
            )
            for title, path, body in (
                ("a task write and its webhook", f"/orgs/{org}/tasks", {"project_id": project}),
                ("a summary and its AI call", f"/orgs/{org}/projects/{project}/summary", None),
            ):
                exporter.clear()
                if body is not None:
                    body["title"] = "Ship it"
                response = await client.post(path, json=body, headers=auth)
                await JobsRuntime.settle_all()  # the in-process job and its retries
                print(
                    f"\n== {title}: POST {path.replace(org, '<org>').replace(project, '<project>')}"
                    f" -> {response.status_code}, X-Trace-Id {response.headers['x-trace-id']}"
                )
                print_tree(exporter.get_finished_spans())
    receiver.shutdown()
    print(f"\nreceiver got traceparent {Receiver.traceparents[-1]}")


def main() -> None:
    """Migrate a throw-away SQLite database (alembic runs its own loop), then run the demo."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}"
        config = Config(str(PROJECT_ROOT / "alembic.ini"))
        config.attributes.update(database_url=url, configure_logger=False)
        command.upgrade(config, "head")
        flags = Path(tmp) / "flags.yaml"
        flags.write_text("ai-summary: true\n", encoding="utf-8")
        asyncio.run(demo(url, flags))


if __name__ == "__main__":
    main()
