"""GET /orgs/{org_id}/stats: exact counts while cheap, planner estimates (labelled) beyond."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from {{ cookiecutter.package_name }}.app import create_app

from .api import Api
from .conftest import make_settings, migrate, running
from .factories import TaskFactory


def exact(value: int) -> dict[str, object]:
    return {"value": value, "approximate": False, "method": "exact"}


async def test_small_organizations_get_exact_counts(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    viewer = await api.member(org, owner, "viewer")
    project = await api.project(org, owner)
    await api.project(org, owner)
    for status in ("todo", "todo", "done"):
        await api.task(org, owner, TaskFactory.payload(project["id"], status=status))
    other = await api.org(owner, "Another tenant")  # its rows are never counted here
    await api.project(other, owner)

    response = await client.get(f"/orgs/{org}/stats", headers=viewer.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["org_id"] == org
    assert body["members"] == exact(2)
    assert body["projects"] == exact(2)
    assert body["tasks"] == exact(3)
    assert body["tasks_by_status"] == {"todo": exact(2), "in_progress": exact(0), "done": exact(1)}


async def test_stats_are_for_members_only(api: Api, client: httpx.AsyncClient) -> None:
    owner, stranger = await api.user(), await api.user()
    org = await api.org(owner)
    response = await client.get(f"/orgs/{org}/stats", headers=stranger.headers)
    assert response.status_code == 404
    assert (await client.get(f"/orgs/{org}/stats")).status_code == 401


async def test_large_counts_are_planner_estimates(
    database_url: str, admin_engine: AsyncEngine
) -> None:
    app = create_app(make_settings(database_url, stats_exact_count_limit=10))
    async with running(app) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = await api.project(org, owner)
        async with admin_engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tasks (id, org_id, project_id, title, status, created_at,"
                    " updated_at) SELECT gen_random_uuid(), :org, :project, 't' || n,"
                    " CASE WHEN n % 4 = 0 THEN 'done' ELSE 'todo' END, now(), now()"
                    " FROM generate_series(1, 400) AS n"
                ),
                {"org": uuid.UUID(org), "project": uuid.UUID(project["id"])},
            )
        async with admin_engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE tasks"))
        body = (await client.get(f"/orgs/{org}/stats", headers=owner.headers)).json()
    tasks = body["tasks"]
    assert tasks["approximate"] is True
    assert tasks["method"] == "planner_estimate"
    assert tasks["value"] >= 11
    assert abs(tasks["value"] - 400) <= 40  # fresh statistics: the estimate is close
    assert body["tasks_by_status"]["done"]["approximate"] is True
    assert abs(body["tasks_by_status"]["done"]["value"] - 100) <= 30
    assert body["tasks_by_status"]["in_progress"] == exact(0)
    assert body["projects"] == exact(1)
    assert body["exact_limit"] == 10


async def test_sqlite_counts_exactly(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stats.db'}"
    await asyncio.to_thread(migrate, url)
    async with running(create_app(make_settings(url, stats_exact_count_limit=1))) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = await api.project(org, owner)
        for _ in range(3):
            await api.task(org, owner, TaskFactory.payload(project["id"]))
        body = (await client.get(f"/orgs/{org}/stats", headers=owner.headers)).json()
    assert body["tasks"] == exact(3)  # above the limit, yet exact: no planner on SQLite
    assert body["members"] == exact(1)
