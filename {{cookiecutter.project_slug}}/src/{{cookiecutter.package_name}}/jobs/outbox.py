"""Transactional outbox: work recorded in the same transaction as the write that causes it.

A handler calls `Outbox.add(...)` (or `emit(...)` for a domain event) on the request's unit of
work session; the row commits or rolls back with the write. After the commit a nudge runs the
relay, which claims pending rows, hands them to the queue and marks them dispatched. If Redis
is down the claim is undone and the rows wait for the next pass (the worker's cron, or the
service's own poller in-process). When the job finishes, the wrapper marks the row done or
dead; a dispatched row that never finishes (a worker died, Redis lost its data) is dispatched
again after `outbox_redispatch_after_seconds`. Delivery is therefore at least once, and
consumers dedupe by the row's id (the event id).

Tracing: a row stores the trace context of the span that wrote it (the request's), and the
relay sends each job under a PRODUCER span of that trace, whose context travels with the job.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import NoOpTracer, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue
from sqlalchemy import JSON, Index, String, and_, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, new_id, utcnow
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.jobs.registry import Dispatcher, JobArgs
from {{ cookiecutter.package_name }}.observability.metrics import (
    DEAD_LETTER_DEPTH,
    OUTBOX_ALREADY_QUEUED,
    OUTBOX_DISPATCH_FAILURES,
    OUTBOX_DISPATCHED,
)
from {{ cookiecutter.package_name }}.observability.tracing import extracted_context, inject_trace_context
from {{ cookiecutter.package_name }}.settings import Settings

log = structlog.get_logger(__name__)


class OutboxStatus(enum.StrEnum):
    """Where an outbox row is: waiting, handed to the queue, or finished."""

    pending = "pending"
    dispatched = "dispatched"
    done = "done"
    dead = "dead"


class OutboxMessage(IdMixin, Base):
    """One unit of work to run after a commit; `id` doubles as the job id and the event id."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_created", "status", "created_at"),)

    job_name: Mapped[str] = mapped_column(String(200))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    org_id: Mapped[uuid.UUID | None]
    # W3C trace context carrier ({"traceparent": ...}) of the request that caused the work.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.pending)
    dispatch_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]


def enqueue(
    session: AsyncSession,
    job_name: str,
    args: JobArgs,
    *,
    org_id: uuid.UUID | None = None,
    trace_context: dict[str, str] | None = None,
    message_id: uuid.UUID | None = None,
) -> OutboxMessage:
    """Add an outbox row to `session`'s transaction (the caller commits).

    `trace_context` defaults to the current span's: the job's spans join the writer's trace."""
    if trace_context is None:
        trace_context = inject_trace_context() or None
    row = OutboxMessage(
        id=message_id or new_id(),
        job_name=job_name,
        args=args,
        org_id=org_id,
        trace_context=trace_context,
        status=OutboxStatus.pending,
        dispatch_count=0,
        created_at=utcnow(),
    )
    session.add(row)
    return row


def job_meta(row: OutboxMessage, trace_context: dict[str, str] | None = None) -> JobArgs:
    """What travels with a job besides its arguments (the sender's trace context, by default
    the row's)."""
    return {
        "outbox_id": str(row.id),
        "org_id": str(row.org_id) if row.org_id else None,
        "trace_context": trace_context or row.trace_context,
    }


def _untraced_when_polling() -> AbstractContextManager[object]:
    """Claims made outside any trace (a poll) record nothing: a trace every few seconds would
    bury the real ones. Inside a request (the after-commit nudge) they are its children."""
    if trace.get_current_span().get_span_context().is_valid:
        return nullcontext()
    return suppress_instrumentation()


async def mark_completed(db: Database, outbox_id: str | None, status: OutboxStatus) -> None:
    """Record that the job of an outbox row finished (done) or was dead-lettered (dead)."""
    if not outbox_id:
        return
    async with db.writer() as session, session.begin():
        if db.dialect == "postgresql":
            # Losing this mark in a crash only means one more (deduped) delivery, so the
            # commit need not wait for the WAL flush: one fsync less per job.
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == uuid.UUID(outbox_id))
            .values(status=status, completed_at=utcnow())
        )


