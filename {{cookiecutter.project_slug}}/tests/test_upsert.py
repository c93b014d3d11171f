"""PUT by external key: INSERT ... ON CONFLICT, so re-sending never duplicates."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.resources.tasks.model import Task
from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository

from .api import Api


async def test_put_creates_then_updates_then_changes_nothing(
    api: Api, client: httpx.AsyncClient, admin_engine: AsyncEngine
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    url = f"/orgs/{org}/tasks/by-key/JIRA-42"
    body = {"project_id": project["id"], "title": "Imported", "due_date": "2024-02-29"}

    created = await client.put(url, json=body, headers=owner.headers)
    assert created.status_code == 201
    assert created.json()["external_key"] == "JIRA-42"

    same = await client.put(url, json=body, headers=owner.headers)
    assert same.status_code == 200
    assert same.json()["id"] == created.json()["id"]
    assert same.json()["updated_at"] == created.json()["updated_at"]  # nothing written

    changed = await client.put(url, json={**body, "title": "Renamed"}, headers=owner.headers)
    assert changed.status_code == 200
    assert changed.json()["title"] == "Renamed"
    assert changed.json()["updated_at"] > created.json()["updated_at"]

    async with admin_engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(Task))
    assert count == 1


async def test_concurrent_puts_of_one_key_make_one_row(
    api: Api, client: httpx.AsyncClient, admin_engine: AsyncEngine
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    body = {"project_id": project["id"], "title": "Race"}
    responses = await asyncio.gather(
        *(
            client.put(f"/orgs/{org}/tasks/by-key/race-1", json=body, headers=owner.headers)
            for _ in range(6)
        )
    )
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    async with admin_engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(Task))
    assert count == 1


async def test_same_key_in_two_orgs_are_two_tasks(api: Api, client: httpx.AsyncClient) -> None:
    a, b = await api.user(), await api.user()
    org_a, org_b = await api.org(a), await api.org(b)
    pa, pb = await api.project(org_a, a), await api.project(org_b, b)
    ra = await client.put(
        f"/orgs/{org_a}/tasks/by-key/K1",
        json={"project_id": pa["id"], "title": "A"},
        headers=a.headers,
    )
    rb = await client.put(
        f"/orgs/{org_b}/tasks/by-key/K1",
        json={"project_id": pb["id"], "title": "B"},
        headers=b.headers,
    )
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]


async def test_bad_external_key_is_a_422(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    response = await client.put(
        f"/orgs/{org}/tasks/by-key/-bad key!",
        json={"project_id": project["id"], "title": "x"},
        headers=owner.headers,
    )
    assert response.status_code == 422


async def test_upsert_keeps_the_first_completion_time(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    url = f"/orgs/{org}/tasks/by-key/DONE-1"
    body = {"project_id": project["id"], "title": "t", "status": "done"}
    first = (await client.put(url, json=body, headers=owner.headers)).json()
    renamed = (await client.put(url, json={**body, "title": "t2"}, headers=owner.headers)).json()
    assert first["completed_at"] is not None
    assert renamed["completed_at"] == first["completed_at"]
    reopened = (
        await client.put(url, json={**body, "status": "todo"}, headers=owner.headers)
    ).json()
    assert reopened["completed_at"] is None


async def _by_key(engine: AsyncEngine, column: Any) -> dict[str | None, Any]:
    async with AsyncSession(engine) as session:
        rows = await session.execute(select(Task.external_key, column))
        return {row[0]: row[1] for row in rows}


async def test_a_batch_upsert_names_what_it_created_and_updated(
    api: Api, admin_engine: AsyncEngine
) -> None:
    """The batch form (CSV imports): the ids per outcome, and completion times kept or cleared
    as the single upsert keeps them."""
    owner = await api.user()
    org = uuid.UUID(await api.org(owner))
    project = uuid.UUID((await api.project(str(org), owner))["id"])

    def row(title: str, status: str = "todo") -> dict[str, Any]:
        return {"project_id": project, "title": title, "status": status, "due_date": None}

    async with AsyncSession(admin_engine) as session, session.begin():
        first = await TaskRepository(session, org).upsert_many_by_key(
            [("A", row("a", "done")), ("B", row("b", "done")), ("C", row("c"))]
        )
    assert (len(first.created), first.updated, first.unchanged) == (3, [], 0)
    done_at = await _by_key(admin_engine, Task.completed_at)
    assert done_at["A"] is not None
    assert done_at["B"] is not None
    assert done_at["C"] is None

    async with AsyncSession(admin_engine) as session, session.begin():
        second = await TaskRepository(session, org).upsert_many_by_key(
            [("A", row("a", "done")), ("B", row("b again", "done")), ("C", row("c", "in_progress"))]
        )
    ids = await _by_key(admin_engine, Task.id)
    assert second.created == []
    assert sorted(second.updated) == sorted([ids["B"], ids["C"]])
    assert second.unchanged == 1
    again = await _by_key(admin_engine, Task.completed_at)
    assert again["B"] == done_at["B"]  # still done: the first completion time stays
    assert again["C"] is None
