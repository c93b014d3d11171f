"""The CSV importer accepts whatever the exporter writes.

A project's export, imported back into that project as it is, is accepted row for row and
changes nothing, and the next export is the same file: for any Unicode title the API takes
(quotes, commas, newlines, emoji, right-to-left text), every status, any date from year 1 to
9999 (leap days included), with or without an assignee, and tasks with or without an external
key (those are matched by the exported id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.package_name }}.app import create_app

from ..api import Api
from ..conftest import make_settings, running
from ..jobs.transfers import export_csv, import_csv

LEAP_DAYS = [date(2000, 2, 29), date(2024, 2, 29), date(2400, 2, 29), date(4, 2, 29)]

titles = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
    min_size=1,
    max_size=60,
).filter(lambda t: t.strip())
keys = st.from_regex(r"[A-Za-z0-9._:-]{0,20}", fullmatch=True)
tasks = st.lists(
    st.tuples(
        titles,
        st.sampled_from(["todo", "in_progress", "done"]),
        st.none() | st.dates(date(1, 1, 1), date(9999, 12, 31)) | st.sampled_from(LEAP_DAYS),
        st.none() | keys,  # None: a task without an external key
        st.booleans(),  # assigned to the owner?
    ),
    min_size=1,
    max_size=6,
)


@pytest.fixture
async def transfer_client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose exports stream in chunks of 2 rows, so most examples span chunks."""
    settings = make_settings(database_url, storage_dir=tmp_path, export_chunk_rows=2)
    async with running(create_app(settings)) as client:
        yield client


@settings(
    max_examples=15,  # each example runs an export, an import and an export again
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=tasks)
async def test_an_export_imports_back_as_it_is(
    transfer_client: httpx.AsyncClient,
    data: list[tuple[str, str, date | None, str | None, bool]],
) -> None:
    api = Api(transfer_client)
    owner = await api.user()
    org = await api.org(owner)
    project = (await api.project(org, owner))["id"]
    for i, (title, status, due, key, assigned) in enumerate(data):
        body = {
            "project_id": project,
            "title": title,
            "status": status,
            "due_date": due.isoformat() if due else None,
            "external_key": None if key is None else f"{i}{key}",
            "assignee_id": owner.id if assigned else None,
        }
        created = await transfer_client.post(f"/orgs/{org}/tasks", json=body, headers=owner.headers)
        assume(created.status_code == 201)  # only what the API stores can be exported

    _, exported = await export_csv(transfer_client, org, project, owner)
    result = await import_csv(transfer_client, org, project, owner, exported)
    assert result["status"] == "done", result
    assert result["errors"] == [], exported
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 0, len(data))
    _, again = await export_csv(transfer_client, org, project, owner)
    assert again == exported  # nothing was written, not even updated_at
