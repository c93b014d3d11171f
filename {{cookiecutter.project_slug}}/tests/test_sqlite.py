"""Smoke test of the zero-infrastructure mode: SQLite file, migrated by alembic, no Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

from {{ cookiecutter.package_name }}.app import create_app

from .api import Api
from .conftest import make_settings, migrate, running
from .factories import TaskFactory


async def test_the_service_runs_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    await asyncio.to_thread(migrate, url)  # alembic runs its own event loop
    async with running(create_app(make_settings(url))) as client:
        api = Api(client)
        owner = await api.user("Embedded.User@Example.com")
        org = await api.org(owner)
        project = await api.project(org, owner)
        ids = [
            (await api.task(org, owner, TaskFactory.payload(project["id"])))["id"] for _ in range(5)
        ]

        page1 = await client.get(f"/orgs/{org}/tasks", params={"limit": 3}, headers=owner.headers)
        page2 = await client.get(
            f"/orgs/{org}/tasks",
            params={"limit": 3, "cursor": page1.json()["next_cursor"]},
            headers=owner.headers,
        )
        seen = [t["id"] for t in page1.json()["items"] + page2.json()["items"]]
        assert seen == list(reversed(ids))
        assert page2.json()["next_cursor"] is None

        url_key = f"/orgs/{org}/tasks/by-key/EMB-1"
        body = {"project_id": project["id"], "title": "Upserted on SQLite"}
        assert (await client.put(url_key, json=body, headers=owner.headers)).status_code == 201
        assert (await client.put(url_key, json=body, headers=owner.headers)).status_code == 200

        headers = {**owner.headers, "Idempotency-Key": "sqlite-1"}
        body = TaskFactory.payload(project["id"], title="Once")
        one = await client.post(f"/orgs/{org}/tasks", json=body, headers=headers)
        two = await client.post(f"/orgs/{org}/tasks", json=body, headers=headers)
        other = await client.post(
            f"/orgs/{org}/tasks", json={**body, "title": "Another"}, headers=headers
        )
        assert one.status_code == two.status_code == 201
        assert two.headers["idempotent-replayed"] == "true"
        assert two.content == one.content
        assert other.status_code == 422
        assert (await client.get("/health/ready")).json()["checks"] == {"database": "ok"}
    await asyncio.to_thread(migrate, url, "base", down=True)
