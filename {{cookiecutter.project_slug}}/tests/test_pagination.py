"""Keyset pagination: every row exactly once, signed cursors, a capped page size."""

from __future__ import annotations

import httpx
import pytest

from .api import Api, User
from .factories import TaskFactory


@pytest.fixture
async def seeded(api: Api) -> tuple[str, User, dict[str, object], list[str]]:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    ids = [
        (await api.task(org, owner, TaskFactory.payload(project["id"])))["id"] for _ in range(23)
    ]
    return org, owner, project, ids


async def walk(
    client: httpx.AsyncClient, url: str, user: User, limit: int, **filters: str
) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": limit, **filters}
        if cursor:
            params["cursor"] = cursor
        page = await client.get(url, params=params, headers=user.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= limit
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("limit", [1, 5, 7, 23, 100])
async def test_walk_returns_every_row_exactly_once_newest_first(
    client: httpx.AsyncClient, seeded: tuple[str, User, dict[str, object], list[str]], limit: int
) -> None:
    org, owner, _, ids = seeded
    seen = await walk(client, f"/orgs/{org}/tasks", owner, limit)
    assert seen == list(reversed(ids))


async def test_last_page_has_no_next_cursor(
    client: httpx.AsyncClient, seeded: tuple[str, User, dict[str, object], list[str]]
) -> None:
    org, owner, _, _ = seeded
    page = await client.get(f"/orgs/{org}/tasks", params={"limit": 23}, headers=owner.headers)
    assert page.json()["next_cursor"] is None


async def test_page_size_over_the_cap_is_a_422_naming_the_cap(
    client: httpx.AsyncClient, seeded: tuple[str, User, dict[str, object], list[str]]
) -> None:
    org, owner, _, _ = seeded
    page = await client.get(f"/orgs/{org}/tasks", params={"limit": 101}, headers=owner.headers)
    assert page.status_code == 422
    assert "100" in page.json()["detail"]
    zero = await client.get(f"/orgs/{org}/tasks", params={"limit": 0}, headers=owner.headers)
    assert zero.status_code == 422


def _tamper(cursor: str) -> list[str]:
    payload, _, signature = cursor.rpartition(".")

    def flip(text: str, i: int) -> str:
        return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]

    return [
        f"{flip(payload, 0)}.{signature}",
        f"{flip(payload, len(payload) // 2)}.{signature}",
        f"{payload}.{flip(signature, 0)}",
        cursor[:-2],
        cursor + "x",
        "garbage",
        signature,
    ]


async def test_tampered_cursor_is_a_400(
    client: httpx.AsyncClient, seeded: tuple[str, User, dict[str, object], list[str]]
) -> None:
    org, owner, _, _ = seeded
    first = await client.get(f"/orgs/{org}/tasks", params={"limit": 5}, headers=owner.headers)
    for bad in _tamper(first.json()["next_cursor"]):
        page = await client.get(f"/orgs/{org}/tasks", params={"cursor": bad}, headers=owner.headers)
        assert page.status_code == 400, bad
        assert page.json()["title"] == "Invalid cursor"


async def test_cursor_of_another_filter_or_tenant_is_a_400(
    api: Api, client: httpx.AsyncClient, seeded: tuple[str, User, dict[str, object], list[str]]
) -> None:
    org, owner, project, _ = seeded
    first = await client.get(f"/orgs/{org}/tasks", params={"limit": 5}, headers=owner.headers)
    cursor = first.json()["next_cursor"]
    filtered = await client.get(
        f"/orgs/{org}/tasks",
        params={"cursor": cursor, "project_id": str(project["id"])},
        headers=owner.headers,
    )
    assert filtered.status_code == 400
    other_org = await api.org(owner, "Second org")
    foreign = await client.get(
        f"/orgs/{other_org}/tasks", params={"cursor": cursor}, headers=owner.headers
    )
    assert foreign.status_code == 400


async def test_filters_combine_with_paging(
    api: Api, client: httpx.AsyncClient, seeded: tuple[str, User, dict[str, object], list[str]]
) -> None:
    org, owner, _, _ = seeded
    other = await api.project(org, owner)
    mine = [
        (await api.task(org, owner, TaskFactory.payload(other["id"], status="done")))["id"]
        for _ in range(4)
    ]
    seen = await walk(
        client, f"/orgs/{org}/tasks", owner, 3, project_id=str(other["id"]), status="done"
    )
    assert seen == list(reversed(mine))


async def test_a_listed_task_reads_as_its_single_get(api: Api, client: httpx.AsyncClient) -> None:
    """The list writes rows as they are (PageResponse), the single read through TaskOut: every
    field a task can have must come out the same both ways."""
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner, name="Prøject ✓")
    bodies = [
        TaskFactory.payload(project["id"]),
        TaskFactory.payload(project["id"], title='Ünïcode \u2028 "quoted" \\ tab\t', status="done"),
        TaskFactory.payload(
            project["id"], due_date="2031-02-28", external_key="EXT-1", assignee_id=owner.id
        ),
    ]
    for body in bodies:
        await api.task(org, owner, body)
    listed = await client.get(f"/orgs/{org}/tasks", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert len(items) == len(bodies)
    assert any(item["completed_at"] for item in items)  # the done task: a completion time
    for item in items:
        single = await client.get(f"/orgs/{org}/tasks/{item['id']}", headers=owner.headers)
        assert single.json() == item
        assert list(single.json()) == list(item)  # the fields in the same order too
