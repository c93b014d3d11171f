"""The project model."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, TimestampMixin


class Project(IdMixin, TimestampMixin, Base):
    """An organization-scoped container of tasks."""

    __tablename__ = "projects"
    __table_args__ = (
        # Target of the tasks' composite foreign key: a task's project is in the task's org.
        UniqueConstraint("org_id", "id"),
        # Keyset listing: WHERE org_id = ? ORDER BY created_at DESC, id DESC.
        Index("ix_projects_org_created", "org_id", "created_at", "id"),
    )

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
