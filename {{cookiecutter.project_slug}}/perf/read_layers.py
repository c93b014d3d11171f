"""What a task read costs at each layer of the database stack: CPU time per read.

    uv run python perf/read_layers.py [--tasks 1000000] [--reads 2000] [--rounds 3]

Sends the service's own statements (the single read of a cache miss, and the first 100-task
page) to the `make perf` database (PERF_DATABASE_URL's server; migrated and seeded as `make
perf` does when it is not), one read after another in this process, with no HTTP, auth or
tracing, through:

- raw asyncpg, as the bare app reads (its own pool; the statement compiled once);
- a checkout of the service's read pool (SQLAlchemy's, with its pre-ping) around that raw call;
- SQLAlchemy Core on a pooled connection (what the repository's `_rows` runs);
- the service's read: `Database.reader()` and the repository, as the routes use it (the single
  task validated into `TaskOut`, the page's rows as plain dicts for `PageResponse`).

Each line's difference to the one above is what that layer adds (the median of the rounds):
the figures behind the README's account of a cache miss and a page; `make perf` measures
whole requests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvloop
from run import perf_org, prepare_database
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

import {{ cookiecutter.package_name }}.models  # noqa: F401 - every table, so the joins resolve
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.pagination import PageRequest, keyset_params
from {{ cookiecutter.package_name }}.resources.tasks.repository import (
    _READ_ONE,
    TaskRepository,
    _page_select,
)
from {{ cookiecutter.package_name }}.settings import Settings

FIRST_PAGE = PageRequest(after=None, limit=100)


@dataclass
class Statement:
    """One of the service's reads: its select, its parameters for the n-th read, and the
    repository call that sends it."""

    name: str
    select: Any
    params: Callable[[int], dict[str, Any]]
    service: Callable[[TaskRepository, int], Awaitable[object]]


async def cpu_per_read(read: Callable[[int], Awaitable[object]], reads: int) -> float:
    """Microseconds of this process's CPU per call of `read`, after a warm-up."""
    for n in range(min(200, reads)):
        await read(n)
    started = time.process_time()
    for n in range(reads):
        await read(n)
    return (time.process_time() - started) / reads * 1e6


def layers(
    statement: Statement, pool: asyncpg.Pool, db: Database, org_id: Any
) -> dict[str, Callable[[int], Awaitable[object]]]:
    """The same read through each layer, from the bare app's to the service's."""
    compiled = statement.select.compile(dialect=postgresql.asyncpg.dialect())
    sql, order = str(compiled), compiled.positiontup or []

    def values(n: int) -> list[Any]:
        params = statement.params(n)
        return [params[name] for name in order]

    async def raw(n: int) -> object:
        return await pool.fetch(sql, *values(n))

    async def checkout_and_raw(n: int) -> object:
        async with db.primary_reads.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            return await driver.fetch(sql, *values(n))

    async def core(n: int) -> object:
        async with db.primary_reads.connect() as conn:
            return (await conn.execute(statement.select, statement.params(n))).all()

    async def service(n: int) -> object:
        async with db.reader() as session:
            return await statement.service(TaskRepository(session, org_id), n)

    return {
        "raw asyncpg (the bare app)": raw,
        "+ read pool checkout (pre-ping)": checkout_and_raw,
        "+ SQLAlchemy Core execution": core,
        "+ read session and repository": service,
    }


async def measure(args: argparse.Namespace, database: str) -> None:
    org_id = perf_org(database, args.tasks)
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    async_url = make_url(database).set(drivername="postgresql+asyncpg")
    # The primary only, as in `make perf` (the perf servers have no replica either).
    settings = Settings(database_url=async_url.render_as_string(False), database_replica_url=None)
    db = Database(settings)
    try:
        rows = await pool.fetch("SELECT id FROM tasks WHERE org_id = $1 LIMIT 2000", org_id)
        ids = [r["id"] for r in rows]
        page = {"org_id": org_id, "project_id": None, "status": None} | keyset_params(FIRST_PAGE)
        statements = [
            Statement(
                "one task (a cache miss)",
                _READ_ONE,
                lambda n: {"org_id": org_id, "task_id": ids[n % len(ids)]},
                lambda repo, n: repo.read(ids[n % len(ids)]),
            ),
            Statement(
                "first page of 100 tasks",
                _page_select(after=False, project=False, status=False),
                lambda n: page,
                lambda repo, n: repo.page(FIRST_PAGE),
            ),
        ]
        for statement in statements:
            figures: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for layer, read in layers(statement, pool, db, org_id).items():
                    figures.setdefault(layer, []).append(await cpu_per_read(read, args.reads))
            print(f"\n{statement.name}: CPU per read, median of {args.rounds} rounds")
            previous = None
            for layer, samples in figures.items():
                us = statistics.median(samples)
                added = "" if previous is None else f"  (+{us - previous:.0f})"
                print(f"  {layer:<40} {us:>7.0f} us{added}")
                previous = us
    finally:
        await pool.close()
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000, help="the perf organization's")
    parser.add_argument("--reads", type=int, default=2000, help="reads per layer and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    admin = os.environ.get("PERF_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    database, _ = prepare_database(admin, args.tasks)
    uvloop.run(measure(args, database))


if __name__ == "__main__":
    main()
