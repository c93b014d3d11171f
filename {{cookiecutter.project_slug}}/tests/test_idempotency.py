"""Idempotency-Key: a retried write applies once; misuse gets a clear 4xx."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from {{ cookiecutter.package_name }}.db.base import utcnow
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.idempotency import IdempotencyRecord, _lock_id
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.resources.tasks.model import Task

from .api import Api, User
from .conftest import make_settings
from .factories import TaskFactory


@pytest.fixture
async def ctx(api: Api) -> tuple[str, User, dict[str, object]]:
    owner = await api.user()
    org = await api.org(owner)
    return org, owner, await api.project(org, owner)


async def _tasks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(Task)) or 0)


async def test_replay_returns_the_stored_response_and_writes_once(
    client: httpx.AsyncClient, ctx: tuple[str, User, dict[str, object]], admin_engine: AsyncEngine
) -> None:
    org, owner, project = ctx
    body = TaskFactory.payload(project["id"])
    headers = {**owner.headers, "Idempotency-Key": "create-task-1"}
    first = await client.post(f"/orgs/{org}/tasks", json=body, headers=headers)
    second = await client.post(f"/orgs/{org}/tasks", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await _tasks(admin_engine) == 1


async def test_same_key_with_another_body_is_a_422(
    client: httpx.AsyncClient, ctx: tuple[str, User, dict[str, object]], admin_engine: AsyncEngine
) -> None:
    org, owner, project = ctx
    headers = {**owner.headers, "Idempotency-Key": "k-1"}
    ok = await client.post(
        f"/orgs/{org}/tasks", json=TaskFactory.payload(project["id"], title="a"), headers=headers
    )
    assert ok.status_code == 201
    reused = await client.post(
        f"/orgs/{org}/tasks", json=TaskFactory.payload(project["id"], title="b"), headers=headers
    )
    assert reused.status_code == 422
    assert "different request" in reused.json()["detail"]
    assert await _tasks(admin_engine) == 1


async def test_keys_are_scoped_to_the_caller(
    api: Api,
    client: httpx.AsyncClient,
    ctx: tuple[str, User, dict[str, object]],
    admin_engine: AsyncEngine,
) -> None:
    org, owner, project = ctx
    other = await api.member(org, owner, "member")
    body = TaskFactory.payload(project["id"])
    for user in (owner, other):
        response = await client.post(
            f"/orgs/{org}/tasks", json=body, headers={**user.headers, "Idempotency-Key": "shared"}
        )
        assert response.status_code == 201
        assert "idempotent-replayed" not in response.headers
    assert await _tasks(admin_engine) == 2


async def test_a_request_in_flight_makes_the_retry_a_409(
    client: httpx.AsyncClient, ctx: tuple[str, User, dict[str, object]], admin_engine: AsyncEngine
) -> None:
    """While the first request holds the key (its transaction is open), a retry gets 409."""
    org, owner, project = ctx
    key = "in-flight"
    async with admin_engine.connect() as holder:
        # Hold the same lock the first request's transaction holds while it runs.
        await holder.execute(
            text("SELECT pg_advisory_lock(:id)"), {"id": _lock_id(uuid.UUID(owner.id), key)}
        )
        retry = await client.post(
            f"/orgs/{org}/tasks",
            json=TaskFactory.payload(project["id"]),
            headers={**owner.headers, "Idempotency-Key": key},
        )
        await holder.execute(text("SELECT pg_advisory_unlock_all()"))
    assert retry.status_code == 409
    assert retry.headers["retry-after"] == "1"
    assert await _tasks(admin_engine) == 0


async def test_concurrent_duplicates_apply_once(
    client: httpx.AsyncClient, ctx: tuple[str, User, dict[str, object]], admin_engine: AsyncEngine
) -> None:
    org, owner, project = ctx
    body = TaskFactory.payload(project["id"])
    headers = {**owner.headers, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(client.post(f"/orgs/{org}/tasks", json=body, headers=headers) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    assert await _tasks(admin_engine) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve"])
async def test_malformed_keys_are_a_400(
    client: httpx.AsyncClient, ctx: tuple[str, User, dict[str, object]], key: str
) -> None:
    # Empty, too long, and non-ASCII (sent as raw UTF-8 bytes) are all refused.
    org, owner, project = ctx
    response = await client.post(
        f"/orgs/{org}/tasks",
        json=TaskFactory.payload(project["id"]),
        headers={**owner.headers, "Idempotency-Key": key.encode()},
    )
    assert response.status_code == 400


async def test_a_failed_request_does_not_burn_the_key(
    client: httpx.AsyncClient, ctx: tuple[str, User, dict[str, object]], admin_engine: AsyncEngine
) -> None:
    org, owner, project = ctx
    headers = {**owner.headers, "Idempotency-Key": "fix-and-retry"}
    bad = await client.post(
        f"/orgs/{org}/tasks", json={"project_id": project["id"]}, headers=headers
    )
    assert bad.status_code == 422
    body = TaskFactory.payload(project["id"])
    good = await client.post(f"/orgs/{org}/tasks", json=body, headers=headers)
    assert good.status_code == 201
    assert await _tasks(admin_engine) == 1


async def test_a_key_is_free_again_after_its_retention_and_housekeeping_deletes_it(
    client: httpx.AsyncClient,
    ctx: tuple[str, User, dict[str, object]],
    admin_engine: AsyncEngine,
    database_url: str,
) -> None:
    org, owner, project = ctx
    headers = {**owner.headers, "Idempotency-Key": "kept-for-a-day"}

    async def expire_every_record() -> None:
        # The retention has passed (no waiting on the clock: the records are made older).
        async with admin_engine.begin() as conn:
            await conn.execute(
                update(IdempotencyRecord).values(expires_at=utcnow() - timedelta(seconds=1))
            )

    async def records() -> int:
        async with admin_engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(IdempotencyRecord))
        return int(count or 0)

    first = await client.post(
        f"/orgs/{org}/tasks", json=TaskFactory.payload(project["id"], title="a"), headers=headers
    )
    assert first.status_code == 201
    await expire_every_record()
    # Another body under the same key: past retention, it is a new request (not a 422).
    reused = await client.post(
        f"/orgs/{org}/tasks", json=TaskFactory.payload(project["id"], title="b"), headers=headers
    )
    assert reused.status_code == 201
    assert "idempotent-replayed" not in reused.headers
    assert await _tasks(admin_engine) == 2
    assert await records() == 1  # the expired record was replaced, not kept beside the new one

    await expire_every_record()
    settings = make_settings(database_url)
    db = Database(settings)
    jobs = JobsRuntime(settings, db)
    try:
        await jobs.relay.housekeeping()
    finally:
        await jobs.close()
        await db.dispose()
    assert await records() == 0
