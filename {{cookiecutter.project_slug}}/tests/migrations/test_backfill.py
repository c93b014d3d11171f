"""The data migration 0004 (tasks.completed_at) with data in place: create, backfill, downgrade,
upgrade again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from ..conftest import _admin_dsn
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
