"""Fixtures for the jobs tests: a job runtime on the run's database with fast retries."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.outbox import enqueue
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.observability.logging import configure_logging
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import make_settings
from . import probe_jobs  # noqa: F401 - registers the test.* jobs


@pytest.fixture
def job_settings(database_url: str, tmp_path: Any) -> Settings:
    """Settings with retries in milliseconds and storage in a temporary directory."""
    return make_settings(database_url, storage_dir=tmp_path / "storage")


@pytest.fixture
async def runtime(job_settings: Settings) -> AsyncIterator[JobsRuntime]:
    """An in-process job runtime (no Redis) on the run's database."""
    db = Database(job_settings)
    jobs = JobsRuntime(job_settings, db, redis_url="")
    try:
        yield jobs
    finally:
        await jobs.close()
        await db.dispose()


async def put_in_outbox(
    db: Database, name: str, args: dict[str, Any], *, org_id: uuid.UUID | None = None, **kw: Any
) -> uuid.UUID:
    """Commit one outbox row, as a request's transaction would."""
    async with db.writer() as session, session.begin():
        row = enqueue(session, name, args, org_id=org_id, **kw)
    return row.id


async def eventually(check: Callable[[], Awaitable[bool]], *, tries: int = 200) -> None:
    """Poll `check` until it is true; a bounded number of polls, not a wall-clock assertion."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


LogLines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[LogLines]:
    """The JSON log lines printed so far (configure logging, e.g. create_app, inside the test);
    logging is pointed back at the real stdout afterwards."""
    seen: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        seen.extend(json.loads(x) for x in capsys.readouterr().out.splitlines() if x[:1] == "{")
        return list(seen)

    yield read
    configure_logging("WARNING", json=True)
