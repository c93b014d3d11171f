"""SQL statements per request, against the budgets in perf/budgets.yaml.

A list endpoint costs the same number of statements for a page of 5 rows and a full page of 50
(no N+1: the seeded organization has more than 50 tasks and projects, so both pages are full),
and no critical endpoint exceeds its declared budget. Reads are measured with the membership
cache warm, as in steady state: authorisation then costs no statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import event
from sqlalchemy.engine import Engine

from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT

from .api import Api, User
from .factories import TaskFactory

BUDGETS: dict[str, int] = yaml.safe_load(
    (PROJECT_ROOT / "perf" / "budgets.yaml").read_text(encoding="utf-8")
)["queries"]


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


SMALL, LARGE = 5, 50


@pytest.fixture
async def seeded(api: Api) -> tuple[User, dict[str, str]]:
    owner = await api.user()
    org = await api.org(owner)
    projects = [await api.project(org, owner) for _ in range(LARGE + 1)]
    tasks = [
        await api.task(org, owner, TaskFactory.payload(projects[i % 3]["id"]))
        for i in range(LARGE + 1)
    ]
    return owner, {"org_id": org, "project_id": projects[0]["id"], "task_id": tasks[0]["id"]}


async def _statements(
    client: httpx.AsyncClient, owner: User, route: str, ids: dict[str, str], limit: int
) -> list[str]:
    """The statements one request ran; a list request must have returned a full page."""
    method, template = route.split(" ", 1)
    path = template.format(**ids)
    body = TaskFactory.payload(ids["project_id"]) if method == "POST" else None
    params = (
        {"limit": limit} if method == "GET" and template.endswith(("tasks", "projects")) else {}
    )
    with count_statements() as statements:
        response = await client.request(
            method, path, json=body, params=params, headers=owner.headers
        )
    assert response.status_code < 300, response.text
    if params:
        assert len(response.json()["items"]) == limit  # a full page: sizes really differ
    return statements


@pytest.mark.parametrize("route", sorted(BUDGETS))
async def test_statement_budget(
    client: httpx.AsyncClient, seeded: tuple[User, dict[str, str]], route: str
) -> None:
    owner, ids = seeded
    await _statements(client, owner, route, ids, limit=SMALL)  # warm the membership cache
    small = await _statements(client, owner, route, ids, limit=SMALL)
    large = await _statements(client, owner, route, ids, limit=LARGE)
    assert len(small) == len(large), f"{route} grows with the page size:\n" + "\n".join(large)
    assert len(large) <= BUDGETS[route], f"{route}: {len(large)} statements:\n" + "\n".join(large)
