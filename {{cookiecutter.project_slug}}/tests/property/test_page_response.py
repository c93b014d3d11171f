"""The list route writes tasks with orjson (`PageResponse`), not through pydantic: for every
value a task can hold, the bytes must be the ones pydantic writes for `Page[TaskOut]`.

The page is built as the route builds it: rows of the repository's read columns, with UUIDs of
asyncpg's own type (a `uuid.UUID` subclass, which orjson does not write by itself), turned into
items by the repository's `_as_items`."""

from __future__ import annotations

import uuid
from collections import namedtuple
from datetime import UTC, timedelta, timezone
from typing import Any

from asyncpg.pgproto import pgproto
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from {{ cookiecutter.package_name }}.pagination import Page, PageResponse
from {{ cookiecutter.package_name }}.resources.tasks.repository import _READ_COLUMNS, _as_items
from {{ cookiecutter.package_name }}.resources.tasks.schemas import ProjectRef, TaskOut

PAGE = TypeAdapter(Page[TaskOut])
ReadRow = namedtuple("ReadRow", [column.key for column in _READ_COLUMNS])
# UTC (what PostgreSQL returns), another offset, and naive values (SQLite).
moments = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]))
maybe_moments = st.none() | moments | st.datetimes()
tasks = st.builds(
    TaskOut,
    project=st.builds(ProjectRef, name=st.text()),
    title=st.text(),
    due_date=st.none() | st.dates(),
    external_key=st.none() | st.text(),
    assignee_id=st.none() | st.uuids(),
    completed_at=maybe_moments,
    created_at=moments,
    updated_at=moments | st.datetimes(),
)


def _driver_value(value: Any) -> Any:
    return pgproto.UUID(str(value)) if isinstance(value, uuid.UUID) else value


def _row(task: TaskOut) -> Any:
    """The task as the database returns it: one row of the read columns."""
    fields = task.model_dump() | {"project_id": task.project.id, "project_name": task.project.name}
    return ReadRow(*(_driver_value(fields[name]) for name in ReadRow._fields))


@settings(max_examples=300)
@given(st.lists(tasks, max_size=5), st.none() | st.text(alphabet="abcdefXYZ0123456789.-_"))
def test_the_page_bytes_are_pydantics(items: list[TaskOut], cursor: str | None) -> None:
    rows = [_row(task) for task in items]
    expected = PAGE.dump_json(Page(items=items, next_cursor=cursor))
    assert PageResponse(_as_items(rows), cursor).body == expected
