"""The real arq worker against Redis: the same wrapper, retries through arq.Retry, an outbox that
waits while Redis is down, and what arq would otherwise decide alone (time limits, tries lost
with a dying worker, kept results) handed back to the wrapper. Also the worker process itself:
its metrics port and its log lines.

Each test has a queue of its own on the shared TEST_REDIS_URL: nothing is flushed, and no other
test takes or drops its jobs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from arq.constants import retry_key_prefix
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.dead_letters import DeadLetter
from {{ cookiecutter.package_name }}.jobs.outbox import OutboxMessage, OutboxStatus
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.jobs.worker import build_worker
from {{ cookiecutter.package_name }}.observability.logging import configure_logging
from {{ cookiecutter.package_name }}.observability.metrics import (
    JOB_LOST_TRIES,
    JOB_TIMEOUTS,
    OUTBOX_ALREADY_QUEUED,
)
from {{ cookiecutter.package_name }}.settings import ENV_PREFIX, Settings

from ..conftest import REDIS_URL
from . import probe_jobs
from .conftest import LogLines, eventually, put_in_outbox

pytestmark = [
    pytest.mark.redis,
    # arq closes its own pool with the redis-py 5 deprecated close(); not ours to fix.
    pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning"),
    pytest.mark.skipif(REDIS_URL is None, reason="TEST_REDIS_URL not set"),
]


@pytest.fixture
def arq_settings(job_settings: Settings) -> Settings:
    """The job settings with Redis and a queue of this test's own."""
    return job_settings.model_copy(
        update={"redis_url": REDIS_URL, "jobs_queue_name": f"test:{uuid.uuid4().hex}"}
    )


@pytest.fixture
async def arq_runtime(arq_settings: Settings) -> AsyncIterator[JobsRuntime]:
    """A runtime that dispatches to arq (the API process's side)."""
    db = Database(arq_settings)
    runtime = JobsRuntime(arq_settings, db)
    try:
        yield runtime
    finally:
        await runtime.close()
        await db.dispose()


async def _run_worker(settings: Settings) -> None:
    worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=0.02)
    try:
        await worker.main()
    finally:
        await worker.close()


async def _row(engine: AsyncEngine, row_id: uuid.UUID) -> OutboxMessage:
    async with AsyncSession(engine) as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        return row


async def _letter(engine: AsyncEngine, row_id: uuid.UUID) -> DeadLetter | None:
    async with AsyncSession(engine) as session:
        letter: DeadLetter | None = await session.scalar(
            select(DeadLetter).where(DeadLetter.outbox_id == row_id)
        )
        return letter


async def test_worker_retries_and_dead_letters_like_the_in_process_runner(
    arq_runtime: JobsRuntime, arq_settings: Settings, admin_engine: AsyncEngine
) -> None:
    ok, bad = uuid.uuid4().hex, uuid.uuid4().hex
    ok_id = await put_in_outbox(arq_runtime.db, "test.flaky", {"key": ok, "fail_times": 2})
    bad_id = await put_in_outbox(arq_runtime.db, "test.flaky", {"key": bad, "fail_times": 99})
    assert await arq_runtime.relay.drain() == 2
    assert (await _row(admin_engine, ok_id)).status == OutboxStatus.dispatched
    # A second relay pass does not enqueue the same rows twice.
    assert await arq_runtime.relay.drain() == 0

    await _run_worker(arq_settings)

    assert probe_jobs.ATTEMPTS[ok] == 3
    assert probe_jobs.ATTEMPTS[bad] == 3
    assert (await _row(admin_engine, ok_id)).status == OutboxStatus.done
    assert (await _row(admin_engine, bad_id)).status == OutboxStatus.dead
    letter = await _letter(admin_engine, bad_id)
    assert letter is not None
    assert letter.attempts == 3


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_outbox_rows_wait_while_redis_is_down(
    arq_settings: Settings, admin_engine: AsyncEngine
) -> None:
    down_db = Database(arq_settings)
    down = JobsRuntime(arq_settings, down_db, redis_url=f"redis://127.0.0.1:{_dead_port()}/0")
    key = uuid.uuid4().hex
    try:
        row_id = await put_in_outbox(down.db, "test.flaky", {"key": key})
        assert await down.relay.drain() == 0  # Redis refused: nothing dispatched, nothing lost
        assert (await _row(admin_engine, row_id)).status == OutboxStatus.pending
    finally:
        await down.close()
        await down_db.dispose()
    # Redis is back: the worker's own relay cron picks the row up.
    await _run_worker(arq_settings)
    assert probe_jobs.ATTEMPTS[key] == 1
    assert (await _row(admin_engine, row_id)).status == OutboxStatus.done


async def test_a_job_over_its_time_limit_is_retried_then_dead_lettered(
    arq_runtime: JobsRuntime, arq_settings: Settings, admin_engine: AsyncEngine
) -> None:
    key = uuid.uuid4().hex
    timeouts = JOB_TIMEOUTS.labels("test.slow")._value.get()
    row_id = await put_in_outbox(arq_runtime.db, "test.slow", {"key": key})
    await arq_runtime.relay.drain()
    await _run_worker(arq_settings)
    assert probe_jobs.ATTEMPTS[key] == 2  # its max tries, each cut at its 0.2 s limit
    assert JOB_TIMEOUTS.labels("test.slow")._value.get() == timeouts + 2
    assert (await _row(admin_engine, row_id)).status == OutboxStatus.dead
    letter = await _letter(admin_engine, row_id)
    assert letter is not None
    assert letter.attempts == 2
    assert letter.last_error.startswith("JobTimeout: over its 0.2 s limit")


