"""Seed a production-like data set fast: one organization, its owner, projects and N tasks.

PostgreSQL generates the rows server-side in one INSERT ... SELECT generate_series (no rows
cross the wire; 1,000,000 tasks in about 20-30 s on 2 cores, most of it index upkeep and the
foreign-key checks); SQLite gets batched inserts. Used by `PACKAGE seed`, the EXPLAIN budgets
and the load benchmarks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from {{ cookiecutter.package_name }}.db.base import new_id, utcnow
from {{ cookiecutter.package_name }}.resources.orgs.model import Membership, Organization
from {{ cookiecutter.package_name }}.resources.projects.model import Project
from {{ cookiecutter.package_name }}.resources.tasks.model import Task
from {{ cookiecutter.package_name }}.resources.users.model import User
from {{ cookiecutter.package_name }}.schemas import email_key

BATCH = 5_000
_STATUSES = ("todo", "in_progress", "done")


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the seed created (ids the benchmarks and EXPLAIN checks use)."""

    org_id: uuid.UUID
    owner_email: str
    tasks: int


def _task_rows(
    org_id: uuid.UUID, projects: list[uuid.UUID], start: int, stop: int
) -> list[dict[str, Any]]:
    base = utcnow()
    rows: list[dict[str, Any]] = []
    for i in range(start, stop):
        # Spread creation times (1 ms apart, newest first) like a long-lived tenant.
        created = base - timedelta(milliseconds=i)
        status = _STATUSES[i % 3]
        rows.append(
            {
                "id": new_id(),
                "org_id": org_id,
                "project_id": projects[i % len(projects)],
                "title": f"Task {i}",
                "status": status,
                "external_key": f"SEED-{i}",
                "completed_at": created if status == "done" else None,
                "created_at": created,
                "updated_at": created,
            }
        )
    return rows


async def _generate_tasks(conn: AsyncConnection, org_id: uuid.UUID, tasks: int) -> None:
    # Oldest first, 1 ms apart, ids time-ordered like new_id()'s UUIDv7 (the creation time in
    # milliseconds in the first 48 bits): rows look like the app's own, indexes grow at one end.
    await conn.execute(
        text(
            """
            INSERT INTO tasks (id, org_id, project_id, title, status, external_key,
                               completed_at, created_at, updated_at)
            SELECT encode(overlay(uuid_send(gen_random_uuid()) placing
                                  substring(int8send((extract(epoch FROM t.at) * 1000)::bigint)
                                            from 3) from 1 for 6), 'hex')::uuid,
                   :org, p.ids[1 + g % array_length(p.ids, 1)],
                   'Task ' || g, (ARRAY['todo', 'in_progress', 'done'])[1 + g % 3],
                   'SEED-' || g,
                   CASE WHEN g % 3 = 2 THEN t.at END, t.at, t.at
            FROM generate_series(:n - 1, 0, -1) AS g
            CROSS JOIN LATERAL (SELECT now() - g * interval '1 millisecond' AS at) AS t,
            (SELECT array_agg(id ORDER BY id) AS ids FROM projects WHERE org_id = :org) AS p
            """
        ),
        {"org": org_id, "n": tasks},
    )


async def seed(
    engine: AsyncEngine,
    *,
    tasks: int,
    projects: int = 100,
    owner_email: str = "perf-owner@example.com",
    password_hash: str,
) -> Seeded:
    """Create (or top up) the perf organization with `tasks` tasks in `projects` projects."""
    async with engine.begin() as conn:
        user_id = await conn.scalar(select(User.id).where(User.email_key == email_key(owner_email)))
        if user_id is None:
            user_id = new_id()
            now = utcnow()
            await conn.execute(
                insert(User).values(
                    id=user_id,
                    email=owner_email,
                    email_key=email_key(owner_email),
                    password_hash=password_hash,
                    full_name="Perf Owner",
                    created_at=now,
                    updated_at=now,
                )
            )
        org_id = new_id()
        now = utcnow()
        await conn.execute(
            insert(Organization).values(
                id=org_id, name=f"Perf org ({tasks} tasks)", created_at=now, updated_at=now
            )
        )
        await conn.execute(
            insert(Membership).values(org_id=org_id, user_id=user_id, role="owner", created_at=now)
        )
        project_ids = [new_id() for _ in range(projects)]
        await conn.execute(
            insert(Project),
            [
                {
                    "id": p,
                    "org_id": org_id,
                    "name": f"Project {n}",
                    "created_at": now,
                    "updated_at": now,
                }
                for n, p in enumerate(project_ids)
            ],
        )
        if conn.dialect.name == "postgresql":
            await _generate_tasks(conn, org_id, tasks)
        else:
            for start in range(0, tasks, BATCH):
                rows = _task_rows(org_id, project_ids, start, min(tasks, start + BATCH))
                await conn.execute(insert(Task), rows)
    if engine.dialect.name == "postgresql":
        # Fresh statistics and visibility map: the planner must see the table as it now is.
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM (ANALYZE) tasks"))
            await autocommit.execute(text("ANALYZE projects"))
    return Seeded(org_id=org_id, owner_email=owner_email, tasks=tasks)
