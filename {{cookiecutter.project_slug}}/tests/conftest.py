"""Fixtures: one ephemeral PostgreSQL database per test run, migrated by alembic, dropped after.

Environment:
- TEST_DATABASE_URL: a PostgreSQL server the tests may create databases on
  (default postgresql://postgres@127.0.0.1:5432/postgres).
- TEST_REPLICA_URL: a streaming replica of that server (replica tests skip without it).
- TEST_REDIS_URL: a Redis the tests may flush (Redis tests skip without it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT
from {{ cookiecutter.package_name }}.models import Base
from {{ cookiecutter.package_name }}.settings import Settings

from .api import Api

ADMIN_URL = make_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
REPLICA_URL = os.environ.get("TEST_REPLICA_URL")
REDIS_URL = os.environ.get("TEST_REDIS_URL")
TEST_SECRET = "test-secret-that-is-long-enough-for-production-checks"


def async_url(database: str, base: str | None = None) -> str:
    """The asyncpg URL of `database` on the server of `base` (default: the primary)."""
    url = make_url(base) if base else ADMIN_URL
    return url.set(drivername="postgresql+asyncpg", database=database).render_as_string(
        hide_password=False
    )


def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    """Run alembic against `url` in-process."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    (command.downgrade if down else command.upgrade)(config, revision)


PREFIX = "test_{{ cookiecutter.package_name }}_"
# One lock for every test run on this server: template creation and stale clean-up are serial.
_LOCK_ID = 4_242_017


def _admin_dsn(database: str | None = None) -> str:
    url = ADMIN_URL.set(drivername="postgresql")
    if database:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def _template_name() -> str:
    """Named after the migrations' content: a new or edited revision makes a new template."""
    digest = hashlib.sha256()
    for path in sorted((PROJECT_ROOT / "migrations").rglob("*.py")):
        digest.update(path.read_bytes())
    return f"{PREFIX}tpl_{digest.hexdigest()[:12]}"


def _drop_stale(conn: psycopg.Connection[Any], run_uid: str, template: str) -> None:
    """Drop what interrupted runs left behind: our databases nobody is connected to."""
    rows = conn.execute(
        "SELECT datname FROM pg_database d WHERE datname LIKE %s AND datname NOT LIKE %s"
        " AND datname <> %s AND NOT EXISTS"
        " (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        (PREFIX + "%", f"%{run_uid}%", template),
    ).fetchall()
    for (name,) in rows:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def database_name(testrun_uid: str, worker_id: str) -> Iterator[str]:
    """This worker's database: a copy of a migrated template database, dropped at the end.

    Every pytest-xdist worker gets its own copy, so `pytest -n auto` runs isolated. The template
    is migrated once per migrations' content; stale databases of interrupted runs are dropped."""
    run_uid = testrun_uid[:10]
    template = _template_name()
    name = f"{PREFIX}{run_uid}_{worker_id}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            _drop_stale(conn, run_uid, template)
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
                migrate(async_url(template))
                # Test data need not survive a crash: skip the WAL flush on every commit.
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(
                        sql.Identifier(template)
                    )
                )
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(
                    sql.Identifier(name)
                )
            )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    try:
        yield name
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def empty_database(testrun_uid: str, worker_id: str) -> Iterator[str]:
    """A database with no tables (for migration tests), dropped at the end."""
    name = f"{PREFIX}{testrun_uid[:10]}_{worker_id}_empty"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def database_url(database_name: str) -> str:
    """asyncpg URL of the run's database."""
    return async_url(database_name)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Test settings: no .env, cheap password hashing, a fixed secret."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "database_replica_url": None,
        "redis_url": None,
        "secret_key": TEST_SECRET,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        # Every test logs in from 127.0.0.1; the throttle's own tests set tight limits.
        "login_limit_per_address": "100000 per minute",
        "log_json": True,
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running(
    app: FastAPI, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan and give a client that talks to it in-process.

    `raise_app_exceptions=False` turns an unhandled error into the 500 a server would send."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture(scope="session")
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on the run's database, shared; tables are emptied after each test."""
    async with running(create_app(make_settings(database_url))) as client:
        yield client


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    """High-level helpers over the client (register, log in, create org...)."""
    return Api(client)


@pytest.fixture(scope="session")
async def admin_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A direct connection to the run's database, for assertions and clean-up."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts from empty tables (emptied after the test, when it used the database)."""
    yield
    if "database_name" not in request.fixturenames:
        return
    name: str = request.getfixturevalue("database_name")
    dsn = _admin_dsn(name)
    # DELETE in reverse dependency order: on a few rows it is much cheaper than TRUNCATE.
    with psycopg.connect(dsn) as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
