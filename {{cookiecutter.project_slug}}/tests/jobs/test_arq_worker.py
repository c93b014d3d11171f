"""The real arq worker against Redis: the same wrapper, retries through arq.Retry, and an outbox
that waits while Redis is down."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.dead_letters import DeadLetter
from {{ cookiecutter.package_name }}.jobs.outbox import OutboxMessage, OutboxStatus
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.jobs.worker import build_worker
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import REDIS_URL
from . import probe_jobs
from .conftest import put_in_outbox

pytestmark = [
    pytest.mark.redis,
    # arq closes its own pool with the redis-py 5 deprecated close(); not ours to fix.
    pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning"),
    pytest.mark.skipif(REDIS_URL is None, reason="TEST_REDIS_URL not set"),
]


@pytest.fixture
async def arq_runtime(job_settings: Settings) -> AsyncIterator[JobsRuntime]:
    """A runtime that dispatches to arq on the test Redis (flushed first)."""
    assert REDIS_URL is not None
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()
    db = Database(job_settings)
    runtime = JobsRuntime(job_settings, db, redis_url=REDIS_URL)
    try:
        yield runtime
    finally:
        await runtime.close()
        await db.dispose()


async def _run_worker(settings: Settings) -> None:
    worker = build_worker(
        settings, burst=True, redis_url=REDIS_URL, handle_signals=False, poll_delay=0.02
    )
    try:
        await worker.main()
    finally:
        await worker.close()


async def _status(engine: AsyncEngine, row_id: uuid.UUID) -> str:
    async with AsyncSession(engine) as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        return row.status


async def test_worker_retries_and_dead_letters_like_the_in_process_runner(
    arq_runtime: JobsRuntime, job_settings: Settings, admin_engine: AsyncEngine
) -> None:
    ok, bad = uuid.uuid4().hex, uuid.uuid4().hex
    ok_id = await put_in_outbox(arq_runtime.db, "test.flaky", {"key": ok, "fail_times": 2})
    bad_id = await put_in_outbox(arq_runtime.db, "test.flaky", {"key": bad, "fail_times": 99})
    assert await arq_runtime.relay.drain() == 2
    assert await _status(admin_engine, ok_id) == OutboxStatus.dispatched
    # A second relay pass does not enqueue the same rows twice.
    assert await arq_runtime.relay.drain() == 0

    await _run_worker(job_settings)

    assert probe_jobs.ATTEMPTS[ok] == 3
    assert probe_jobs.ATTEMPTS[bad] == 3
    assert await _status(admin_engine, ok_id) == OutboxStatus.done
    assert await _status(admin_engine, bad_id) == OutboxStatus.dead
    async with AsyncSession(admin_engine) as session:
        letter = await session.scalar(select(DeadLetter).where(DeadLetter.outbox_id == bad_id))
    assert letter is not None
    assert letter.attempts == 3


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_outbox_rows_wait_while_redis_is_down(
    job_settings: Settings, admin_engine: AsyncEngine, arq_runtime: JobsRuntime
) -> None:
    down_db = Database(job_settings)
    down = JobsRuntime(job_settings, down_db, redis_url=f"redis://127.0.0.1:{_dead_port()}/0")
    key = uuid.uuid4().hex
    try:
        row_id = await put_in_outbox(down.db, "test.flaky", {"key": key})
        assert await down.relay.drain() == 0  # Redis refused: nothing dispatched, nothing lost
        assert await _status(admin_engine, row_id) == OutboxStatus.pending
    finally:
        await down.close()
        await down_db.dispose()
    # Redis is back: the worker's own relay cron picks the row up.
    await _run_worker(job_settings)
    assert probe_jobs.ATTEMPTS[key] == 1
    assert await _status(admin_engine, row_id) == OutboxStatus.done