async def test_a_try_lost_with_its_worker_is_dead_lettered_not_retried_forever(
    arq_runtime: JobsRuntime, arq_settings: Settings, admin_engine: AsyncEngine
) -> None:
    key = uuid.uuid4().hex
    lost = JOB_LOST_TRIES.labels("test.flaky")._value.get()
    row_id = await put_in_outbox(arq_runtime.db, "test.flaky", {"key": key})
    await arq_runtime.relay.drain()
    # What arq holds after workers died during each of the job's 3 tries: its try counter.
    assert arq_runtime.redis is not None
    await arq_runtime.redis.set(retry_key_prefix + str(row_id), 3)
    await _run_worker(arq_settings)
    assert probe_jobs.ATTEMPTS[key] == 0  # not run a 4th time...
    letter = await _letter(admin_engine, row_id)
    assert letter is not None  # ...but dead-lettered, with the reason
    assert letter.last_error.startswith("LostTry: try 3 of 3 never reported back")
    assert (await _row(admin_engine, row_id)).status == OutboxStatus.dead
    assert JOB_LOST_TRIES.labels("test.flaky")._value.get() == lost + 1


async def test_a_redispatch_is_queued_again_once_the_job_ended(
    arq_runtime: JobsRuntime, arq_settings: Settings, admin_engine: AsyncEngine
) -> None:
    key = uuid.uuid4().hex
    skipped = OUTBOX_ALREADY_QUEUED._value.get()
    row_id = await put_in_outbox(arq_runtime.db, "test.flaky", {"key": key})
    assert await arq_runtime.relay.drain() == 1
    await _make_stale(admin_engine, row_id)
    assert await arq_runtime.relay.drain() == 1  # still queued: arq keeps one job per id
    assert OUTBOX_ALREADY_QUEUED._value.get() == skipped + 1
    await _run_worker(arq_settings)
    assert probe_jobs.ATTEMPTS[key] == 1

    # The row looks unfinished again (its "done" mark was lost): the relay sends it again, and
    # the job runs again, since the worker kept no result that would make arq ignore it.
    await _make_stale(admin_engine, row_id)
    assert await arq_runtime.relay.drain() == 1
    await _run_worker(arq_settings)
    assert probe_jobs.ATTEMPTS[key] == 2
    assert OUTBOX_ALREADY_QUEUED._value.get() == skipped + 1


async def _make_stale(engine: AsyncEngine, row_id: uuid.UUID) -> None:
    async with AsyncSession(engine) as session, session.begin():
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        row.status = OutboxStatus.dispatched
        row.dispatched_at = datetime.now(UTC) - timedelta(hours=1)


async def test_worker_log_lines_carry_trace_job_and_org_ids(
    arq_runtime: JobsRuntime, arq_settings: Settings, log_lines: LogLines
) -> None:
    configure_logging("INFO", json=True)
    key, org = uuid.uuid4().hex, uuid.uuid4()
    carrier = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    row_id = await put_in_outbox(
        arq_runtime.db, "test.logged", {"key": key}, org_id=org, trace_context=carrier
    )
    await arq_runtime.relay.drain()
    await _run_worker(arq_settings)
    lines = log_lines()
    [ran] = [line for line in lines if line["event"] == "probe_job_ran"]
    [done] = [x for x in lines if x["event"] == "job_done" and x.get("job_id") == str(row_id)]
    for line in (ran, done):
        assert line["job_id"] == str(row_id)
        assert line["org_id"] == str(org)
        assert line["job"] == "test.logged"
        assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"  # the request's trace
        assert len(line["span_id"]) == 16
    # arq's own lines about the job carry its id too.
    arq_lines = [x for x in lines if x["logger"].startswith("arq") and str(row_id) in x["event"]]
    assert arq_lines
    assert all(x["job_id"] == str(row_id) for x in arq_lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_the_worker_command_serves_its_metrics(
    arq_settings: Settings, database_url: str
) -> None:
    """`{{ cookiecutter.package_name }} worker` as deployed: a process of its own, METRICS_PORT set; the canary
    analysis's `app_jobs_total` series appears once a job ran."""
    db = Database(arq_settings)
    gone = {"endpoint_id": str(uuid.uuid4()), "event_id": str(uuid.uuid4()), "type": "task.created"}
    try:
        # A delivery to an endpoint deleted since: the job succeeds without a receiver.
        await put_in_outbox(db, "webhooks.deliver", gone)
    finally:
        await db.dispose()
    port = _free_port()
    env = {
        **os.environ,
        f"{ENV_PREFIX}ENVIRONMENT": "test",
        f"{ENV_PREFIX}DATABASE_URL": database_url,
        f"{ENV_PREFIX}REDIS_URL": str(REDIS_URL),
        f"{ENV_PREFIX}JOBS_QUEUE_NAME": arq_settings.jobs_queue_name,
        f"{ENV_PREFIX}METRICS_PORT": str(port),
        f"{ENV_PREFIX}METRICS_HOST": "127.0.0.1",
        f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "{{ cookiecutter.package_name }}",
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    async def job_counted() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
        except httpx.TransportError:
            return False  # not listening yet
        scraped.clear()
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                scraped[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        key = ("app_jobs_total", (("job", "webhooks.deliver"), ("outcome", "success")))
        return scraped.get(key) == 1.0

    try:
        await eventually(job_counted, tries=400)
    finally:
        worker.terminate()  # SIGTERM, as Kubernetes stops a pod: arq shuts down cleanly
        async with asyncio.timeout(30):
            _, errors = await worker.communicate()
    assert worker.returncode == 0, errors.decode()
    assert scraped[("app_dead_letters_depth", ())] >= 0
    assert ("app_db_pool_size", (("role", "primary"),)) in scraped
