"""Counting an organization's rows without COUNT(*) over large tables.

PostgreSQL: a count first scans at most `limit + 1` of the organization's rows (an index range
scan on `org_id`, or on `(org_id, status)` for one status, so a rare or empty status costs as
little as a common one): a small organization gets an exact answer for the price of reading its
rows. When the organization has more, the answer is the planner's row estimate for the same
query (`EXPLAIN`), built from the table statistics (pg_class.reltuples and the column's most
common values), so it costs the same whatever the size of the table. SQLite, the embedded dev
database, counts exactly.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import Select, func, literal, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.resources.orgs.model import Membership
from {{ cookiecutter.package_name }}.resources.projects.model import Project
from {{ cookiecutter.package_name }}.resources.stats.schemas import Count
from {{ cookiecutter.package_name }}.resources.tasks.model import Task, TaskStatus


class StatsRepository:
    """Counts of one organization's rows, exact when cheap and estimated otherwise."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID, exact_limit: int) -> None:
        self.session = session
        self.org_id = org_id
        self.exact_limit = exact_limit

    async def members(self) -> Count:
        """Members (bounded by the membership table's primary key prefix)."""
        return await self._count(select(literal(1)).where(Membership.org_id == self.org_id))

    async def projects(self) -> Count:
        """Projects of the organization."""
        return await self._count(select(literal(1)).where(Project.org_id == self.org_id))

    async def tasks(self, status: TaskStatus | None = None) -> Count:
        """Tasks of the organization, optionally in one status."""
        stmt = select(literal(1)).where(Task.org_id == self.org_id)
        if status is not None:
            stmt = stmt.where(Task.status == status)
        return await self._count(stmt)

    async def _count(self, rows: Select[Any]) -> Count:
        # The session's own connection (a read session connects at its first statement).
        dialect = (await self.session.connection()).dialect
        if dialect.name != "postgresql":
            exact = await self.session.scalar(select(func.count()).select_from(rows.subquery()))
            return Count(value=int(exact or 0), approximate=False, method="exact")
        capped = rows.limit(self.exact_limit + 1).subquery()
        seen = int(await self.session.scalar(select(func.count()).select_from(capped)) or 0)
        if seen <= self.exact_limit:
            return Count(value=seen, approximate=False, method="exact")
        # More rows than the exact limit: trust the planner, but never below what we saw.
        estimate = await self._planner_rows(rows, dialect)
        return Count(value=max(estimate, seen), approximate=True, method="planner_estimate")

    async def _planner_rows(self, rows: Select[Any], dialect: Dialect) -> int:
        # Literal values (a UUID and an enum name, both typed) so the plan is made for this
        # organization, not a generic plan over an average organization.
        sql = rows.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        plan = await self.session.scalar(text(f"EXPLAIN (FORMAT JSON) {sql}"))
        document = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
        return int(document[0]["Plan"]["Plan Rows"])
