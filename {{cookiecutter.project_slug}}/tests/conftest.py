"""Fixtures: one ephemeral PostgreSQL database per test run, migrated by alembic, dropped after.

Environment:
- TEST_DATABASE_URL: a PostgreSQL server the tests may create databases on
  (default postgresql://postgres@127.0.0.1:5432/postgres).
- TEST_REPLICA_URL: a streaming replica of that server (replica tests skip without it).
- TEST_REDIS_URL: a Redis the tests may flush (Redis tests skip without it).
"""

from __future__ import annotations

import os
import uuid
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
from pytest_postgresql.janitor import DatabaseJanitor
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


@pytest.fixture(scope="session")
def database_name(worker_id: str) -> Iterator[str]:
    """An ephemeral database, migrated to head; dropped at the end of the run."""
    name = f"test_{{ cookiecutter.package_name }}_{worker_id}_{uuid.uuid4().hex[:8]}"
    janitor = DatabaseJanitor(
        user=ADMIN_URL.username or "postgres",
        password=ADMIN_URL.password,
        host=ADMIN_URL.host or "127.0.0.1",
        port=ADMIN_URL.port or 5432,
        dbname=name,
    )
    janitor.init()
    try:
        migrate(async_url(name))
        yield name
    finally:
        janitor.drop()


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
        "log_json": True,
        "log_level": "WARNING",
        # Background jobs: retries in milliseconds; the outbox poller effectively off, so a
        # test's rows are relayed by that test's own nudge or runtime, never by another app.
        "job_retry_base_seconds": 0.01,
        "job_retry_max_seconds": 0.05,
        "outbox_relay_interval_seconds": 3600.0,
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
    """Each test starts from empty tables (TRUNCATE after the test, when it used the database)."""
    yield
    if "database_name" not in request.fixturenames:
        return
    name: str = request.getfixturevalue("database_name")
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    dsn = ADMIN_URL.set(drivername="postgresql", database=name).render_as_string(
        hide_password=False
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} CASCADE")  # type: ignore[arg-type]


# --- Background jobs: in-process jobs a test started finish before its tables are emptied ---
@pytest.fixture(autouse=True)
async def _settle_background_jobs(_empty_tables: None) -> AsyncIterator[None]:
    """Runs its teardown before `_empty_tables`: a job holding a row lock would otherwise
    block the synchronous TRUNCATE, which blocks the event loop the job needs to finish."""
    yield
    from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime

    await JobsRuntime.settle_all()
