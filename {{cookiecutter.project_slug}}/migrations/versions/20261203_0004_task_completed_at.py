"""Tasks: completed_at, backfilled for tasks already done.

A data migration in three steps that stay safe on a large table: add the column as nullable
(no rewrite, brief lock), backfill in batches by primary key (short transactions, no long row
locks), and never add a NOT NULL the backfill cannot guarantee.

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-03 19:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 10_000


def upgrade() -> None:
    """Add tasks.completed_at and backfill it from updated_at for done tasks."""
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    tasks = sa.table(
        "tasks",
        sa.column("id", sa.Uuid()),
        sa.column("status", sa.String()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("completed_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    last = None
    while True:
        # Walk the done tasks in primary-key order, one bounded batch per statement.
        select = (
            sa.select(tasks.c.id)
            .where(tasks.c.status == "done", tasks.c.completed_at.is_(None))
            .order_by(tasks.c.id)
            .limit(BATCH)
        )
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
