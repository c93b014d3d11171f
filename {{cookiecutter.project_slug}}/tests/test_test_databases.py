"""The test run's own databases: another run's clean-up leaves them alone while the run lives
(connected or not), and drops them once it has ended.

Runs are told apart by a shared advisory lock each live run holds (conftest.run_uid).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass
class OtherRun:
    """Another run, alive while `holder` holds its lock, and one database of it."""

    uid: str
    name: str
    holder: psycopg.Connection[Any]

    def end(self) -> None:
        """The run ends (or is killed): its connection goes, and the lock with it."""
        _close_and_wait(self.holder)


def _close_and_wait(conn: psycopg.Connection[Any]) -> None:
    """Close `conn` and wait until its server process has exited: close() returns before, and
    only the exit releases its advisory locks and takes it out of pg_stat_activity."""
    if conn.closed:
        return
    pid = conn.info.backend_pid
    conn.close()
    deadline = time.monotonic() + 10
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still alive 10 s after close"
            time.sleep(0.01)


@pytest.fixture
def other_run() -> Iterator[OtherRun]:
    """Another live run with one database nobody is connected to, dropped if still there.

    The run's lock is taken before its database exists: otherwise a start-up clean-up of
    another xdist worker of this run could drop the database as stale in between."""
    uid = uuid.uuid4().hex[:10]
    name = f"{PREFIX}{uid}_gw3_empty"
    holder = psycopg.connect(_admin_dsn(), autocommit=True)
    run = OtherRun(uid, name, holder)
    try:
        holder.execute("SELECT pg_advisory_lock_shared(%s, %s)", (_RUN_LOCK_CLASS, run_key(uid)))
        holder.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield run
    finally:
        run.end()
        drop_database(name)


def _dropped_once_ended(own_run: str, name: str) -> None:
    _clean(own_run)
    # Gone, whether this clean-up dropped it or another xdist worker's start-up clean-up
    # got there first (both run drop_stale; the database is stale to every one of them).
    assert not _exists(name)


def test_the_databases_of_an_ended_run_are_dropped(run_uid: str, other_run: OtherRun) -> None:
    other_run.end()
    _dropped_once_ended(run_uid, other_run.name)


def test_a_live_run_keeps_its_databases_until_it_ends(run_uid: str, other_run: OtherRun) -> None:
    assert other_run.name not in _clean(run_uid)  # nobody is connected to it: the lock protects it
    assert _exists(other_run.name)
    other_run.end()
    _dropped_once_ended(run_uid, other_run.name)


def test_a_database_someone_is_connected_to_is_kept(run_uid: str, other_run: OtherRun) -> None:
    """A run of an older conftest holds no run lock; its open connections still protect it."""
    connected = psycopg.connect(_admin_dsn(other_run.name))
    try:
        other_run.end()  # no lock from here on: only the connection protects the database
        assert other_run.name not in _clean(run_uid)
        assert _exists(other_run.name)
    finally:
        _close_and_wait(connected)
    _dropped_once_ended(run_uid, other_run.name)


def test_this_run_is_alive_to_everyone_else(run_uid: str, database_name: str) -> None:
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        taken = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (_RUN_LOCK_CLASS, run_key(run_uid))
        ).fetchone()
    assert taken == (False,)
    assert database_name not in _clean(uuid.uuid4().hex[:10])
    assert _exists(database_name)
