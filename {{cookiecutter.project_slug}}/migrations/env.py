"""Alembic environment: async engine, URL from the service settings, batch mode on SQLite.

Each revision runs in a transaction of its own (`transaction_per_migration`), so an upgrade
over several revisions never holds one revision's locks while the next runs, and a data
migration can commit its batches one by one (`op.get_context().autocommit_block()`, see
0004). On PostgreSQL every statement waits at most `lock_timeout` for its lock (default 5s;
`alembic -x lock_timeout=30s upgrade head` to change it): an ALTER queued behind a long query
would otherwise block every query queued behind it. The offline SQL (`alembic upgrade --sql`,
linted by `make migrations-lint`) starts with the same SET.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from {{ cookiecutter.package_name }}.db.base import UTCDateTime
from {{ cookiecutter.package_name }}.models import Base
from {{ cookiecutter.package_name }}.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
LOCK_TIMEOUT = context.get_x_argument(as_dictionary=True).get("lock_timeout", "5s")


def _url() -> str:
    # A URL passed programmatically (tests) wins over the environment.
    return config.attributes.get("database_url") or Settings().database_url


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations must not import application code: render our column types as plain SQLAlchemy.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    is_sqlite = (url or str(connection.engine.url if connection else "")).startswith("sqlite")
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=is_sqlite,
        compare_type=True,
        render_item=_render_item,
        literal_binds=url is not None,
        transaction_per_migration=True,
    )


SET_LOCK_TIMEOUT = f"SET lock_timeout = '{LOCK_TIMEOUT}'"


def run_migrations_offline() -> None:
    """Emit SQL to stdout (alembic upgrade --sql) without a database."""
    _configure(url=_url())
    if context.get_context().dialect.name == "postgresql":
        context.execute(SET_LOCK_TIMEOUT)
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # A session setting, made before alembic starts its own transactions.
        external = connection.in_transaction()
        connection.exec_driver_sql(SET_LOCK_TIMEOUT)
        if not external:
            connection.commit()
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online(engine: AsyncEngine | None = None) -> None:
    """Migrate the database at the configured URL (or on the engine given)."""
    own = engine is None
    engine = engine or create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    if own:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
elif isinstance(given := config.attributes.get("connection"), AsyncEngine):
    asyncio.run(run_migrations_online(given))  # an engine handed in by pytest-alembic
elif given is not None:
    _run_sync(given)  # a connection handed in by the caller
else:
    asyncio.run(run_migrations_online())
