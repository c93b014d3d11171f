"""Tasks: an (org_id, status) index for the stats counts; the cache's invalidation backstop.

The index lets a per-status count of one organization read only that status's entries (an
index-only range scan) instead of every task of the organization. It is built CONCURRENTLY on
PostgreSQL, outside the migration's transaction, so writes to tasks continue meanwhile.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 09:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create cache_invalidations and ix_tasks_org_status."""
    op.create_table(
        "cache_invalidations",
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=True),
        sa.Column("object_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_invalidations")),
    )
    with op.get_context().autocommit_block():
        # Give up rather than queue behind a long schema change. No statement_timeout: it
        # would cut the build of a large index. No IF NOT EXISTS: a failed concurrent build
        # leaves an INVALID index behind, which must be dropped, not silently kept.
        if op.get_context().dialect.name == "postgresql":
            op.execute("SET lock_timeout = '10s'")
        op.create_index(
            "ix_tasks_org_status",
            "tasks",
            ["org_id", "status"],
            unique=False,
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    """Drop ix_tasks_org_status and cache_invalidations."""
    with op.get_context().autocommit_block():
        if op.get_context().dialect.name == "postgresql":
            op.execute("SET lock_timeout = '10s'")
        op.drop_index(
            "ix_tasks_org_status",
            table_name="tasks",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_table("cache_invalidations")
