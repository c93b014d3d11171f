"""Dead letters: jobs that failed for good, kept in PostgreSQL with everything needed to replay.

A replay writes a new outbox row with the same job, arguments and trace context (so it goes
through the relay like any other job) and marks the dead letter replayed. If the job fails
again it comes back as a new dead letter.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, TimestampMixin, utcnow
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.outbox import OutboxMessage, enqueue
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs
from {{ cookiecutter.package_name }}.observability.metrics import DEAD_LETTERS

MAX_ERROR_CHARS = 4000


class DeadLetter(IdMixin, TimestampMixin, Base):
    """A job that exhausted its tries or failed permanently."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_org_created", "org_id", "created_at"),)

    job_name: Mapped[str] = mapped_column(String(200))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    org_id: Mapped[uuid.UUID | None]
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSON)
    last_error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    outbox_id: Mapped[uuid.UUID | None]
    replayed_at: Mapped[datetime | None]
    replay_outbox_id: Mapped[uuid.UUID | None]


async def record(
    db: Database, name: str, args: JobArgs, meta: JobArgs, error: str, attempts: int
) -> uuid.UUID:
    """Store a dead letter in its own transaction; returns its id."""
    org_id = meta.get("org_id")
    outbox_id = meta.get("outbox_id")
    letter = DeadLetter(
        job_name=name,
        args=args,
        org_id=uuid.UUID(org_id) if org_id else None,
        trace_context=meta.get("trace_context"),
        last_error=error[:MAX_ERROR_CHARS],
        attempts=attempts,
        outbox_id=uuid.UUID(outbox_id) if outbox_id else None,
    )
    async with db.writer() as session, session.begin():
        session.add(letter)
    # The depth gauge is counted in the database by the relay's housekeeping, never moved by
    # +1/-1 here: a process that replays letters it never recorded would report less than 0.
    DEAD_LETTERS.labels(name).inc()
    return letter.id


async def pending(
    session: AsyncSession,
    *,
    org_id: uuid.UUID | None = None,
    include_replayed: bool = False,
    limit: int = 100,
    before: datetime | None = None,
) -> list[DeadLetter]:
    """Dead letters, newest first; by default only those not yet replayed."""
    stmt = select(DeadLetter).order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc())
    if org_id is not None:
        stmt = stmt.where(DeadLetter.org_id == org_id)
    if not include_replayed:
        stmt = stmt.where(DeadLetter.replayed_at.is_(None))
    if before is not None:
        stmt = stmt.where(DeadLetter.created_at < before)
    return list(await session.scalars(stmt.limit(limit)))


async def get(
    session: AsyncSession, letter_id: uuid.UUID, *, org_id: uuid.UUID | None = None
) -> DeadLetter | None:
    """One dead letter (of this organization, when given)."""
    stmt = select(DeadLetter).where(DeadLetter.id == letter_id)
    if org_id is not None:
        stmt = stmt.where(DeadLetter.org_id == org_id)
    return await session.scalar(stmt.with_for_update())


def replay(session: AsyncSession, letter: DeadLetter) -> OutboxMessage | None:
    """Queue the job again through the outbox; None if it was already replayed."""
    if letter.replayed_at is not None:
        return None
    row = enqueue(
        session,
        letter.job_name,
        letter.args,
        org_id=letter.org_id,
        trace_context=letter.trace_context,
    )
    letter.replayed_at = utcnow()
    letter.replay_outbox_id = row.id
    return row


async def replay_all(session: AsyncSession, *, org_id: uuid.UUID | None = None) -> int:
    """Replay every pending dead letter (of this organization, when given); returns the count."""
    stmt = select(DeadLetter).where(DeadLetter.replayed_at.is_(None))
    if org_id is not None:
        stmt = stmt.where(DeadLetter.org_id == org_id)
    count = 0
    for letter in await session.scalars(stmt.with_for_update(skip_locked=True)):
        if replay(session, letter) is not None:
            count += 1
    return count
