"""A keyset walk returns each row exactly once while rows are inserted and deleted between pages.

Rows inserted during the walk are newer than the cursor, so they belong to no later page;
rows deleted before the walk reaches them are simply gone. Every row that lives through the
whole walk is returned exactly once, in order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.db.base import new_id, utcnow
from {{ cookiecutter.package_name }}.pagination import CursorCodec, PageParams
from {{ cookiecutter.package_name }}.resources.orgs.model import Organization
from {{ cookiecutter.package_name }}.resources.projects.model import Project
from {{ cookiecutter.package_name }}.resources.tasks.model import Task
from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository

CODEC = CursorCodec("property-test-secret-of-enough-length-0123456789")


@dataclass
class Step:
    inserts: int
    deletes: list[int]  # indexes into the rows not yet returned


steps = st.lists(
    st.builds(
        Step,
        inserts=st.integers(0, 3),
        deletes=st.lists(st.integers(0, 50), max_size=3),
    ),
    max_size=12,
)


async def _insert(
    session: AsyncSession, org: uuid.UUID, project: uuid.UUID, n: int
) -> list[uuid.UUID]:
    ids = [new_id() for _ in range(n)]
    if ids:
        now = utcnow()
        await session.execute(
            insert(Task),
            [
                {
                    "id": i,
                    "org_id": org,
                    "project_id": project,
                    "title": "t",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in ids
            ],
        )
        await session.commit()
    return ids


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(initial=st.integers(0, 40), limit=st.integers(1, 9), steps=steps)
async def test_walk_sees_every_surviving_row_once(
    admin_engine: AsyncEngine, initial: int, limit: int, steps: list[Step]
) -> None:
    async with AsyncSession(admin_engine, expire_on_commit=False) as session:
        org = Organization(id=new_id(), name="walk")
        project = Project(id=new_id(), org_id=org.id, name="p")
        session.add(org)
        await session.flush()
        session.add(project)
        await session.commit()
        alive = set(await _insert(session, org.id, project.id, initial))
        deleted: set[uuid.UUID] = set()
        repo = TaskRepository(session, org.id)
        seen: list[uuid.UUID] = []
        keys: list[tuple[datetime, uuid.UUID]] = []
        params = PageParams(cursor=None, limit=limit)
        for step in [*steps, *[Step(0, [])] * 200]:  # then walk to the end unchanged
            rows, more = await repo.page(params.resolve(CODEC, "walk"))
            seen += [row["id"] for row in rows]
            keys += [(row["created_at"], row["id"]) for row in rows]
            cursor = params.next_cursor(CODEC, "walk", rows, more)
            if cursor is None:
                break
            params = PageParams(cursor=cursor, limit=limit)
            await _insert(session, org.id, project.id, step.inserts)
            pending = sorted(alive - set(seen) - deleted)
            doomed = {pending[i % len(pending)] for i in step.deletes} if pending else set()
            if doomed:
                await session.execute(delete(Task).where(Task.id.in_(doomed)))
                await session.commit()
                deleted |= doomed
            session.expunge_all()
        assert len(seen) == len(set(seen)), "a row was returned twice"
        assert not (set(seen) & deleted), "a row deleted before it was reached was returned"
        assert set(seen) == alive - deleted, "a row that lived through the walk was skipped"
        assert keys == sorted(keys, reverse=True), "the walk is not newest first"
