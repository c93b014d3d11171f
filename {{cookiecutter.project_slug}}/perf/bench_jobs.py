"""Benchmark of the background jobs; prints figures, asserts nothing about speed.

    uv run python perf/bench_jobs.py [--database-url postgresql://...] [--redis-url redis://.../N]
                                     [--deliveries 2000] [--export-rows 100000]

It creates a scratch PostgreSQL database on the given server (dropped afterwards) and, with
--redis-url, FLUSHES that Redis database: give it one nobody else uses. Figures:

- webhook deliveries per second for one arq worker (and for the in-process runner) to a local
  receiver (uvicorn in a subprocess, answering 204);
- export rows per second and peak Python memory (tracemalloc) for --export-rows tasks;
- import time for the 10,000-line CSV of the test suite (BOM, Unicode, quoted newlines).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.jobs.csv_data, the generator the tests use


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_receiver(port: int) -> None:
    """A minimal webhook receiver: counts POSTs, answers 204; GET returns the count."""
    import uvicorn

    count = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal count
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "POST":
            count += 1
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            body = str(count).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _received(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as r:
        return int(r.read())


async def _seed_deliveries(db: Any, org_id: uuid.UUID, endpoint_id: uuid.UUID, n: int) -> None:
    from {{ cookiecutter.package_name }}.jobs.outbox import enqueue
    from {{ cookiecutter.package_name }}.jobs.webhooks.events import DELIVER_JOB

    async with db.writer() as session, session.begin():
        for i in range(n):
            enqueue(
                session,
                DELIVER_JOB,
                {
                    "event_id": str(uuid.uuid4()),
                    "endpoint_id": str(endpoint_id),
                    "type": "task.created",
                    "timestamp": "2024-02-29T12:00:00+00:00",
                    "data": {"n": i, "title": "Ship it 🚀"},
                },
                org_id=org_id,
            )


async def bench(args: argparse.Namespace, database_url: str, port: int) -> None:
    from tests.jobs.csv_data import generate

    from {{ cookiecutter.package_name }}.db.engines import Database
    from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
    from {{ cookiecutter.package_name }}.jobs.transfers.exports import export_tasks
    from {{ cookiecutter.package_name }}.jobs.transfers.imports import import_path, import_tasks
    from {{ cookiecutter.package_name }}.jobs.transfers.model import ExportJob, ImportJob
    from {{ cookiecutter.package_name }}.jobs.webhooks.model import WebhookEndpoint, new_secret
    from {{ cookiecutter.package_name }}.jobs.worker import build_worker
    from {{ cookiecutter.package_name }}.resources.orgs.model import Organization
    from {{ cookiecutter.package_name }}.resources.projects.model import Project
    from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository
    from {{ cookiecutter.package_name }}.settings import Settings

    storage = TemporaryDirectory()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=database_url,
        redis_url=None,
        storage_dir=Path(storage.name),
        log_level="WARNING",
        log_json=True,
        outbox_relay_interval_seconds=3600,
    )
    from {{ cookiecutter.package_name }}.observability.logging import configure_logging

    configure_logging("WARNING", json=True)
    db = Database(settings)
    try:
        for _ in range(100):
            try:
                _received(port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        async with db.writer() as session, session.begin():
            org = Organization(name="Bench Ørg")
            session.add(org)
            await session.flush()
            endpoint = WebhookEndpoint(
                org_id=org.id,
                url=f"http://127.0.0.1:{port}/hooks",
                events=["*"],
                secret=new_secret(),
            )
            project = Project(org_id=org.id, name="Bench")
            session.add_all([endpoint, project])
        org_id, endpoint_id, project_id = org.id, endpoint.id, project.id
        n = args.deliveries

        # 1a. Webhooks through one arq worker.
        if args.redis_url:
            from redis.asyncio import Redis

            redis = Redis.from_url(args.redis_url)
            await redis.flushdb()
            await redis.aclose()
            arq_runtime = JobsRuntime(settings, db, redis_url=args.redis_url)
            await _seed_deliveries(db, org_id, endpoint_id, n)
            started = time.perf_counter()
            await arq_runtime.relay.drain()
            relayed = time.perf_counter() - started
            await arq_runtime.close()
            before = _received(port)
            worker = build_worker(
                settings,
                burst=True,
                redis_url=args.redis_url,
                handle_signals=False,
                poll_delay=0.01,
            )
            started = time.perf_counter()
            await worker.main()
            elapsed = time.perf_counter() - started
            await worker.close()
            got = _received(port) - before
            print(
                f"webhooks, arq worker (max_jobs={settings.worker_max_jobs}): {got}/{n} delivered "
                f"in {elapsed:.2f} s = {got / elapsed:.0f} deliveries/s per worker "
                f"(relay enqueued {n / relayed:.0f} rows/s)"
            )
        else:
            print("webhooks, arq worker: skipped (no --redis-url)")

        # 1b. Webhooks in-process (the embedded default).
        runtime = JobsRuntime(settings, db, redis_url="")
        await _seed_deliveries(db, org_id, endpoint_id, n)
        before = _received(port)
        started = time.perf_counter()
        await runtime.drain()
        elapsed = time.perf_counter() - started
        got = _received(port) - before
        print(
            f"webhooks, in-process runner: {got}/{n} delivered in {elapsed:.2f} s "
            f"= {got / elapsed:.0f} deliveries/s (relay + delivery)"
        )

        # 2. Export of many rows.
        rows = args.export_rows
        async with db.writer() as session, session.begin():
            repo = TaskRepository(session, org_id)
            for offset in range(0, rows, 2000):
                await repo.upsert_many_by_key(
                    [
                        (
                            f"bench-{i:07d}",
                            {
                                "project_id": project_id,
                                "title": f"Task {i} ✓",
                                "status": "todo",
                                "due_date": None,
                                "assignee_id": None,
                            },
                        )
                        for i in range(offset, min(rows, offset + 2000))
                    ]
                )
        async with db.writer() as session, session.begin():
            export = ExportJob(org_id=org_id, project_id=project_id, status="queued")
            session.add(export)
        tracemalloc.start()
        started = time.perf_counter()
        count = await export_tasks(runtime.env, {"export_id": str(export.id)})
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        size = (Path(storage.name) / "exports" / f"{export.id}.csv").stat().st_size
        print(
            f"export: {count} rows in {elapsed:.2f} s = {count / elapsed:.0f} rows/s, "
            f"peak Python memory {peak / 2**20:.1f} MiB (chunks of {settings.export_chunk_rows}), "
            f"file {size / 2**20:.1f} MiB"
        )

        # 3. Import of the 10,000-line file (twice: the second changes nothing).
        generated = generate(10_000)
        for label in ("first", "again"):
            async with db.writer() as session, session.begin():
                record = ImportJob(
                    org_id=org_id,
                    project_id=project_id,
                    status="queued",
                    file_name="bench.csv",
                    created=0,
                    updated=0,
                    unchanged=0,
                    rejected=0,
                    errors=[],
                )
                session.add(record)
            path = import_path(Path(storage.name), record.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(generated.data)
            started = time.perf_counter()
            counts = await import_tasks(runtime.env, {"import_id": str(record.id)})
            elapsed = time.perf_counter() - started
            print(
                f"import ({label}): 10,000-line CSV in {elapsed:.2f} s "
                f"({10_000 / elapsed:.0f} rows/s): {counts}"
            )
        await runtime.close()
    finally:
        await db.dispose()
        storage.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL"))
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return

    import psycopg
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.engine import make_url

    admin = make_url(args.database_url)
    name = f"bench_jobs_{uuid.uuid4().hex[:8]}"
    server = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        url = admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
        config = Config(str(ROOT / "alembic.ini"))
        config.attributes["database_url"] = url
        config.attributes["configure_logger"] = False
        command.upgrade(config, "head")
        port = _free_port()
        receiver = subprocess.Popen([sys.executable, __file__, "--serve-receiver", str(port)])
        try:
            asyncio.run(bench(args, url, port))
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


if __name__ == "__main__":
    main()
