"""CRUD of the example resources, their validation, and the tenant boundary on references."""

from __future__ import annotations

import uuid

import httpx
import pytest

from .api import Api, User
from .factories import LEAP_DAYS, WEIRD_TITLES, TaskFactory


@pytest.fixture
async def owner(api: Api) -> User:
    return await api.user()


async def test_project_crud(api: Api, client: httpx.AsyncClient, owner: User) -> None:
    org = await api.org(owner)
    project = await api.project(org, owner, name="Roadmap 🗺️")
    url = f"/orgs/{org}/projects/{project['id']}"
    assert (await client.get(url, headers=owner.headers)).json()["name"] == "Roadmap 🗺️"
    patched = await client.patch(url, json={"description": "Q1"}, headers=owner.headers)
    assert patched.json()["name"] == "Roadmap 🗺️"  # untouched: not sent
    assert patched.json()["description"] == "Q1"
    assert (await client.patch(url, json={"name": None}, headers=owner.headers)).status_code == 422
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404


@pytest.mark.parametrize("title", WEIRD_TITLES)
async def test_weird_but_valid_titles_round_trip(
    api: Api, client: httpx.AsyncClient, owner: User, title: str
) -> None:
    org = await api.org(owner)
    project = await api.project(org, owner)
    task = await api.task(org, owner, TaskFactory.payload(project["id"], title=title))
    assert task["title"] == title.strip()
    fetched = await client.get(f"/orgs/{org}/tasks/{task['id']}", headers=owner.headers)
    assert fetched.json()["title"] == title.strip()


@pytest.mark.parametrize("due", LEAP_DAYS)
async def test_leap_day_due_dates(api: Api, owner: User, due: object) -> None:
    org = await api.org(owner)
    project = await api.project(org, owner)
    task = await api.task(org, owner, TaskFactory.payload(project["id"], due_date=due))
    assert task["due_date"] == str(due)


async def test_task_crud_embeds_the_project(
    api: Api, client: httpx.AsyncClient, owner: User
) -> None:
    org = await api.org(owner)
    first = await api.project(org, owner)
    second = await api.project(org, owner)
    task = await api.task(org, owner, TaskFactory.payload(first["id"]))
    assert task["project"] == {"id": first["id"], "name": first["name"]}
    url = f"/orgs/{org}/tasks/{task['id']}"
    moved = await client.patch(
        url, json={"project_id": second["id"], "status": "done"}, headers=owner.headers
    )
    assert moved.status_code == 200
    assert moved.json()["project"]["id"] == second["id"]
    assert moved.json()["status"] == "done"
    assert (await client.patch(url, json={"title": None}, headers=owner.headers)).status_code == 422
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404


async def test_a_task_cannot_point_at_another_tenants_project(
    api: Api, client: httpx.AsyncClient, owner: User
) -> None:
    org_a = await api.org(owner)
    other = await api.user()
    org_b = await api.org(other)
    foreign = await api.project(org_b, other)
    response = await client.post(
        f"/orgs/{org_a}/tasks", json=TaskFactory.payload(foreign["id"]), headers=owner.headers
    )
    assert response.status_code == 422
    assert "project_id" in response.json()["detail"]


async def test_assignee_must_be_a_member(api: Api, client: httpx.AsyncClient, owner: User) -> None:
    org = await api.org(owner)
    project = await api.project(org, owner)
    outsider = await api.user()
    response = await client.post(
        f"/orgs/{org}/tasks",
        json=TaskFactory.payload(project["id"], assignee_id=uuid.UUID(outsider.id)),
        headers=owner.headers,
    )
    assert response.status_code == 422


async def test_members_edit_only_their_own_or_unassigned_tasks(
    api: Api, client: httpx.AsyncClient, owner: User
) -> None:
    org = await api.org(owner)
    project = await api.project(org, owner)
    alice = await api.member(org, owner, "member")
    bob = await api.member(org, owner, "member")
    alices = await api.task(
        org, owner, TaskFactory.payload(project["id"], assignee_id=uuid.UUID(alice.id))
    )
    unassigned = await api.task(org, owner, TaskFactory.payload(project["id"]))
    by_bob = await client.patch(
        f"/orgs/{org}/tasks/{alices['id']}", json={"status": "done"}, headers=bob.headers
    )
    assert by_bob.status_code == 403
    by_alice = await client.patch(
        f"/orgs/{org}/tasks/{alices['id']}", json={"status": "done"}, headers=alice.headers
    )
    assert by_alice.status_code == 200
    on_unassigned = await client.patch(
        f"/orgs/{org}/tasks/{unassigned['id']}", json={"status": "done"}, headers=bob.headers
    )
    assert on_unassigned.status_code == 200


async def test_completed_at_follows_the_status(
    api: Api, client: httpx.AsyncClient, owner: User
) -> None:
    org = await api.org(owner)
    project = await api.project(org, owner)
    task = await api.task(org, owner, TaskFactory.payload(project["id"], status="todo"))
    assert task["completed_at"] is None
    url = f"/orgs/{org}/tasks/{task['id']}"
    done = (await client.patch(url, json={"status": "done"}, headers=owner.headers)).json()
    assert done["completed_at"] is not None
    renamed = (await client.patch(url, json={"title": "still done"}, headers=owner.headers)).json()
    assert renamed["completed_at"] == done["completed_at"]
    reopened = (await client.patch(url, json={"status": "todo"}, headers=owner.headers)).json()
    assert reopened["completed_at"] is None
