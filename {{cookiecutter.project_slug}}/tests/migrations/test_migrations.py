"""Migration smoke tests (pytest-alembic) on an empty PostgreSQL database.

- one head; upgrade base -> head; the models match what the migrations build (`alembic check`);
- stairway: every revision upgrades, downgrades and upgrades again, one step at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pytest_alembic import Config
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT

from ..conftest import _admin_dsn, async_url

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


@pytest.fixture
def alembic_config() -> Config:
    return Config(
        config_options={
            "file": str(PROJECT_ROOT / "alembic.ini"),
            "script_location": str(PROJECT_ROOT / "migrations"),
        },
        at_revision_data={},
    )


@pytest.fixture
def alembic_engine(empty_database: str) -> Iterator[AsyncEngine]:
    # NullPool: alembic runs each step in a fresh event loop; pooled connections would not move.
    engine = create_async_engine(async_url(empty_database), poolclass=NullPool)
    yield engine
    engine.sync_engine.dispose()


def _schema(database: str) -> set[str]:
    """Every relation and type of the public schema: tables, indexes, sequences, enums..."""
    with psycopg.connect(_admin_dsn(database)) as conn:
        relations = conn.execute(
            "SELECT relkind::text || ':' || relname FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace"
        ).fetchall()
        types = conn.execute(
            "SELECT typtype::text || ':' || typname FROM pg_type"
            " WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd', 'r', 'm')"
        ).fetchall()
    return {name for (name,) in relations + types}


def test_stairway_leaves_nothing_behind(alembic_runner: Any, empty_database: str) -> None:
    """Walk up and all the way down again: only alembic's own table (and its key) remains."""
    alembic_runner.migrate_up_to("heads")
    assert {"r:tasks", "r:outbox", "i:ix_tasks_org_created"} <= _schema(empty_database)
    alembic_runner.migrate_down_to("base")
    assert _schema(empty_database) == {"r:alembic_version", "i:alembic_version_pkc"}
