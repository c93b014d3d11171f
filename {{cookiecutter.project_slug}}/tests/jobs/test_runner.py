"""The one job wrapper: retries with backoff, classification, dead letters, outbox bookkeeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs import dead_letters
from {{ cookiecutter.package_name }}.jobs.dead_letters import DeadLetter
from {{ cookiecutter.package_name }}.jobs.errors import (
    HttpStatusError,
    PermanentJobError,
    RetryableJobError,
    classify,
    parse_retry_after,
)
from {{ cookiecutter.package_name }}.jobs.outbox import OutboxMessage, OutboxStatus
from {{ cookiecutter.package_name }}.jobs.runner import backoff
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.observability.metrics import DEAD_LETTERS, JOB_RETRIES, JOB_TIMEOUTS, JOBS
from {{ cookiecutter.package_name }}.settings import Settings

from ..conftest import make_settings
from . import probe_jobs
from .conftest import put_in_outbox


def _key() -> str:
    return uuid.uuid4().hex


async def _outbox(engine: AsyncEngine, row_id: uuid.UUID) -> OutboxMessage:
    async with AsyncSession(engine) as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        return row


async def _letters(engine: AsyncEngine, job: str) -> list[DeadLetter]:
    async with AsyncSession(engine) as session:
        return list(await session.scalars(select(DeadLetter).where(DeadLetter.job_name == job)))


@pytest.mark.parametrize(
    ("error", "retryable", "retry_after"),
    [
        (HttpStatusError(500, "x"), True, None),
        (HttpStatusError(503, "x", retry_after=7), True, 7),
        (HttpStatusError(429, "x", retry_after=30), True, 30),
        (HttpStatusError(408, "x"), True, None),
        (HttpStatusError(404, "x"), False, None),
        (HttpStatusError(400, "x"), False, None),
        (httpx.ReadTimeout("slow"), True, None),
        (httpx.ConnectError("refused"), True, None),
        (TimeoutError(), True, None),
        (RetryableJobError("later", retry_after=3), True, 3),
        (PermanentJobError("never"), False, None),
        (ValueError("bad row"), False, None),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), False, None),
        # Unexpected errors are retried (bounded by max tries), as the module promises.
        (KeyError("missing"), True, None),
        (TypeError("NoneType is not subscriptable"), True, None),
        (RuntimeError("a bug"), True, None),
    ],
)
def test_errors_are_classified(
    error: Exception, retryable: bool, retry_after: float | None
) -> None:
    verdict = classify(error)
    assert verdict.retryable is retryable
    assert verdict.retry_after == retry_after


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") is None
    assert parse_retry_after("Thu, 29 Feb 2024 12:01:30 GMT", now=now) == 90
    assert parse_retry_after("Thu, 29 Feb 2024 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after(database_url: str) -> None:
    settings = make_settings(database_url, job_retry_base_seconds=1, job_retry_max_seconds=60)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 60)]:
        delays = {backoff(settings, attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, not a fixed schedule
    assert backoff(settings, 1, retry_after=30) >= 30
    assert backoff(settings, 1, retry_after=10_000) == 60  # a hostile Retry-After is capped


async def test_transient_failures_are_retried_until_success(
    runtime: JobsRuntime, admin_engine: AsyncEngine
) -> None:
    key = _key()
    retries_before = JOB_RETRIES.labels("test.flaky")._value.get()
    row_id = await put_in_outbox(runtime.db, "test.flaky", {"key": key, "fail_times": 2})
    await runtime.drain()
    assert probe_jobs.ATTEMPTS[key] == 3
    row = await _outbox(admin_engine, row_id)
    assert row.status == OutboxStatus.done
    assert row.completed_at is not None
    assert JOB_RETRIES.labels("test.flaky")._value.get() == retries_before + 2
    assert not [
        letter for letter in await _letters(admin_engine, "test.flaky") if letter.args["key"] == key
    ]


async def test_exhausted_retries_dead_letter_with_context(
    runtime: JobsRuntime, admin_engine: AsyncEngine
) -> None:
    key = _key()
    dead_before = DEAD_LETTERS.labels("test.flaky")._value.get()
    org = uuid.uuid4()
    carrier = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    row_id = await put_in_outbox(
        runtime.db,
        "test.flaky",
        {"key": key, "fail_times": 99, "status": 502},
        org_id=org,
        trace_context=carrier,
    )
    await runtime.drain()
    assert probe_jobs.ATTEMPTS[key] == 3  # the job's max_tries
    assert (await _outbox(admin_engine, row_id)).status == OutboxStatus.dead
    [letter] = [x for x in await _letters(admin_engine, "test.flaky") if x.args["key"] == key]
    assert letter.attempts == 3
    assert letter.org_id == org
    assert letter.trace_context == carrier
    assert letter.outbox_id == row_id
    assert "HTTP 502" in letter.last_error
    assert letter.replayed_at is None
    assert DEAD_LETTERS.labels("test.flaky")._value.get() == dead_before + 1


async def test_permanent_failure_dead_letters_at_once(
    runtime: JobsRuntime, admin_engine: AsyncEngine
) -> None:
    key = _key()
    success_before = JOBS.labels("test.flaky", "success")._value.get()
    await put_in_outbox(runtime.db, "test.invalid", {"key": key, "x": "🦄"})
    await put_in_outbox(
        runtime.db, "test.flaky", {"key": key + "-404", "fail_times": 1, "status": 404}
    )
    await runtime.drain()
    assert probe_jobs.ATTEMPTS[key] == 1
    assert probe_jobs.ATTEMPTS[key + "-404"] == 1  # a 4xx is not retried
    [letter] = [x for x in await _letters(admin_engine, "test.invalid") if x.args["key"] == key]
    assert letter.attempts == 1
    assert "PermanentJobError: argument 'x' is invalid: '🦄'" in letter.last_error
    assert JOBS.labels("test.flaky", "success")._value.get() == success_before


async def test_unknown_job_is_dead_lettered_not_lost(
    runtime: JobsRuntime, admin_engine: AsyncEngine
) -> None:
    await put_in_outbox(runtime.db, "test.no-such-job", {"a": 1})
    await runtime.drain()
    [letter] = await _letters(admin_engine, "test.no-such-job")
    assert "no job named" in letter.last_error


async def test_replay_runs_the_job_again_once(
    runtime: JobsRuntime, admin_engine: AsyncEngine
) -> None:
    key = _key()
    probe_jobs.BROKEN.add(key)
    await put_in_outbox(runtime.db, "test.flaky", {"key": key})
    await runtime.drain()
    [letter] = [x for x in await _letters(admin_engine, "test.flaky") if x.args["key"] == key]
    probe_jobs.BROKEN.discard(key)  # the receiver is fixed

    async with runtime.db.writer() as session, session.begin():
        loaded = await dead_letters.get(session, letter.id)
        assert loaded is not None
        replay_row = dead_letters.replay(session, loaded)
        assert replay_row is not None
        assert dead_letters.replay(session, loaded) is None  # not twice
    await runtime.drain()
    assert probe_jobs.ATTEMPTS[key] == 4
    assert (await _outbox(admin_engine, replay_row.id)).status == OutboxStatus.done
    async with AsyncSession(admin_engine) as session:
        assert (await session.get(DeadLetter, letter.id)).replayed_at is not None  # type: ignore[union-attr]


async def test_relay_redispatches_rows_whose_job_never_finished(
    runtime: JobsRuntime, admin_engine: AsyncEngine
) -> None:
    key = _key()
    row_id = await put_in_outbox(runtime.db, "test.flaky", {"key": key})
    # A worker took the row an hour ago and died: it is dispatched but never completed.
    async with AsyncSession(admin_engine) as session, session.begin():
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        row.status = OutboxStatus.dispatched
        row.dispatched_at = datetime.now(UTC) - timedelta(hours=1)
    await runtime.drain()
    assert probe_jobs.ATTEMPTS[key] == 1
    row = await _outbox(admin_engine, row_id)
    assert row.status == OutboxStatus.done
    assert row.dispatch_count == 1


async def test_an_attempt_over_its_time_limit_is_a_retryable_timeout(
    runtime: JobsRuntime, admin_engine: AsyncEngine
) -> None:
    key = _key()
    timeouts = JOB_TIMEOUTS.labels("test.slow")._value.get()
    row_id = await put_in_outbox(runtime.db, "test.slow", {"key": key})
    await runtime.drain()
    assert probe_jobs.ATTEMPTS[key] == 2
    assert JOB_TIMEOUTS.labels("test.slow")._value.get() == timeouts + 2
    assert (await _outbox(admin_engine, row_id)).status == OutboxStatus.dead
    [letter] = [x for x in await _letters(admin_engine, "test.slow") if x.args["key"] == key]
    assert letter.last_error == "JobTimeout: over its 0.2 s limit"


async def test_the_in_process_runner_runs_at_most_worker_max_jobs_at_once(
    job_settings: Settings,
) -> None:
    settings = job_settings.model_copy(update={"worker_max_jobs": 2})
    db = Database(settings)
    runtime = JobsRuntime(settings, db, redis_url="")
    keys = [_key() for _ in range(5)]
    probe_jobs.PEAK.pop("test.concurrent", None)
    try:
        for key in keys:
            await put_in_outbox(db, "test.concurrent", {"key": key})
        await runtime.drain()
    finally:
        await runtime.close()
        await db.dispose()
    assert all(probe_jobs.ATTEMPTS[key] == 1 for key in keys)
    assert probe_jobs.PEAK["test.concurrent"] == 2  # 5 queued, never more than 2 running
