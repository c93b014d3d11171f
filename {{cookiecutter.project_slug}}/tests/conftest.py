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
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
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
# Each live run holds a shared advisory lock (_RUN_LOCK_CLASS, its run key) for as long as it
# lasts; the server releases it when the run's connection goes, however the run ended.
_RUN_LOCK_CLASS = 4_242_018
# Databases of a run: PREFIX + the run id (10 hex digits) + "_" + the worker and a suffix.
_RUN_DATABASE = re.compile("^" + re.escape(PREFIX) + r"(?P<run>[0-9a-f]{10})_")


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


def run_key(run_uid: str) -> int:
    """The key of a run's advisory lock (the first 7 hex digits of its id fit an int4)."""
    return int(run_uid[:7], 16)


def _run_is_live(conn: psycopg.Connection[Any], run_uid: str) -> bool:
    """True while some process of that run holds its lock."""
    key = (_RUN_LOCK_CLASS, run_key(run_uid))
    taken = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
    if taken and taken[0]:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
        return False
    return True


def _connected(conn: psycopg.Connection[Any], database: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
    return row is not None


def drop_stale(conn: psycopg.Connection[Any], own_run: str, template: str) -> list[str]:
    """Drop what ended runs left behind; returns the names dropped. Hold _LOCK_ID around it.

    A run's database goes only when no process of the run holds the run's lock and nobody is
    connected to it (a run of an older conftest takes no lock: its connections protect it).
    A template goes when another migration set replaced it and nobody is copying it."""
    names = conn.execute("SELECT datname FROM pg_database ORDER BY datname").fetchall()
    dropped: list[str] = []
    for (name,) in names:
        match = _RUN_DATABASE.match(name)
        if match:
            if match["run"] == own_run or _run_is_live(conn, match["run"]):
                continue
        elif not name.startswith(f"{PREFIX}tpl_") or name == template:
            continue
        if not _connected(conn, name):
            _drop(conn, name)
            dropped.append(name)
    return dropped


@pytest.fixture(scope="session")
def run_uid(testrun_uid: str) -> Iterator[str]:
    """This run's id, held as alive (its advisory lock) until the session ends.

    Every pytest-xdist worker takes the lock in shared mode, so the run stays alive while any
    of its workers does; a crashed or killed run releases it with its connection."""
    uid = testrun_uid[:10]
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock_shared(%s, %s)", (_RUN_LOCK_CLASS, run_key(uid)))
        yield uid


def _drop(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _no_fsync(conn: psycopg.Connection[Any], name: str) -> None:
    # Test data need not survive a crash: skip the WAL flush on every commit.
    conn.execute(
        sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
    )


def _copy_template(name: str, run: str) -> None:
    """Create `name` as a copy of the migrated template (made first if missing)."""
    template = _template_name()
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            drop_stale(conn, run, template)
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
                migrate(async_url(template))
                _no_fsync(conn, template)
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
            _no_fsync(conn, name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))


def drop_database(name: str) -> None:
    """Drop `name` (connections to it are ended)."""
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        _drop(conn, name)


@contextmanager
def migrated_copy(run: str, suffix: str) -> Iterator[str]:
    """A database of this run, copied from the migrated template, dropped on exit."""
    name = f"{PREFIX}{run}_{suffix}"
    _copy_template(name, run)
    try:
        yield name
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def database_name(run_uid: str, worker_id: str) -> Iterator[str]:
    """This worker's database: a copy of a migrated template database, dropped at the end.

    Every pytest-xdist worker gets its own copy, so `pytest -n auto` runs isolated. The template
    is migrated once per migrations' content; databases of ended runs are dropped."""
    with migrated_copy(run_uid, worker_id) as name:
        yield name


@pytest.fixture(scope="session")
def empty_database(run_uid: str, worker_id: str) -> Iterator[str]:
    """A database with no tables (for migration tests), dropped at the end."""
    name = f"{PREFIX}{run_uid}_{worker_id}_empty"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        drop_database(name)


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
    app: FastAPI, *, raise_app_exceptions: bool = True, client_address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan and give a client that talks to it in-process.

    `raise_app_exceptions=False` turns an unhandled error into the 500 a server would send;
    `client_address` is the address the app sees the requests come from."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(
            app=manager.app,
            raise_app_exceptions=raise_app_exceptions,
            client=(client_address, 50000),
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


# Every feature flag on (flags.py), for the shared app: the flagged flows are tested too.
FLAGS_ON = Path(__file__).with_name("flags-on.yaml")


@pytest.fixture(scope="session")
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on the run's database, shared; tables are emptied after each test."""
    async with running(create_app(make_settings(database_url, flags_file=FLAGS_ON))) as client:
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


# --- Background jobs: in-process jobs a test started finish before its tables are emptied ---
@pytest.fixture(autouse=True)
async def _settle_background_jobs(_empty_tables: None) -> AsyncIterator[None]:
    """Runs its teardown before `_empty_tables`: a job holding a row lock would otherwise
    block the synchronous DELETE, which blocks the event loop the job needs to finish."""
    yield
    from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime

    await JobsRuntime.settle_all()


# --- Figures a test reports with `record_property` (e.g. the schemathesis tally), printed once
# at the end of the run; user properties travel from pytest-xdist workers with the reports.
REPORTED_PROPERTIES = ("schemathesis",)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the reported figures (`schemathesis: N cases, 2xx=...`) after the test summary."""
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name in REPORTED_PROPERTIES and getattr(report, "when", "") == "call":
                    terminalreporter.write_line(str(value))
