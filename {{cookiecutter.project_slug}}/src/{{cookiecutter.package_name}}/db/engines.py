"""Engines and read/write routing: writes to the primary, reads to the replica when it answers.

- `Database.writer()` is a session on the primary.
- `Database.reader()` opens a session on the replica; if the replica cannot be reached it marks
  it down for `replica_retry_after_seconds`, logs and counts that once, and reads from the
  primary instead. `prefer_primary=True` (read-your-writes) skips the replica.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import structlog
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from {{ cookiecutter.package_name }}.observability.metrics import DB_READS, REPLICA_FALLBACKS
from {{ cookiecutter.package_name }}.settings import Settings

log = structlog.get_logger(__name__)

DbRole = Literal["primary", "replica"]
# What a dead or unreachable server raises at connect time, across asyncpg and the pool.
_UNREACHABLE = (OSError, TimeoutError, DBAPIError, InterfaceError)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str, settings: Settings) -> AsyncEngine:
    """An engine with pool sizing, connect timeout and liveness checks from settings."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # A pooled connection to a server that restarted is detected at checkout, not mid-query.
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"timeout": settings.db_connect_timeout_seconds},
    )


class Database:
    """The primary engine, an optional replica engine, and the routing between them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.primary = make_engine(settings.database_url, settings)
        self.replica = (
            make_engine(settings.database_replica_url, settings)
            if settings.database_replica_url
            else None
        )
        self._sessions = async_sessionmaker(self.primary, expire_on_commit=False)
        self._replica_down_until = 0.0

    @property
    def dialect(self) -> str:
        """`postgresql` or `sqlite`."""
        return self.primary.dialect.name

    def writer(self) -> AsyncSession:
        """A new session on the primary; the caller owns commit and close."""
        return self._sessions()

    async def _replica_connection(self) -> AsyncConnection | None:
        if self.replica is None or time.monotonic() < self._replica_down_until:
            return None
        try:
            return await self.replica.connect()
        except _UNREACHABLE as exc:
            self._replica_down_until = time.monotonic() + self.settings.replica_retry_after_seconds
            REPLICA_FALLBACKS.inc()
            log.warning(
                "replica_unreachable_reading_from_primary",
                error=type(exc).__name__,
                retry_after_s=self.settings.replica_retry_after_seconds,
            )
            return None

    @asynccontextmanager
    async def reader(self, *, prefer_primary: bool = False) -> AsyncIterator[AsyncSession]:
        """A read-only session: on the replica when there is one that answers, else the primary."""
        conn = None if prefer_primary else await self._replica_connection()
        if conn is None:
            # The primary needs no health probe: connect lazily, at the first statement, so a
            # read answered from the cache costs no pool checkout and no round trip.
            DB_READS.labels("primary").inc()
            async with self._sessions() as session:
                session.info["db_role"] = "primary"
                yield session
            return
        role: DbRole = "replica"
        DB_READS.labels(role).inc()
        try:
            async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                session.info["db_role"] = role
                yield session
        finally:
            await conn.close()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.primary.dispose()
        if self.replica is not None:
            await self.replica.dispose()
