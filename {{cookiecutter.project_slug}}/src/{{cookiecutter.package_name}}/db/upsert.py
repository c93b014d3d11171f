"""Natural-key upsert: INSERT ... ON CONFLICT DO UPDATE, on PostgreSQL and SQLite alike.

The update only fires when a value differs, so re-sending the same payload writes nothing and
keeps `updated_at`. The caller learns whether the row was created, updated or left as it was.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, literal_column, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.db.base import Base

ModelT = TypeVar("ModelT", bound=Base)


class Outcome(enum.StrEnum):
    """What an upsert did."""

    created = "created"
    updated = "updated"
    unchanged = "unchanged"


@dataclass(frozen=True, slots=True)
class Upserted(Generic[ModelT]):
    """The row after the upsert, and what happened to it."""

    row: ModelT
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class BatchUpserted:
    """What a batch upsert did: the primary keys it created and updated; how many it left."""

    created: list[Any]
    updated: list[Any]
    unchanged: int

    def counts(self) -> dict[Outcome, int]:
        """How many rows had each outcome."""
        return {
            Outcome.created: len(self.created),
            Outcome.updated: len(self.updated),
            Outcome.unchanged: self.unchanged,
        }


def excluded(name: str) -> ColumnElement[Any]:
    """The proposed value of column `name` inside ON CONFLICT DO UPDATE (both dialects)."""
    return literal_column(f"excluded.{name}")


async def upsert(
    session: AsyncSession,
    model: type[ModelT],
    values: Mapping[str, Any],
    *,
    conflict: Sequence[str],
    update: Sequence[str],
    derived: Mapping[str, ColumnElement[Any]] | None = None,
) -> Upserted[ModelT]:
    """Insert `values`, or update the `update` columns of the row matching `conflict`.

    `derived` columns are set on update by SQL expressions (which may use `excluded(...)`)
    but do not count as a change on their own."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    stmt = insert(model).values(**values)
    changed = or_(*(table.c[name].is_distinct_from(stmt.excluded[name]) for name in update))
    set_: dict[str, Any] = {name: stmt.excluded[name] for name in update}
    set_.update(derived or {})
    if "updated_at" in table.c and "updated_at" in values:
        set_["updated_at"] = stmt.excluded["updated_at"]
    stmt = stmt.on_conflict_do_update(index_elements=list(conflict), set_=set_, where=changed)
    returned = await session.scalars(
        stmt.returning(model), execution_options={"populate_existing": True}
    )
    row = returned.first()
    if row is None:
        # Conflict with identical values: nothing was written; read the row as it is.
        key = [getattr(model, name) == values[name] for name in conflict]
        existing = (await session.scalars(select(model).where(*key))).one()
        return Upserted(existing, Outcome.unchanged)
    created = getattr(row, "created_at", None) == values.get("created_at")
    return Upserted(row, Outcome.created if created else Outcome.updated)


async def upsert_many(
    session: AsyncSession,
    model: type[ModelT],
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: Sequence[str],
    update: Sequence[str],
    derived: Mapping[str, ColumnElement[Any]] | None = None,
) -> BatchUpserted:
    """`upsert` for a batch in one statement; returns the keys created and updated.

    Every row must carry the same `created_at` (the batch's time): a returned row with that
    value was created, another returned row was updated, a row not returned was unchanged.
    Keys must be unique within the batch (a statement cannot update one row twice)."""
    if not rows:
        return BatchUpserted([], [], 0)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    (key,) = model.__mapper__.primary_key
    stmt = insert(model).values(list(rows))
    changed = or_(*(table.c[name].is_distinct_from(stmt.excluded[name]) for name in update))
    set_: dict[str, Any] = {name: stmt.excluded[name] for name in update}
    set_.update(derived or {})
    if "updated_at" in table.c and "updated_at" in rows[0]:
        set_["updated_at"] = stmt.excluded["updated_at"]
    stmt = stmt.on_conflict_do_update(index_elements=list(conflict), set_=set_, where=changed)
    returned = (await session.execute(stmt.returning(key, table.c.created_at))).all()
    batch_time = rows[0].get("created_at")
    created = [pk for pk, created_at in returned if created_at == batch_time]
    updated = [pk for pk, created_at in returned if created_at != batch_time]
    return BatchUpserted(created, updated, len(rows) - len(returned))
