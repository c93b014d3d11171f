"""The task model."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, TimestampMixin
from {{ cookiecutter.package_name }}.resources.projects.model import Project


class TaskStatus(enum.StrEnum):
    """Where a task is in its life."""

    todo = "todo"
    in_progress = "in_progress"
    done = "done"


class Task(IdMixin, TimestampMixin, Base):
    """A unit of work in a project; `external_key` is the client's natural key for upserts."""

    __tablename__ = "tasks"
    __table_args__ = (
        # The project must belong to the same organization: enforced by the database itself.
        ForeignKeyConstraint(
            ["org_id", "project_id"], ["projects.org_id", "projects.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("org_id", "external_key"),
        Index("ix_tasks_org_created", "org_id", "created_at", "id"),
        Index("ix_tasks_project_created", "project_id", "created_at", "id"),
        # Stats count one status of an organization without reading all its other tasks.
        Index("ix_tasks_org_status", "org_id", "status"),
        CheckConstraint("length(title) > 0", name="title_not_empty"),
    )

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[TaskStatus] = mapped_column(
        Enum(
            TaskStatus,
            native_enum=False,
            length=20,
            validate_strings=True,
            create_constraint=True,
        ),
        default=TaskStatus.todo,
    )
    due_date: Mapped[date | None]
    # Set when the status becomes done, cleared when it leaves done (see the repository).
    completed_at: Mapped[datetime | None]
    external_key: Mapped[str | None] = mapped_column(String(100))
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )

    project: Mapped[Project] = relationship(lazy="raise")
