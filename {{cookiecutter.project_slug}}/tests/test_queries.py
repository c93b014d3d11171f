"""Statement counts per request: the task list costs the same at 5 rows and at 50 (no N+1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .api import Api
from .factories import TaskFactory


@contextmanager
def count_statements() -> Iterator[list[str]]:
    """Every SQL statement any engine executes inside the block."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def test_task_list_is_constant_in_page_size(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    projects = [await api.project(org, owner) for _ in range(3)]
    for i in range(50):
        await api.task(org, owner, TaskFactory.payload(projects[i % 3]["id"]))

    counts = {}
    for limit in (5, 50):
        with count_statements() as statements:
            page = await client.get(
                f"/orgs/{org}/tasks", params={"limit": limit}, headers=owner.headers
            )
        assert page.status_code == 200
        assert len(page.json()["items"]) == limit
        counts[limit] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(counts[5]) == len(counts[50])
    # The budget: one membership lookup (RBAC) + one page query with its projects joined.
    assert len(counts[50]) <= 2, counts[50]
