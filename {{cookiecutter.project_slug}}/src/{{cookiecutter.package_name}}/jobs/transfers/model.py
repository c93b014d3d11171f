"""Export and import records: what was asked, by whom, where it stands, and the outcome."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, TimestampMixin

# The longest upload file name an import records (the API refuses longer ones with a 422).
FILE_NAME_MAX = 200


class TransferStatus(enum.StrEnum):
    """Life of an export or import."""

    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class ExportJob(IdMixin, TimestampMixin, Base):
    """A CSV export of a project's tasks."""

    __tablename__ = "export_jobs"
    __table_args__ = (Index("ix_export_jobs_org_created", "org_id", "created_at"),)

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID]
    requested_by: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(20), default=TransferStatus.queued)
    row_count: Mapped[int | None]
    file_name: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]


class ImportJob(IdMixin, TimestampMixin, Base):
    """A CSV import into a project: counts by outcome and the rejected rows with reasons."""

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_org_created", "org_id", "created_at"),)

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID]
    requested_by: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(20), default=TransferStatus.queued)
    file_name: Mapped[str] = mapped_column(String(FILE_NAME_MAX))
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    # [{"line": 12, "reason": "..."}], capped (see imports.MAX_REPORTED_ERRORS).
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]
