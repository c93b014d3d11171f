"""Tasks: completed_at, backfilled for tasks already done.

A data migration that stays safe on a large table:

1. Add the column as nullable, without a default: a catalog change, no table rewrite. Its
   ACCESS EXCLUSIVE lock lasts only until that change commits, at once (env.py runs each
   revision in its own transaction, with a lock_timeout).
2. Backfill outside that transaction, in an autocommit block: BATCH done tasks per UPDATE,
   in primary-key order, each UPDATE its own short transaction. No lock on the table, row
   locks for one batch at a time, and a crash loses at most one batch: running the upgrade
   again resumes (the column is there; filled rows are skipped).
3. No NOT NULL that the backfill cannot guarantee.

Offline (`alembic upgrade --sql`) the backfill is one set-based UPDATE after the COMMIT of the
ALTER: a script to review and lint, not a loop that needs the data.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-03 19:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 10_000

tasks = sa.table(
    "tasks",
    sa.column("id", sa.Uuid()),
    sa.column("status", sa.String()),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("completed_at", sa.DateTime(timezone=True)),
)
pending = sa.and_(tasks.c.status == "done", tasks.c.completed_at.is_(None))


def upgrade() -> None:
    """Add tasks.completed_at and backfill it from updated_at for done tasks."""
    context = op.get_context()
    if context.as_sql or "completed_at" not in _columns():
        with op.batch_alter_table("tasks") as batch:
            batch.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    with context.autocommit_block():
        if context.as_sql:
            op.execute(tasks.update().where(pending).values(completed_at=tasks.c.updated_at))
            return
        bind = op.get_bind()
        last = None
        while True:
            # The next batch of done tasks in primary-key order: one bounded, indexed walk.
            select = sa.select(tasks.c.id).where(pending).order_by(tasks.c.id).limit(BATCH)
            if last is not None:
                select = select.where(tasks.c.id > last)
            ids = [row.id for row in bind.execute(select)]
            if not ids:
                break
            bind.execute(
                tasks.update().where(tasks.c.id.in_(ids)).values(completed_at=tasks.c.updated_at)
            )
            last = ids[-1]


def downgrade() -> None:
    """Drop tasks.completed_at (the data is derivable again from status and updated_at)."""
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("completed_at")


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("tasks")}