class Relay:
    """Moves pending outbox rows to the dispatcher; safe to run from many processes at once."""

    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher,
        settings: Settings,
        *,
        tracer: Tracer | None = None,
    ) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.settings = settings
        self.tracer = tracer or NoOpTracer()
        self._lock = asyncio.Lock()

    async def _claim(self, limit: int) -> list[OutboxMessage]:
        """Mark up to `limit` due rows dispatched, in one short transaction, and return them."""
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.outbox_redispatch_after_seconds)
        due = or_(
            OutboxMessage.status == OutboxStatus.pending,
            and_(
                OutboxMessage.status == OutboxStatus.dispatched,
                OutboxMessage.dispatched_at < stale,
            ),
        )
        async with self.db.writer() as session, session.begin():
            # SKIP LOCKED: two relays (API nudge, worker cron) never claim the same row.
            rows = list(
                await session.scalars(
                    select(OutboxMessage)
                    .where(due)
                    .order_by(OutboxMessage.created_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.status = OutboxStatus.dispatched
                row.dispatched_at = now
                row.dispatch_count += 1
        return rows

    async def _unclaim(self, rows: list[OutboxMessage]) -> None:
        async with self.db.writer() as session, session.begin():
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_([r.id for r in rows]),
                    OutboxMessage.status == OutboxStatus.dispatched,
                )
                .values(status=OutboxStatus.pending, dispatched_at=None)
            )

    async def run_once(self, limit: int = 200) -> int:
        """One pass: claim due rows and dispatch them; returns how many were dispatched."""
        async with self._lock:
            with _untraced_when_polling():
                rows = await self._claim(limit)
            for index, row in enumerate(rows):
                try:
                    await self._send(row)
                except Exception as exc:
                    # Redis is down: give the rest back; the next pass retries them.
                    OUTBOX_DISPATCH_FAILURES.inc()
                    log.warning(
                        "outbox_dispatch_failed", error=repr(exc), waiting=len(rows) - index
                    )
                    with _untraced_when_polling():
                        await self._unclaim(rows[index:])
                    return index
                OUTBOX_DISPATCHED.inc()
            return len(rows)

    async def _send(self, row: OutboxMessage) -> None:
        """Hand one row to the dispatcher under a PRODUCER span of the row's trace."""
        attributes: dict[str, AttributeValue] = {
            "messaging.system": self.dispatcher.system,
            "messaging.operation.type": "send",
            "messaging.destination.name": self.settings.jobs_queue_name,
            "messaging.message.id": str(row.id),
            "app.job.name": row.job_name,
            "app.outbox.dispatch_count": row.dispatch_count,
        }
        with (
            extracted_context(row.trace_context),
            self.tracer.start_as_current_span(
                f"send {row.job_name}", kind=SpanKind.PRODUCER, attributes=attributes
            ) as span,
        ):
            meta = job_meta(row, inject_trace_context() or None)
            queued = await self.dispatcher.dispatch(row.job_name, row.args, meta, str(row.id))
            if not queued:
                # The same job id is still queued or running (a redispatch overtook a slow
                # job): nothing is lost, the running job marks the row when it ends.
                span.set_attribute("app.outbox.already_queued", True)
                OUTBOX_ALREADY_QUEUED.inc()
                log.info("outbox_job_already_queued", job=row.job_name, outbox_id=str(row.id))

    async def drain(self, limit: int = 200) -> int:
        """Run passes until nothing is due (or the queue refuses); returns rows dispatched."""
        total = 0
        while (sent := await self.run_once(limit)) == limit:
            total += sent
        return total + sent

    async def nudge(self) -> None:
        """An after-commit kick: relay now instead of at the next poll; never raises."""
        try:
            await self.drain()
        except Exception:
            log.exception("outbox_relay_failed")

    async def housekeeping(self) -> None:
        """Delete finished outbox rows past retention and expired idempotency records; refresh
        the dead-letter depth gauge."""
        cutoff = utcnow() - timedelta(hours=self.settings.outbox_retention_hours)
        # Periodic upkeep, like a probe: tracing it would start a trace per pass.
        with suppress_instrumentation():
            depth = await self._purge_and_count(cutoff)
        DEAD_LETTER_DEPTH.set(depth)

    async def _purge_and_count(self, cutoff: datetime) -> int:
        from {{ cookiecutter.package_name }}.idempotency import purge_expired  # only this pass needs it
        from {{ cookiecutter.package_name }}.jobs.dead_letters import DeadLetter  # the two tables reference each other

        async with self.db.writer() as session, session.begin():
            await session.execute(
                delete(OutboxMessage).where(
                    OutboxMessage.status.in_([OutboxStatus.done, OutboxStatus.dead]),
                    OutboxMessage.completed_at < cutoff,
                )
            )
            # Past their retention the keys are free again (lookups already ignore them).
            await purge_expired(session)
            depth = await session.scalar(
                select(func.count()).select_from(DeadLetter).where(DeadLetter.replayed_at.is_(None))
            )
        return depth or 0


class Outbox:
    """The request's view of the outbox: rows join its transaction; the relay runs after commit."""

    def __init__(self, uow: UnitOfWork, relay: Relay) -> None:
        self.uow = uow
        self.relay = relay
        self._nudging = False

    def add(
        self,
        job_name: str,
        args: JobArgs,
        *,
        org_id: uuid.UUID | None = None,
        message_id: uuid.UUID | None = None,
    ) -> OutboxMessage:
        """Record a job in this request's transaction; it runs once the request commits.

        The row carries the current span's trace context (the request's server span)."""
        row = enqueue(self.uow.session, job_name, args, org_id=org_id, message_id=message_id)
        self.nudge_after_commit()
        return row

    def nudge_after_commit(self) -> None:
        """Run the relay once this request commits (rows added by other helpers included)."""
        if not self._nudging:
            self._nudging = True
            self.uow.after_commit(self.relay.nudge)
