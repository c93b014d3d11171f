"""The data migration 0004 (tasks.completed_at) with data in place: create, backfill, downgrade,
upgrade again; the backfill commits batch by batch; a migration gives up on a lock it cannot get.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT

from ..conftest import _admin_dsn, async_url, migrate
from .test_migrations import alembic_config, alembic_engine

__all__ = ["alembic_config", "alembic_engine"]

DONE_AT = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)


def _seed(dsn: str) -> dict[str, uuid.UUID]:
    org, project = uuid.uuid4(), uuid.uuid4()
    ids = {"done": uuid.uuid4(), "todo": uuid.uuid4()}
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO organizations (id, name, created_at, updated_at)"
            " VALUES (%s, 'o', now(), now())",
            (org,),
        )
        conn.execute(
            "INSERT INTO projects (id, org_id, name, created_at, updated_at)"
            " VALUES (%s, %s, 'p', now(), now())",
            (project, org),
        )
        for status, task_id in ids.items():
            conn.execute(
                "INSERT INTO tasks (id, org_id, project_id, title, status, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, now(), %s)",
                (task_id, org, project, f"a {status} task", status, DONE_AT),
            )
    return ids


def _completed(dsn: str) -> dict[uuid.UUID, Any]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT id, completed_at FROM tasks").fetchall()
    return dict(rows)


def _columns(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'"
        ).fetchall()
    return {r[0] for r in rows}


def test_backfill_with_data_in_place(alembic_runner: Any, empty_database: str) -> None:
    dsn = _admin_dsn(empty_database)
    alembic_runner.migrate_up_to("0001")
    ids = _seed(dsn)

    alembic_runner.migrate_up_to("0004")
    completed = _completed(dsn)
    assert completed[ids["done"]] == DONE_AT
    assert completed[ids["todo"]] is None

    alembic_runner.migrate_down_to("0001")
    assert "completed_at" not in _columns(dsn)
    assert len(_completed_ids(dsn)) == 2  # the rows survive the downgrade

    alembic_runner.migrate_up_to("0004")
    assert _completed(dsn)[ids["done"]] == DONE_AT
    alembic_runner.migrate_down_to("base")


def _completed_ids(dsn: str) -> list[uuid.UUID]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM tasks").fetchall()]


def _batch_size() -> int:
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    revision = ScriptDirectory.from_config(config).get_revision("0004")
    assert revision is not None
    return int(revision.module.BATCH)


def test_the_backfill_commits_batch_by_batch(alembic_runner: Any, empty_database: str) -> None:
    """The ALTER commits first, then every batch in its own transaction (no long lock)."""
    dsn = _admin_dsn(empty_database)
    batch = _batch_size()
    alembic_runner.migrate_up_to("0002")
    ids = _seed(dsn)  # one done task, one to do
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO tasks (id, org_id, project_id, title, status, created_at, updated_at)"
            " SELECT gen_random_uuid(), org_id, project_id, 'bulk', 'done', now(), %s"
            " FROM tasks, generate_series(1, %s) WHERE id = %s",
            (DONE_AT, batch + 4, ids["done"]),
        )

    alembic_runner.migrate_up_to("0004")
    with psycopg.connect(dsn) as conn:
        per_transaction = conn.execute(
            "SELECT xmin::text, count(*) FROM tasks WHERE status = 'done' GROUP BY 1"
        ).fetchall()
        (altered_in,) = conn.execute(
            "SELECT xmin::text FROM pg_attribute"
            " WHERE attrelid = 'tasks'::regclass AND attname = 'completed_at'"
        ).fetchone() or ("",)
        left = conn.execute(
            "SELECT count(*) FROM tasks WHERE status = 'done' AND completed_at IS NULL"
        ).fetchone()
    assert left == (0,)
    assert sorted(n for _, n in per_transaction) == [5, batch]  # two batches, two commits
    assert altered_in not in {xid for xid, _ in per_transaction}
    alembic_runner.migrate_down_to("base")


def test_a_migration_gives_up_on_a_lock_it_cannot_get(empty_database: str) -> None:
    """env.py's lock_timeout: an ALTER behind a long transaction fails instead of queueing
    every query behind it; nothing of the revision is applied."""
    url = async_url(empty_database)
    migrate(url, "0002")
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes.update(database_url=url, configure_logger=False)
    config.cmd_opts = argparse.Namespace(x=["lock_timeout=200ms"])
    try:
        with psycopg.connect(_admin_dsn(empty_database)) as blocker:
            blocker.execute("LOCK TABLE tasks IN ACCESS SHARE MODE")  # held until the end
            with pytest.raises(DBAPIError, match="lock timeout"):
                command.upgrade(config, "0004")
        assert "completed_at" not in _columns(_admin_dsn(empty_database))
    finally:
        migrate(url, "base", down=True)
