"""Invalidation around the commit, with a durable backstop when Redis cannot be told.

A write that changes cached objects calls `invalidate_on_commit(uow, cache, targets)`:

1. Before COMMIT, inside the transaction, the targets' tokens become *pending* markers in
   Redis (store.py). From then on the old values are never served and nobody fills the cache
   for those objects. If Redis cannot be told, one `cache_invalidations` row per target is
   added to the transaction instead: it commits exactly when the write does.
2. After COMMIT, fresh tokens replace the markers.

So a crash between COMMIT and step 2 leaves markers that simply expire (the next reader fills
from the committed rows), and a write that could not reach Redis leaves a row in the database
that survives a crash or a restart. Every API process replays its namespace's rows (at
start-up, before serving, then every `cache_backstop_interval_seconds`): it replaces the
tokens in Redis, then deletes the rows. Replaying twice is harmless (one more miss).

Limit: while the writer cannot reach Redis but other processes can, they may serve the old
value until the first replay, at most one interval later (the writer itself reads straight
from the database until it has resynced, see store.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from datetime import datetime

import structlog
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.cache.keys import ObjectRef
from {{ cookiecutter.package_name }}.cache.store import CacheUnavailable, Target, VersionedCache
from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, utcnow
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.observability.metrics import CACHE_INVALIDATIONS

log = structlog.get_logger(__name__)

REPLAY_BATCH = 500


class CacheInvalidation(IdMixin, Base):
    """An invalidation Redis has not taken yet; `resource` and `object_id` null: the tenant."""

    __tablename__ = "cache_invalidations"

    namespace: Mapped[str] = mapped_column(Text)
    org_id: Mapped[uuid.UUID]
    resource: Mapped[str | None] = mapped_column(Text)
    object_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def target(self) -> Target:
        """The object (or tenant) whose token must be replaced."""
        if self.resource is None or self.object_id is None:
            return self.org_id
        return ObjectRef(self.org_id, self.resource, self.object_id)


def _row(namespace: str, target: Target) -> CacheInvalidation:
    if isinstance(target, uuid.UUID):
        return CacheInvalidation(namespace=namespace, org_id=target)
    return CacheInvalidation(
        namespace=namespace, org_id=target.org_id, resource=target.resource, object_id=target.id
    )


def invalidate_on_commit(uow: UnitOfWork, cache: VersionedCache, targets: Sequence[Target]) -> None:
    """Invalidate `targets` around the unit of work's commit (see the module docstring)."""
    if not cache.enabled or not targets:
        return
    marked_at: float | None = None

    async def before_commit() -> None:
        nonlocal marked_at
        started = time.monotonic()  # the markers' life starts no later than this
        if await cache.mark_pending(targets):
            marked_at = started
            return
        uow.session.add_all(_row(cache.keys.namespace, t) for t in targets)
        CACHE_INVALIDATIONS.labels("recorded").inc()

    async def after_commit() -> None:
        nonlocal marked_at
        if marked_at is None:
            await cache.invalidate(targets)  # Redis may be back; else the rows wait
        else:
            await cache.settle(targets, marked_at=marked_at)
        marked_at = None

    async def on_close() -> None:
        if marked_at is not None:  # rolled back after marking: no need to wait for the expiry
            await cache.settle(targets, marked_at=marked_at)

    uow.before_commit(before_commit)
    uow.after_commit(after_commit)
    uow.on_close(on_close)


class BackstopReplayer:
    """Replays this namespace's recorded invalidations into Redis until none is left."""

    def __init__(self, db: Database, cache: VersionedCache, interval_seconds: float) -> None:
        self.db = db
        self.cache = cache
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def replay(self) -> int:
        """Apply every recorded invalidation to Redis and delete it; how many were applied.

        Raises CacheUnavailable (rows kept) when Redis does not take them."""
        done = 0
        if not self.cache.enabled:
            return done
        while True:
            async with self.db.writer() as session, session.begin():
                rows = list(
                    await session.scalars(
                        select(CacheInvalidation)
                        .where(CacheInvalidation.namespace == self.cache.keys.namespace)
                        .order_by(CacheInvalidation.id)
                        .limit(REPLAY_BATCH)
                        # Two processes replaying at once take different rows.
                        .with_for_update(skip_locked=True)
                    )
                )
                if not rows:
                    return done
                await self.cache.replace_tokens([row.target() for row in rows])
                ids = [row.id for row in rows]
                await session.execute(
                    delete(CacheInvalidation).where(CacheInvalidation.id.in_(ids))
                )
            done += len(rows)
            CACHE_INVALIDATIONS.labels("replayed").inc(len(rows))

    async def start(self, timeout_seconds: float = 5.0) -> None:
        """Replay once before serving, then keep replaying in the background."""
        try:
            async with asyncio.timeout(timeout_seconds):
                await self.replay()
        except Exception as exc:  # Redis or the database unreachable at start-up
            # Rows may be waiting that this process cannot apply: trust nothing until resynced.
            self.cache.distrust(f"backstop_not_replayed: {type(exc).__name__}")
        if self.cache.enabled:
            self._task = asyncio.create_task(self._loop(), name="cache-backstop")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                with suppress_instrumentation():  # a periodic probe, not a request: no spans
                    await self.replay()
            except CacheUnavailable:
                continue  # Redis is down: the breaker already says so; the rows wait
            except Exception as exc:  # the database is down: say so once, then keep trying
                if not self._failing:
                    log.warning("cache_backstop_replay_failed", error=type(exc).__name__)
                self._failing = True
                continue
            self._failing = False

    async def close(self) -> None:
        """Stop the background replay."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
