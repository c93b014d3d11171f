"""The test run's own databases: another run's clean-up leaves them alone while the run lives
(connected or not), and drops them once it has ended.

Runs are told apart by a shared advisory lock each live run holds (conftest.run_uid).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from .conftest import (
    _LOCK_ID,
    _RUN_LOCK_CLASS,
    PREFIX,
    _admin_dsn,
    _template_name,
    drop_database,
    drop_stale,
    run_key,
)


def _clean(own_run: str) -> list[str]:
    """What the next run's clean-up would drop (it holds the clean-up lock, like the fixture)."""
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            return drop_stale(conn, own_run, _template_name())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))


def _exists(name: str) -> bool:
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


@pytest.fixture
def other_run() -> Iterator[tuple[str, str]]:
    """Another run's id and one database of it (nobody connected), dropped if still there."""
    uid = uuid.uuid4().hex[:10]
    name = f"{PREFIX}{uid}_gw3_empty"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield uid, name
    drop_database(name)


def test_the_databases_of_an_ended_run_are_dropped(
    run_uid: str, other_run: tuple[str, str]
) -> None:
    _, name = other_run
    _clean(run_uid)
    # Gone, whether this clean-up dropped it or another xdist worker's start-up clean-up
    # got there first (both run drop_stale; the database is stale to every one of them).
    assert not _exists(name)


def test_a_live_run_keeps_its_databases_until_it_ends(
    run_uid: str, other_run: tuple[str, str]
) -> None:
    uid, name = other_run
    with psycopg.connect(_admin_dsn(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock_shared(%s, %s)", (_RUN_LOCK_CLASS, run_key(uid)))
        assert name not in _clean(run_uid)  # nobody is connected to it: the lock protects it
        assert _exists(name)
    # The run's connection is gone (it ended, or was killed): the lock went with it.
    assert name in _clean(run_uid)


def test_a_database_someone_is_connected_to_is_kept(
    run_uid: str, other_run: tuple[str, str]
) -> None:
    """A run of an older conftest holds no run lock; its open connections still protect it."""
    _, name = other_run
    with psycopg.connect(_admin_dsn(name)):
        assert name not in _clean(run_uid)
    assert name in _clean(run_uid)


def test_this_run_is_alive_to_everyone_else(run_uid: str, database_name: str) -> None:
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        taken = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (_RUN_LOCK_CLASS, run_key(run_uid))
        ).fetchone()
    assert taken == (False,)
    assert database_name not in _clean(uuid.uuid4().hex[:10])
    assert _exists(database_name)
