"""The list route writes tasks with orjson (`PageResponse`), not through pydantic: for every
value a task can hold, the bytes must be the ones pydantic writes for `Page[TaskOut]`."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from {{ cookiecutter.package_name }}.pagination import Page, PageResponse
from {{ cookiecutter.package_name }}.resources.tasks.schemas import ProjectRef, TaskOut

PAGE = TypeAdapter(Page[TaskOut])
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
    updated_at=maybe_moments.filter(lambda moment: moment is not None),
)


@settings(max_examples=300)
@given(st.lists(tasks, max_size=5), st.none() | st.text(alphabet="abcdefXYZ0123456789.-_"))
def test_the_page_bytes_are_pydantics(items: list[TaskOut], cursor: str | None) -> None:
    plain = [item.model_dump() for item in items]  # the shape and types the repository returns
    assert PageResponse(plain, cursor).body == PAGE.dump_json(Page(items=items, next_cursor=cursor))
