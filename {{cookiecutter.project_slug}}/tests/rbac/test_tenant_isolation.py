"""A user of org A reaches nothing of org B: not by id, list, filter, cursor, key or reference,
nor B's exports, imports, webhooks, AI summaries or dead letters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs import dead_letters
from {{ cookiecutter.package_name }}.jobs.ai.summary import AiSummary

from ..api import Api, User
from ..conftest import make_settings
from ..factories import TaskFactory


@dataclass
class Tenant:
    owner: User
    org: str
    project: dict[str, Any]
    task: dict[str, Any]


async def _tenant(api: Api, name: str) -> Tenant:
    owner = await api.user()
    org = await api.org(owner, name)
    project = await api.project(org, owner)
    task = await api.task(
        org, owner, {**TaskFactory.payload(project["id"]), "external_key": "SHARED-1"}
    )
    return Tenant(owner, org, project, task)


@pytest.fixture
async def tenants(api: Api) -> tuple[Tenant, Tenant]:
    return await _tenant(api, "Tenant A"), await _tenant(api, "Tenant B")


async def test_ids_of_the_other_tenant_are_not_found_anywhere(
    client: httpx.AsyncClient, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    h = a.owner.headers
    # B's objects under A's organization path: the tenant filter hides them.
    for method, path, body in [
        ("GET", f"/orgs/{a.org}/projects/{b.project['id']}", None),
        ("PATCH", f"/orgs/{a.org}/projects/{b.project['id']}", {"name": "pwned"}),
        ("DELETE", f"/orgs/{a.org}/projects/{b.project['id']}", None),
        ("GET", f"/orgs/{a.org}/tasks/{b.task['id']}", None),
        ("PATCH", f"/orgs/{a.org}/tasks/{b.task['id']}", {"title": "pwned"}),
        ("DELETE", f"/orgs/{a.org}/tasks/{b.task['id']}", None),
        # B's organization path itself: A is not a member, so it does not exist for A.
        ("GET", f"/orgs/{b.org}", None),
        ("GET", f"/orgs/{b.org}/projects", None),
        ("GET", f"/orgs/{b.org}/tasks", None),
        ("GET", f"/orgs/{b.org}/tasks/{b.task['id']}", None),
        ("DELETE", f"/orgs/{b.org}/tasks/{b.task['id']}", None),
        (
            "PUT",
            f"/orgs/{b.org}/tasks/by-key/SHARED-1",
            {"project_id": b.project["id"], "title": "x"},
        ),
        ("GET", f"/orgs/{b.org}/members", None),
    ]:
        response = await client.request(method, path, json=body, headers=h)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
    # Nothing of B changed.
    task = await client.get(f"/orgs/{b.org}/tasks/{b.task['id']}", headers=b.owner.headers)
    assert task.json()["title"] == b.task["title"]


async def test_lists_and_filters_show_only_the_own_tenant(
    client: httpx.AsyncClient, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    tasks = await client.get(f"/orgs/{a.org}/tasks", headers=a.owner.headers)
    assert [t["id"] for t in tasks.json()["items"]] == [a.task["id"]]
    filtered = await client.get(
        f"/orgs/{a.org}/tasks", params={"project_id": b.project["id"]}, headers=a.owner.headers
    )
    assert filtered.status_code == 200
    assert filtered.json()["items"] == []
    projects = await client.get(f"/orgs/{a.org}/projects", headers=a.owner.headers)
    assert [p["id"] for p in projects.json()["items"]] == [a.project["id"]]


async def test_a_cursor_minted_for_the_other_tenant_is_refused(
    api: Api, client: httpx.AsyncClient, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    await api.task(b.org, b.owner, TaskFactory.payload(b.project["id"]))
    page = await client.get(f"/orgs/{b.org}/tasks", params={"limit": 1}, headers=b.owner.headers)
    foreign_cursor = page.json()["next_cursor"]
    assert foreign_cursor
    response = await client.get(
        f"/orgs/{a.org}/tasks", params={"cursor": foreign_cursor}, headers=a.owner.headers
    )
    assert response.status_code == 400


async def test_the_natural_key_is_per_tenant(
    client: httpx.AsyncClient, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    upsert = await client.put(
        f"/orgs/{a.org}/tasks/by-key/SHARED-1",
        json={"project_id": a.project["id"], "title": "A's own"},
        headers=a.owner.headers,
    )
    assert upsert.status_code == 200
    assert upsert.json()["id"] == a.task["id"]
    theirs = await client.get(f"/orgs/{b.org}/tasks/{b.task['id']}", headers=b.owner.headers)
    assert theirs.json()["title"] == b.task["title"]


async def test_references_across_tenants_are_rejected(
    client: httpx.AsyncClient, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    for method, path, body in [
        ("POST", f"/orgs/{a.org}/tasks", {"project_id": b.project["id"], "title": "x"}),
        ("PATCH", f"/orgs/{a.org}/tasks/{a.task['id']}", {"project_id": b.project["id"]}),
        ("PUT", f"/orgs/{a.org}/tasks/by-key/NEW-1", {"project_id": b.project["id"], "title": "x"}),
        ("PATCH", f"/orgs/{a.org}/tasks/{a.task['id']}", {"assignee_id": b.owner.id}),
    ]:
        response = await client.request(method, path, json=body, headers=a.owner.headers)
        assert response.status_code == 422, f"{method} {path}: {response.text}"


async def test_an_idempotency_key_never_replays_another_users_response(
    client: httpx.AsyncClient, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    key = {"Idempotency-Key": "same-key-everywhere"}
    from_b = await client.post(
        f"/orgs/{b.org}/projects", json={"name": "B secret"}, headers={**b.owner.headers, **key}
    )
    from_a = await client.post(
        f"/orgs/{a.org}/projects", json={"name": "B secret"}, headers={**a.owner.headers, **key}
    )
    assert from_b.status_code == from_a.status_code == 201
    assert "idempotent-replayed" not in from_a.headers
    assert from_a.json()["id"] != from_b.json()["id"]


CSV = {"file": ("tasks.csv", b"external_key,title\nISO-1,Imported\n")}


async def _jobs_of(
    client: httpx.AsyncClient, tenant: Tenant, admin_engine: AsyncEngine, database_url: str
) -> dict[str, str]:
    """One export, import, webhook, AI summary and dead letter of `tenant`; their ids."""
    h = tenant.owner.headers
    project = tenant.project["id"]
    export = await client.post(f"/orgs/{tenant.org}/projects/{project}/exports", headers=h)
    upload = await client.post(
        f"/orgs/{tenant.org}/projects/{project}/imports", files=CSV, headers=h
    )
    # An event no step here emits: the import's task.created would add a dead letter.
    body = {"url": "http://127.0.0.1:9/hook", "events": ["project.deleted"]}
    hook = await client.post(f"/orgs/{tenant.org}/webhooks", json=body, headers=h)
    assert (export.status_code, upload.status_code, hook.status_code) == (202, 202, 201)
    # Written directly: requesting one is behind a feature flag, and no job needs to run.
    summary = AiSummary(
        org_id=uuid.UUID(tenant.org),
        project_id=uuid.UUID(project),
        requested_by=uuid.UUID(tenant.owner.id),
        status="done",
    )
    async with AsyncSession(admin_engine, expire_on_commit=False) as session, session.begin():
        session.add(summary)
    db = Database(make_settings(database_url))
    try:
        letter = await dead_letters.record(
            db, "test.isolation", {}, {"org_id": tenant.org}, "HTTP 500: boom", 3
        )
    finally:
        await db.dispose()
    return {
        "export": export.json()["id"],
        "import": upload.json()["id"],
        "webhook": hook.json()["id"],
        "summary": str(summary.id),
        "letter": str(letter),
    }


async def test_the_other_tenants_jobs_are_not_found(
    client: httpx.AsyncClient,
    tenants: tuple[Tenant, Tenant],
    admin_engine: AsyncEngine,
    database_url: str,
) -> None:
    a, b = tenants
    theirs = await _jobs_of(client, b, admin_engine, database_url)
    b_project, a_project = b.project["id"], a.project["id"]
    for method, path, files in [
        # B's objects under A's organization path, by their real ids.
        ("POST", f"/orgs/{a.org}/projects/{b_project}/exports", None),
        ("GET", f"/orgs/{a.org}/exports/{theirs['export']}", None),
        ("GET", f"/orgs/{a.org}/exports/{theirs['export']}/download", None),
        ("POST", f"/orgs/{a.org}/projects/{b_project}/imports", CSV),
        ("GET", f"/orgs/{a.org}/imports/{theirs['import']}", None),
        ("GET", f"/orgs/{a.org}/webhooks/{theirs['webhook']}", None),
        ("DELETE", f"/orgs/{a.org}/webhooks/{theirs['webhook']}", None),
        ("POST", f"/orgs/{a.org}/projects/{b_project}/summary", None),
        ("GET", f"/orgs/{a.org}/projects/{a_project}/summary/{theirs['summary']}", None),
        ("GET", f"/orgs/{a.org}/projects/{b_project}/summary/{theirs['summary']}", None),
        ("POST", f"/orgs/{a.org}/dead-letters/{theirs['letter']}/replay", None),
        # B's organization path itself: A is not a member.
        ("GET", f"/orgs/{b.org}/exports/{theirs['export']}", None),
        ("GET", f"/orgs/{b.org}/imports/{theirs['import']}", None),
        ("GET", f"/orgs/{b.org}/webhooks", None),
        ("GET", f"/orgs/{b.org}/dead-letters", None),
    ]:
        response = await client.request(method, path, files=files, headers=a.owner.headers)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
    # A's own lists show none of B's.
    hooks = await client.get(f"/orgs/{a.org}/webhooks", headers=a.owner.headers)
    letters = await client.get(f"/orgs/{a.org}/dead-letters", headers=a.owner.headers)
    assert (hooks.json(), letters.json()) == ([], [])
    # And B's are all still there.
    hook = await client.get(f"/orgs/{b.org}/webhooks/{theirs['webhook']}", headers=b.owner.headers)
    assert hook.status_code == 200
    own_letters = await client.get(f"/orgs/{b.org}/dead-letters", headers=b.owner.headers)
    assert [letter["id"] for letter in own_letters.json()] == [theirs["letter"]]
