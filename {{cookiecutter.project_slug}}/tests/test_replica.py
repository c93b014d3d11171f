"""Read/write routing against a real streaming replica (TEST_REPLICA_URL).

Which server answered is proven by `pg_is_in_recovery()`: true only on a standby. The replica
sits behind a local TCP proxy so a test can take it away and bring it back.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.dependencies import SessionDep
from {{ cookiecutter.package_name }}.observability.metrics import REPLICA_FALLBACKS

from .api import Api
from .cache_helpers import cached_app, requests, state_of
from .conftest import REDIS_URL, REPLICA_URL, async_url, make_settings, running
from .factories import TaskFactory
from .tcp_proxy import TcpProxy

pytestmark = [
    pytest.mark.replica,
    pytest.mark.skipif(not REPLICA_URL, reason="TEST_REPLICA_URL is not set (no replica here)"),
]


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    url = make_url(REPLICA_URL or "")
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def replica_ready(database_name: str) -> str:
    """The replica's URL of the run's database, once it has replayed the migrations."""
    url = async_url(database_name, REPLICA_URL)
    engine = create_async_engine(url)
    try:
        for _ in range(100):
            try:
                async with engine.connect() as conn:
                    if await conn.scalar(text("SELECT count(*) FROM alembic_version")):
                        return url
            except Exception:  # the database may not exist on the standby yet
                await asyncio.sleep(0.1)
        pytest.fail("the replica did not catch up within 10 s")
    finally:
        await engine.dispose()
    return url


def _app(database_url: str, proxy: TcpProxy, database_name: str) -> FastAPI:
    replica = async_url(database_name, f"postgresql://postgres@127.0.0.1:{proxy.port}/x")
    app = create_app(
        make_settings(
            database_url,
            database_replica_url=replica,
            replica_retry_after_seconds=0.2,
            read_your_writes_seconds=5,
        )
    )

    @app.get("/__test/db-role")
    async def read_role(session: SessionDep) -> dict[str, bool]:
        return {"in_recovery": bool(await session.scalar(text("SELECT pg_is_in_recovery()")))}

    @app.post("/__test/db-role")
    async def write_role(session: SessionDep) -> dict[str, bool]:
        return {"in_recovery": bool(await session.scalar(text("SELECT pg_is_in_recovery()")))}

    return app


@pytest.fixture
async def routed(
    database_url: str, database_name: str, proxy: TcpProxy, replica_ready: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(_app(database_url, proxy, database_name)) as client:
        yield client


async def test_reads_go_to_the_replica_and_writes_to_the_primary(routed: httpx.AsyncClient) -> None:
    assert (await routed.get("/__test/db-role")).json() == {"in_recovery": True}
    write = await routed.post("/__test/db-role")
    assert write.json() == {"in_recovery": False}


async def test_read_your_writes_after_a_write(api: Api, routed: httpx.AsyncClient) -> None:
    routed_api = Api(routed)
    owner = await routed_api.user()
    created = await routed.post("/orgs", json={"name": "Fresh"}, headers=owner.headers)
    token = created.headers["x-consistency-token"]
    assert "consistency_token=" in created.headers["set-cookie"]
    routed.cookies.clear()
    with_token = await routed.get("/__test/db-role", headers={"X-Consistency-Token": token})
    assert with_token.json() == {"in_recovery": False}
    fresh = await routed.get(
        f"/orgs/{created.json()['id']}", headers={**owner.headers, "X-Consistency-Token": token}
    )
    assert fresh.status_code == 200  # seen at once, whatever the replication lag
    assert (await routed.get("/__test/db-role")).json() == {"in_recovery": True}
    forged = await routed.get("/__test/db-role", headers={"X-Consistency-Token": token + "0"})
    assert forged.json() == {"in_recovery": True}


async def test_reads_fall_back_to_the_primary_when_the_replica_is_down(
    routed: httpx.AsyncClient, proxy: TcpProxy
) -> None:
    assert (await routed.get("/__test/db-role")).json() == {"in_recovery": True}
    before = REPLICA_FALLBACKS._value.get()
    await proxy.stop()
    for _ in range(3):
        response = await routed.get("/__test/db-role")
        assert response.status_code == 200
        assert response.json() == {"in_recovery": False}
    assert REPLICA_FALLBACKS._value.get() >= before + 1
    await proxy.start()  # same port: the replica is back
    await asyncio.sleep(0.3)  # past replica_retry_after_seconds
    assert (await routed.get("/__test/db-role")).json() == {"in_recovery": True}


@contextmanager
def traffic(db: Database) -> Iterator[tuple[Counter[str], list[tuple[str, str]]]]:
    """Pool checkouts per server, and every statement with the server that ran it."""
    checkouts: Counter[str] = Counter()
    statements: list[tuple[str, str]] = []
    # Reads on the primary go through its autocommit engine: both count as the primary.
    engines: list[tuple[str, AsyncEngine]] = [
        ("replica" if name == "replica" else "primary", engine)
        for name, engine in db.engines().items()
    ]
    listeners: list[tuple[Any, str, Any]] = []
    for role, engine in engines:

        def checkout(*_args: Any, role: str = role) -> None:
            checkouts[role] += 1

        def executed(_conn: Any, _cursor: Any, sql: str, *_args: Any, role: str = role) -> None:
            statements.append((role, sql))

        listeners += [
            (engine.sync_engine.pool, "checkout", checkout),
            (engine.sync_engine, "before_cursor_execute", executed),
        ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield checkouts, statements
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")
async def test_a_read_served_from_the_cache_checks_out_no_connection(
    database_url: str, replica_ready: str
) -> None:
    # No read-your-writes window: every GET is routed to the replica.
    app, _ = cached_app(
        database_url,
        REDIS_URL or "",
        database_replica_url=replica_ready,
        read_your_writes_seconds=0,
    )
    async with running(app) as client:
        db: Database = (await state_of(client, app)).db
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = await api.project(org, owner)
        task = await api.task(org, owner, TaskFactory.payload(project["id"]))
        url = f"/orgs/{org}/tasks/{task['id']}"
        with traffic(db) as (checkouts, statements):
            assert (await client.get(url, headers=owner.headers)).json() == task  # fill
        # The role and the cache fill both came from the primary, never the lagging replica.
        assert {role for role, sql in statements if "FROM memberships" in sql} == {"primary"}
        assert {role for role, sql in statements if "FROM tasks" in sql} == {"primary"}
        assert checkouts["replica"] == 0  # the replica session never had to connect
        hits = requests("task", "hit")
        with traffic(db) as (checkouts, statements):
            for _ in range(10):
                assert (await client.get(url, headers=owner.headers)).json() == task
        assert requests("task", "hit") == hits + 10
        assert checkouts == Counter()  # not a checkout, not a ping, on either server
        assert statements == []


async def test_a_role_is_read_from_the_primary_even_on_the_replica_route(
    database_url: str, database_name: str, proxy: TcpProxy, replica_ready: str
) -> None:
    app = _app(database_url, proxy, database_name)
    async with running(app) as client:
        db: Database = (await state_of(client, app)).db
        api = Api(client)
        owner = await api.user()
        created = await client.post("/orgs", json={"name": "Roles"}, headers=owner.headers)
        client.cookies.clear()  # no read-your-writes token: the GET is routed to the replica
        with traffic(db) as (_checkouts, statements):
            listing = await client.get(
                f"/orgs/{created.json()['id']}/projects", headers=owner.headers
            )
    # Seen at once whatever the replication lag, because the role came from the primary (a
    # role read from a lagging replica would also outlive a revocation by the lag).
    assert listing.status_code == 200
    assert {role for role, sql in statements if "FROM memberships" in sql} == {"primary"}
    assert {role for role, sql in statements if "FROM projects" in sql} == {"replica"}
