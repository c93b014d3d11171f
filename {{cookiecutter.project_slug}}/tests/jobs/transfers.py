"""Exports and imports through the API: start one, wait (a bounded number of polls) for its job."""

from __future__ import annotations

from typing import Any

import httpx

from ..api import User
from .conftest import eventually


async def finished(client: httpx.AsyncClient, url: str, user: User) -> dict[str, Any]:
    """Poll an export or import until its job is done or failed; its last state."""
    result: dict[str, Any] = {}

    async def done() -> bool:
        response = await client.get(url, headers=user.headers)
        assert response.status_code == 200, response.text
        result.update(response.json())
        return result["status"] in ("done", "failed")

    await eventually(done, tries=1200)
    return result


async def import_csv(
    client: httpx.AsyncClient, org: str, project: str, user: User, data: bytes
) -> dict[str, Any]:
    """Upload `data` as an import into the project and wait for the report."""
    response = await client.post(
        f"/orgs/{org}/projects/{project}/imports",
        files={"file": ("tasks.csv", data, "text/csv")},
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return await finished(client, f"/orgs/{org}/imports/{response.json()['id']}", user)


async def export_csv(
    client: httpx.AsyncClient, org: str, project: str, user: User
) -> tuple[dict[str, Any], bytes]:
    """Export the project's tasks; the finished export and the bytes of its download."""
    started = await client.post(f"/orgs/{org}/projects/{project}/exports", headers=user.headers)
    assert started.status_code == 202, started.text
    export = await finished(client, f"/orgs/{org}/exports/{started.json()['id']}", user)
    assert export["status"] == "done", export
    download = await client.get(export["download_url"], headers=user.headers)
    assert download.status_code == 200, download.text
    return export, download.content
