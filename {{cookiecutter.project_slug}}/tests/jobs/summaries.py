"""Helpers for AI summary tests: a project with tasks, and a summary requested and awaited."""

from __future__ import annotations

from typing import Any

import httpx

from ..api import Api, User
from .conftest import eventually


async def project_with_tasks(api: Api) -> tuple[User, str, str]:
    """An owner, an org and a project with three tasks (Unicode, a newline, a leap day)."""
    owner = await api.user()
    org = await api.org(owner)
    project = (await api.project(org, owner, name="Launch 🚀"))["id"]
    for title, status, due in (
        ("Ship it 🚀", "todo", "2024-02-29"),
        ("Write\nrelease notes", "done", None),
        ("Tell the world", "in_progress", None),
    ):
        body: dict[str, Any] = {"project_id": project, "title": title, "status": status}
        if due:
            body["due_date"] = due
        await api.task(org, owner, body)
    return owner, org, project


async def summary(client: httpx.AsyncClient, user: User, org: str, project: str) -> dict[str, Any]:
    """Request a summary (202, queued) and poll it until it is done or failed."""
    started = await client.post(f"/orgs/{org}/projects/{project}/summary", headers=user.headers)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued"
    url = f"/orgs/{org}/projects/{project}/summary/{started.json()['id']}"
    result: dict[str, Any] = {}

    async def finished() -> bool:
        response = await client.get(url, headers=user.headers)
        result.update(response.json())
        return result["status"] in ("done", "failed")

    await eventually(finished)
    return result
