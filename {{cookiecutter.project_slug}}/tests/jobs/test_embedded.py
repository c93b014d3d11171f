"""The embedded default: SQLite, no Redis; the same jobs run in-process with the same rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

from {{ cookiecutter.package_name }}.app import create_app

from ..api import Api
from ..conftest import make_settings, migrate, running
from .conftest import eventually
from .csv_data import generate
from .receiver import Receiver, receiver


async def test_webhooks_imports_and_exports_work_on_sqlite_in_process(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    await asyncio.to_thread(migrate, url)
    settings = make_settings(url, storage_dir=tmp_path / "files", export_chunk_rows=5)
    with receiver() as hook:
        hook.plan = [(503, 0.0)]  # retried in-process, like a worker would
        async with running(create_app(settings)) as client:
            api = Api(client)
            owner = await api.user()
            org = await api.org(owner)
            project = (await api.project(org, owner))["id"]
            generated = generate(60)
            upload = await client.post(
                f"/orgs/{org}/projects/{project}/imports",
                files={"file": ("t.csv", generated.data, "text/csv")},
                headers=owner.headers,
            )
            import_url = f"/orgs/{org}/imports/{upload.json()['id']}"
            report: dict[str, object] = {}

            async def imported() -> bool:
                report.update((await client.get(import_url, headers=owner.headers)).json())
                return report["status"] == "done"

            await eventually(imported)
            assert report["created"] == len(generated.good)
            assert report["rejected"] == len(generated.bad_lines)

            # Registered after the import, whose rows emit task.created too: one event here.
            await api.webhook(org, owner, hook.url, ["task.created"])
            await api.task(org, owner, {"project_id": project, "title": "Ping ✓"})
            await eventually(lambda: _delivered(hook))
            assert [r.headers["x-answered"] for r in hook.received] == ["503", "200"]

            started = await client.post(
                f"/orgs/{org}/projects/{project}/exports", headers=owner.headers
            )
            export_url = f"/orgs/{org}/exports/{started.json()['id']}"

            async def exported() -> bool:
                return (await client.get(export_url, headers=owner.headers)).json()[
                    "status"
                ] == "done"

            await eventually(exported)
            body = await client.get(export_url + "/download", headers=owner.headers)
            assert body.text.count("imp-") == len(generated.good)
    await asyncio.to_thread(migrate, url, "base", down=True)


async def _delivered(hook: Receiver) -> bool:
    return bool(hook.ok())
