"""CSV exports and imports through the API, run as in-process jobs."""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.resources.tasks.model import Task

from ..api import Api, User
from ..conftest import make_settings, running
from .conftest import eventually
from .csv_data import generate


@pytest.fixture
async def app_client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose files go to a temporary directory and whose exports stream in chunks of 7."""
    settings = make_settings(database_url, storage_dir=tmp_path / "files", export_chunk_rows=7)
    async with running(create_app(settings)) as client:
        yield client


async def _finished(client: httpx.AsyncClient, url: str, user: User) -> dict[str, Any]:
    result: dict[str, Any] = {}

    async def done() -> bool:
        response = await client.get(url, headers=user.headers)
        assert response.status_code == 200, response.text
        result.update(response.json())
        return result["status"] in ("done", "failed")

    await eventually(done, tries=1200)
    return result


async def _import(
    client: httpx.AsyncClient, org: str, project: str, user: User, data: bytes
) -> dict[str, Any]:
    response = await client.post(
        f"/orgs/{org}/projects/{project}/imports",
        files={"file": ("tasks.csv", data, "text/csv")},
        headers=user.headers,
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return await _finished(client, f"/orgs/{org}/imports/{response.json()['id']}", user)


async def test_import_of_a_hostile_10000_line_file_is_exact_and_idempotent(
    app_client: httpx.AsyncClient, admin_engine: AsyncEngine
) -> None:
    api = Api(app_client)
    owner = await api.user()
    org = await api.org(owner)
    project = (await api.project(org, owner))["id"]
    generated = generate(10_000)

    first = await _import(app_client, org, project, owner, generated.data)
    assert first["status"] == "done", first
    assert first["created"] == len(generated.good)
    assert (first["updated"], first["unchanged"]) == (0, 0)
    assert first["rejected"] == len(generated.bad_lines)
    reported = {e["line"]: e["reason"] for e in first["errors"]}
    assert sorted(reported) == sorted(generated.bad_lines)
    for line, reason in generated.bad_lines.items():
        assert reason in reported[line], (line, reported[line])

    async with AsyncSession(admin_engine) as session:
        count = await session.scalar(select(func.count()).select_from(Task))
        rows = {
            t.external_key: t
            for t in await session.scalars(
                select(Task).where(Task.external_key.in_(["imp-00003", "imp-00004", "imp-00007"]))
            )
        }
        stamp = await session.scalar(select(func.max(Task.updated_at)))
    assert count == len(generated.good)
    assert rows["imp-00003"].title == "多行\n标题 #3"  # a quoted newline survived
    assert rows["imp-00004"].title == "Line one\nline two\n\nline four #4"
    assert rows["imp-00007"].due_date == date(2000, 2, 29)  # a leap day
    assert rows["imp-00003"].status == "todo"  # empty status -> the default

    second = await _import(app_client, org, project, owner, generated.data)
    assert (second["created"], second["updated"]) == (0, 0)
    assert second["unchanged"] == len(generated.good)
    async with AsyncSession(admin_engine) as session:
        assert await session.scalar(select(func.max(Task.updated_at))) == stamp  # nothing written


async def test_export_streams_every_task_and_can_be_imported_back(
    app_client: httpx.AsyncClient,
) -> None:
    api = Api(app_client)
    owner = await api.user()
    org = await api.org(owner)
    project = (await api.project(org, owner))["id"]
    other_project = (await api.project(org, owner))["id"]
    generated = generate(40, bom=False)
    assert (await _import(app_client, org, project, owner, generated.data))["created"] == 39
    await api.task(org, owner, {"project_id": other_project, "title": "elsewhere"})

    started = await app_client.post(
        f"/orgs/{org}/projects/{project}/exports", headers=owner.headers
    )
    assert started.status_code == 202, started.text
    export = await _finished(app_client, f"/orgs/{org}/exports/{started.json()['id']}", owner)
    assert export["status"] == "done", export
    assert export["row_count"] == 39  # in 6 chunks of 7 rows
    download = await app_client.get(export["download_url"], headers=owner.headers)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.content.decode("utf-8"), newline="")))
    assert {r["external_key"]: r["title"] for r in rows} == {
        k: v["title"] for k, v in generated.good.items()
    }
    assert {r["external_key"]: r["due_date"] for r in rows} == {
        k: v["due"] for k, v in generated.good.items()
    }

    # The export, edited in a spreadsheet, goes back in: one change, the rest untouched.
    rows[0]["title"] = "Renamed ✏️"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    again = await _import(app_client, org, project, owner, buffer.getvalue().encode())
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, 38)


async def test_who_may_export_and_import(app_client: httpx.AsyncClient) -> None:
    api = Api(app_client)
    owner = await api.user()
    org = await api.org(owner)
    project = (await api.project(org, owner))["id"]
    viewer = await api.member(org, owner, "viewer")
    member = await api.member(org, owner, "member")
    outsider = await api.user()
    outsider_org = await api.org(outsider)

    url = f"/orgs/{org}/projects/{project}/exports"
    assert (await app_client.post(url, headers=viewer.headers)).status_code == 403
    started = await app_client.post(url, headers=member.headers)
    assert started.status_code == 202
    export_id = started.json()["id"]
    await _finished(app_client, f"/orgs/{org}/exports/{export_id}", member)
    assert (
        await app_client.get(f"/orgs/{outsider_org}/exports/{export_id}", headers=outsider.headers)
    ).status_code == 404
    assert (
        await app_client.get(f"/orgs/{org}/exports/{export_id}/download", headers=viewer.headers)
    ).status_code == 403

    denied = await app_client.post(
        f"/orgs/{org}/projects/{project}/imports",
        files={"file": ("t.csv", b"external_key,title\r\nk,t\r\n", "text/csv")},
        headers=member.headers,
    )
    assert denied.status_code == 403  # importing is for admins
    missing = await app_client.post(
        f"/orgs/{org}/projects/{outsider_org}/exports", headers=owner.headers
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"title,status\r\nx,todo\r\n", "lacks required columns ['external_key']"),
        ("external_key,title\r\nk-1,caf\u00e9\r\n".encode("latin-1"), "not UTF-8"),
        (b'external_key,title\r\nk-1,"unterminated\r\n', "not valid CSV"),
    ],
)
async def test_an_unreadable_file_fails_the_import_with_a_reason(
    app_client: httpx.AsyncClient, data: bytes, reason: str
) -> None:
    api = Api(app_client)
    owner = await api.user()
    org = await api.org(owner)
    project = (await api.project(org, owner))["id"]
    result = await _import(app_client, org, project, owner, data)
    assert result["status"] == "failed"
    assert reason in result["error"]
    assert result["created"] == 0


async def test_upload_limits_are_clear_4xx(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, storage_dir=tmp_path, import_max_bytes=64)
    async with running(create_app(settings)) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = (await api.project(org, owner))["id"]
        url = f"/orgs/{org}/projects/{project}/imports"
        big = await client.post(
            url, files={"file": ("t.csv", b"x" * 65, "text/csv")}, headers=owner.headers
        )
        assert big.status_code == 413
        empty = await client.post(
            url, files={"file": ("t.csv", b"", "text/csv")}, headers=owner.headers
        )
        assert empty.status_code == 422
        no_file = await client.post(url, headers=owner.headers)
        assert no_file.status_code == 422
    assert not list((tmp_path / "imports").glob("*"))  # nothing left behind


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_with_redis_down_exports_wait_and_the_api_keeps_working(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url, storage_dir=tmp_path, redis_url=f"redis://127.0.0.1:{_dead_port()}/0"
    )
    async with running(create_app(settings)) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = (await api.project(org, owner))["id"]
        started = await client.post(
            f"/orgs/{org}/projects/{project}/exports", headers=owner.headers
        )
        assert started.status_code == 202
        export = await client.get(
            f"/orgs/{org}/exports/{started.json()['id']}", headers=owner.headers
        )
        assert export.json()["status"] == "queued"
        early = await client.get(
            f"/orgs/{org}/exports/{started.json()['id']}/download", headers=owner.headers
        )
        assert early.status_code == 409


async def test_an_export_that_keeps_failing_is_marked_failed(
    database_url: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the storage directory should be")
    settings = make_settings(database_url, storage_dir=blocker)
    async with running(create_app(settings)) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = (await api.project(org, owner))["id"]
        started = await client.post(
            f"/orgs/{org}/projects/{project}/exports", headers=owner.headers
        )
        export = await _finished(client, f"/orgs/{org}/exports/{started.json()['id']}", owner)
        assert export["status"] == "failed"
        assert "NotADirectoryError" in export["error"] or "FileExistsError" in export["error"]
        dead = await client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)
        assert [d["job_name"] for d in dead.json()] == ["exports.tasks_csv"]
