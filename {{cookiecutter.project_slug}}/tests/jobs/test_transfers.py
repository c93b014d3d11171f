"""CSV exports and imports through the API, run as in-process jobs."""

from __future__ import annotations

import csv
import io
import socket
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.seed import seed
from {{ cookiecutter.package_name }}.jobs.registry import JobEnv
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.jobs.transfers.exports import COLUMNS, export_tasks
from {{ cookiecutter.package_name }}.jobs.transfers.imports import import_tasks
from {{ cookiecutter.package_name }}.jobs.transfers.model import ExportJob
from {{ cookiecutter.package_name }}.resources.projects.model import Project
from {{ cookiecutter.package_name }}.resources.tasks.model import Task
from {{ cookiecutter.package_name }}.settings import Settings

from ..api import Api, User
from ..conftest import REDIS_URL, make_settings, running
from .csv_data import generate
from .receiver import receiver
from .transfers import export_csv, finished, import_csv


@pytest.fixture
def transfer_settings(database_url: str, tmp_path: Path) -> Settings:
    """Files in a temporary directory; exports stream in chunks of 7 rows."""
    return make_settings(database_url, storage_dir=tmp_path / "files", export_chunk_rows=7)


@pytest.fixture
async def app_client(transfer_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app on those settings (jobs run in-process)."""
    async with running(create_app(transfer_settings)) as client:
        yield client


@pytest.fixture
async def job_env(transfer_settings: Settings) -> AsyncIterator[JobEnv]:
    """The environment a worker would run the jobs in, on the same database and files."""
    db = Database(transfer_settings)
    runtime = JobsRuntime(transfer_settings, db, redis_url="")
    try:
        yield runtime.env
    finally:
        await runtime.close()
        await db.dispose()


async def _owner_org_project(client: httpx.AsyncClient) -> tuple[Api, User, str, str]:
    api = Api(client)
    owner = await api.user()
    org = await api.org(owner)
    project = (await api.project(org, owner))["id"]
    return api, owner, org, project


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def _csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


async def test_import_of_a_hostile_10000_line_file_is_exact_and_idempotent(
    app_client: httpx.AsyncClient, admin_engine: AsyncEngine
) -> None:
    _, owner, org, project = await _owner_org_project(app_client)
    generated = generate(10_000)

    first = await import_csv(app_client, org, project, owner, generated.data)
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
                select(Task).where(
                    Task.external_key.in_(["imp-00002", "imp-00003", "imp-00004", "imp-00007"])
                )
            )
        }
        stamp = await session.scalar(select(func.max(Task.updated_at)))
    assert count == len(generated.good)
    assert rows["imp-00003"].title == "多行\n标题 #3"  # a quoted newline survived
    assert rows["imp-00004"].title == "Line one\nline two\n\nline four #4"
    assert rows["imp-00007"].due_date == date(2000, 2, 29)  # a leap day
    assert rows["imp-00003"].status == "todo"  # empty status -> the default
    assert rows["imp-00002"].status == "done"
    assert rows["imp-00002"].completed_at is not None  # like a task done through the API

    second = await import_csv(app_client, org, project, owner, generated.data)
    assert (second["created"], second["updated"]) == (0, 0)
    assert second["unchanged"] == len(generated.good)
    async with AsyncSession(admin_engine) as session:
        assert await session.scalar(select(func.max(Task.updated_at))) == stamp  # nothing written


async def test_an_export_imports_back_unchanged_keys_or_not(app_client: httpx.AsyncClient) -> None:
    api, owner, org, project = await _owner_org_project(app_client)
    other_project = (await api.project(org, owner))["id"]
    generated = generate(40, bom=False)
    assert (await import_csv(app_client, org, project, owner, generated.data))["created"] == 39
    unkeyed = await api.task(org, owner, {"project_id": project, "title": 'No "key", just\nme'})
    await api.task(org, owner, {"project_id": other_project, "title": "elsewhere"})

    export, data = await export_csv(app_client, org, project, owner)
    assert export["row_count"] == 40  # in 6 chunks of 7 rows
    rows = _rows(data)
    assert [r["external_key"] for r in rows if r["id"] == unkeyed["id"]] == [""]
    assert {r["external_key"]: r["title"] for r in rows if r["external_key"]} == {
        k: v["title"] for k, v in generated.good.items()
    }
    assert {r["external_key"]: r["due_date"] for r in rows if r["external_key"]} == {
        k: v["due"] for k, v in generated.good.items()
    }

    # The exporter's own bytes go back in as they are: every row, the unkeyed one too.
    again = await import_csv(app_client, org, project, owner, data)
    assert (again["created"], again["updated"], again["unchanged"], again["rejected"]) == (
        0,
        0,
        40,
        0,
    ), again

    # Edited in a spreadsheet: a keyed row renamed, the unkeyed one (matched by id) done.
    for row in rows:
        if row["external_key"] == "imp-00000":
            row["title"] = "Renamed ✏️"
        if row["id"] == unkeyed["id"]:
            row["status"] = "done"
    edited = await import_csv(app_client, org, project, owner, _csv(rows))
    assert (edited["created"], edited["updated"], edited["unchanged"]) == (0, 2, 38), edited
    task = await app_client.get(f"/orgs/{org}/tasks/{unkeyed['id']}", headers=owner.headers)
    assert task.json()["status"] == "done"
    assert task.json()["completed_at"] is not None


async def test_an_id_of_no_task_of_the_project_is_rejected_not_created(
    app_client: httpx.AsyncClient,
) -> None:
    api, owner, org, project = await _owner_org_project(app_client)
    other_project = (await api.project(org, owner))["id"]
    elsewhere = await api.task(org, owner, {"project_id": other_project, "title": "elsewhere"})
    data = (
        "id,external_key,title\r\n"
        f"{elsewhere['id']},,moved?\r\n"
        f"{uuid.uuid4()},,gone\r\n"
        ",,neither key nor id\r\n"
    ).encode()
    result = await import_csv(app_client, org, project, owner, data)
    assert (result["created"], result["updated"], result["rejected"]) == (0, 0, 3), result
    reasons = {e["line"]: e["reason"] for e in result["errors"]}
    assert "names no task of this project" in reasons[2]
    assert "names no task of this project" in reasons[3]
    assert "external_key is required" in reasons[4]
    again = await app_client.get(f"/orgs/{org}/tasks/{elsewhere['id']}", headers=owner.headers)
    assert again.json()["title"] == "elsewhere"


async def test_an_import_emits_task_events_like_the_api(app_client: httpx.AsyncClient) -> None:
    api, owner, org, project = await _owner_org_project(app_client)
    with receiver() as hook:
        put = await app_client.put(
            f"/orgs/{org}/tasks/by-key/K-1",
            json={"project_id": project, "title": "v1"},
            headers=owner.headers,
        )
        assert put.status_code == 201
        await api.webhook(org, owner, hook.url)
        data = b"external_key,title\r\nK-1,v2\r\nK-2,new\r\n"

        assert (await import_csv(app_client, org, project, owner, data))["updated"] == 1
        await JobsRuntime.settle_all()
        events = sorted(
            (body["type"], body["data"]["external_key"], body["data"]["title"])
            for body in (orjson.loads(r.body) for r in hook.ok())
        )
        assert events == [("task.created", "K-2", "new"), ("task.updated", "K-1", "v2")]

        assert (await import_csv(app_client, org, project, owner, data))["unchanged"] == 2
        await JobsRuntime.settle_all()
        assert len(hook.received) == 2  # nothing changed, nothing emitted


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")
async def test_an_import_invalidates_the_cached_tasks_it_changes(
    database_url: str, tmp_path: Path
) -> None:
    """A cached task (by key and by id) is served fresh once the import changed it."""
    settings = make_settings(
        database_url,
        storage_dir=tmp_path,
        redis_url=REDIS_URL,
        cache_namespace=f"test-{uuid.uuid4().hex[:8]}",
        jobs_queue_name=f"test-{uuid.uuid4().hex[:8]}",
    )
    db = Database(settings)
    # The job runs here, as a worker would run it (the app queues it in Redis).
    runtime = JobsRuntime(settings, db, redis_url="")
    try:
        async with running(create_app(settings)) as client:
            api, owner, org, project = await _owner_org_project(client)
            keyed = await client.put(
                f"/orgs/{org}/tasks/by-key/K-1",
                json={"project_id": project, "title": "v1"},
                headers=owner.headers,
            )
            unkeyed = await api.task(org, owner, {"project_id": project, "title": "u1"})
            urls = [f"/orgs/{org}/tasks/{t}" for t in (keyed.json()["id"], unkeyed["id"])]
            for url in urls * 2:  # the second round is served from the cache
                assert (await client.get(url, headers=owner.headers)).status_code == 200
            data = f"external_key,id,title\r\nK-1,,v2\r\n,{unkeyed['id']},u2\r\n".encode()
            started = await client.post(
                f"/orgs/{org}/projects/{project}/imports",
                files={"file": ("t.csv", data, "text/csv")},
                headers=owner.headers,
            )
            assert started.status_code == 202, started.text
            outcome = await import_tasks(runtime.env, {"import_id": started.json()["id"]})
            assert outcome["updated"] == 2
            titles = [(await client.get(u, headers=owner.headers)).json()["title"] for u in urls]
            assert titles == ["v2", "u2"]
    finally:
        await runtime.close()
        await db.dispose()


async def test_a_finished_job_delivered_again_keeps_its_result(
    app_client: httpx.AsyncClient, job_env: JobEnv
) -> None:
    """At-least-once delivery: a second run of a finished export or import changes nothing."""
    api, owner, org, project = await _owner_org_project(app_client)
    data = b"external_key,title\r\nK-1,one\r\nK-2,two\r\n"
    imported = await import_csv(app_client, org, project, owner, data)
    assert imported["created"] == 2
    export, before = await export_csv(app_client, org, project, owner)

    await api.task(org, owner, {"project_id": project, "title": "after the export"})
    await import_tasks(job_env, {"import_id": imported["id"]})
    await export_tasks(job_env, {"export_id": export["id"]})

    report = await app_client.get(f"/orgs/{org}/imports/{imported['id']}", headers=owner.headers)
    assert (report.json()["created"], report.json()["unchanged"]) == (2, 0)
    again = await app_client.get(export["download_url"], headers=owner.headers)
    assert again.content == before  # the export is the snapshot it was, not a new one
    state = await app_client.get(f"/orgs/{org}/exports/{export['id']}", headers=owner.headers)
    assert state.json()["row_count"] == 2


async def test_an_export_streams_in_chunks_with_flat_memory(
    database_url: str, admin_engine: AsyncEngine, tmp_path: Path
) -> None:
    """The export's peak memory is a small fraction of what holding every row would take."""
    rows = 20_000
    seeded = await seed(
        admin_engine,
        tasks=rows,
        projects=1,
        owner_email=f"export-{uuid.uuid4().hex[:8]}@example.com",
        password_hash="not-used",
    )
    settings = make_settings(database_url, storage_dir=tmp_path, export_chunk_rows=250)
    db = Database(settings)
    runtime = JobsRuntime(settings, db, redis_url="")
    try:
        async with db.writer() as session, session.begin():
            project = await session.scalar(
                select(Project.id).where(Project.org_id == seeded.org_id)
            )
            export = ExportJob(org_id=seeded.org_id, project_id=project, status="queued")
            session.add(export)
        tracemalloc.start()
        try:
            written = await export_tasks(runtime.env, {"export_id": str(export.id)})
            streamed = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            held_from = tracemalloc.get_traced_memory()[0]
            # What the export would hold if it read every row at once.
            columns = [getattr(Task, name) for name in COLUMNS]
            async with db.reader() as session:
                everything = (
                    await session.execute(select(*columns).where(Task.project_id == project))
                ).all()
            held = tracemalloc.get_traced_memory()[1] - held_from
        finally:
            tracemalloc.stop()
    finally:
        await runtime.close()
        await db.dispose()
    assert written == len(everything) == rows
    assert streamed < held / 4, (streamed, held)


async def test_who_may_export_and_import(app_client: httpx.AsyncClient) -> None:
    api, owner, org, project = await _owner_org_project(app_client)
    viewer = await api.member(org, owner, "viewer")
    member = await api.member(org, owner, "member")
    outsider = await api.user()
    outsider_org = await api.org(outsider)

    url = f"/orgs/{org}/projects/{project}/exports"
    assert (await app_client.post(url, headers=viewer.headers)).status_code == 403
    started = await app_client.post(url, headers=member.headers)
    assert started.status_code == 202
    export_id = started.json()["id"]
    await finished(app_client, f"/orgs/{org}/exports/{export_id}", member)
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
    _, owner, org, project = await _owner_org_project(app_client)
    result = await import_csv(app_client, org, project, owner, data)
    assert result["status"] == "failed"
    assert reason in result["error"]
    assert result["created"] == 0


async def test_upload_limits_are_clear_4xx(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, storage_dir=tmp_path, import_max_bytes=64)
    async with running(create_app(settings)) as client:
        _, owner, org, project = await _owner_org_project(client)
        url = f"/orgs/{org}/projects/{project}/imports"

        async def upload(name: str, data: bytes) -> httpx.Response:
            # Written by hand: httpx would escape a NUL in the file name; a hostile client won't.
            body = (
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="'
                + name.encode()
                + b'"\r\nContent-Type: text/csv\r\n\r\n'
                + data
                + b"\r\n--b--\r\n"
            )
            headers = {**owner.headers, "content-type": "multipart/form-data; boundary=b"}
            return await client.post(url, content=body, headers=headers)

        assert (await upload("t.csv", b"x" * 65)).status_code == 413
        assert (await upload("t.csv", b"")).status_code == 422
        assert (await client.post(url, headers=owner.headers)).status_code == 422
        nul = await upload("bad\x00name.csv", b"external_key,title\r\n")
        assert nul.status_code == 422, nul.text
        assert "NUL" in nul.json()["detail"]
        long = await upload("x" * 197 + ".csv", b"external_key,title\r\n")
        assert long.status_code == 422, long.text
        assert (await upload("x" * 196 + ".csv", b"external_key,title\r\n")).status_code == 202
    # Only the accepted upload was kept; the refused ones left nothing behind.
    assert len(list((tmp_path / "imports").glob("*"))) == 1


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
        _, owner, org, project = await _owner_org_project(client)
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
        _, owner, org, project = await _owner_org_project(client)
        started = await client.post(
            f"/orgs/{org}/projects/{project}/exports", headers=owner.headers
        )
        export = await finished(client, f"/orgs/{org}/exports/{started.json()['id']}", owner)
        assert export["status"] == "failed"
        assert "NotADirectoryError" in export["error"] or "FileExistsError" in export["error"]
        dead = await client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)
        assert [d["job_name"] for d in dead.json()] == ["exports.tasks_csv"]
