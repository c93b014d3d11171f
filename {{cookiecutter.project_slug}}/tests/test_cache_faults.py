"""The cache when Redis dies or black-holes mid-test: the database answers, the breaker opens,
no Redis call is attempted while it is open, and nothing stale is served after recovery; and
the invalidation protocol when a writer crashes after COMMIT or cannot reach Redis at all.

Uses a private redis-server on a free port (redis_server.py), never the shared one.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator

import orjson
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from {{ cookiecutter.package_name }}.cache import CacheKeys, CircuitBreaker, ObjectRef, VersionedCache
from {{ cookiecutter.package_name }}.cache.backstop import CacheInvalidation
from {{ cookiecutter.package_name }}.cache.breaker import BreakerState
from {{ cookiecutter.package_name }}.cache.store import PENDING_TTL_SECONDS
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.resources.projects.schemas import ProjectOut
from {{ cookiecutter.package_name }}.resources.tasks.model import Task
from {{ cookiecutter.package_name }}.resources.tasks.reads import invalidate_tasks_after_commit

from .api import Api
from .cache_helpers import (
    ManualClock,
    cache_of,
    cached_app,
    redis_calls,
    requests,
    sample,
    state_of,
)
from .conftest import running
from .factories import TaskFactory
from .redis_server import RedisServer
from .tcp_proxy import TcpProxy

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed"),
]
COOLDOWN = 30.0  # on a manual clock: time only passes when the test moves it
BREAKER = {
    "cache_breaker_failures": 3,
    "cache_breaker_window_seconds": 60,
    "cache_breaker_cooldown_seconds": COOLDOWN,
    "cache_breaker_min_span_seconds": 0,  # the manual clock stands still between failures
    "cache_timeout_seconds": 0.1,
}
OPEN, CLOSED = 2.0, 0.0


@pytest.fixture
def server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.resume()
            server.stop()


def breaker_state() -> float:
    return sample("app_cache_breaker_state")


async def test_reads_survive_a_dead_redis_and_use_it_again_when_back(
    database_url: str, server: RedisServer
) -> None:
    app, _ = cached_app(database_url, server.url, **BREAKER)
    async with running(app) as client:
        clock = ManualClock()
        (await cache_of(client, app)).breaker.clock = clock
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = await api.project(org, owner)
        task = await api.task(org, owner, TaskFactory.payload(project["id"]))
        url = f"/orgs/{org}/tasks/{task['id']}"
        await client.get(url, headers=owner.headers)
        hits = requests("task", "hit")
        assert (await client.get(url, headers=owner.headers)).json() == task
        assert requests("task", "hit") == hits + 1

        server.stop()  # connection refused from now on
        for _ in range(3):  # each failed call counts; the third opens the breaker
            response = await client.get(url, headers=owner.headers)
            assert response.status_code == 200
            assert response.json() == task
        assert breaker_state() == OPEN

        calls, bypasses = redis_calls(), requests("task", "bypass")
        for _ in range(20):
            response = await client.get(url, headers=owner.headers)
            assert response.json() == task
        assert redis_calls() == calls  # open: not a single Redis call, so no timeout to wait
        assert requests("task", "bypass") == bypasses + 20

        server.start()  # same port, empty
        clock.now += COOLDOWN
        misses = requests("task", "miss")
        assert (await client.get(url, headers=owner.headers)).json() == task  # trial + refill
        assert breaker_state() == CLOSED
        hits = requests("task", "hit")
        assert (await client.get(url, headers=owner.headers)).json() == task
        assert requests("task", "miss") == misses + 1
        assert requests("task", "hit") == hits + 1  # the cache is used again


async def test_a_lost_invalidation_never_serves_the_stale_value(
    database_url: str, server: RedisServer
) -> None:
    app, namespace = cached_app(database_url, server.url, **BREAKER)
    direct = Redis.from_url(server.url)
    try:
        async with running(app) as client:
            clock = ManualClock()
            (await cache_of(client, app)).breaker.clock = clock
            api = Api(client)
            owner = await api.user()
            org = await api.org(owner)
            project = await api.project(org, owner, name="Before")
            url = f"/orgs/{org}/projects/{project['id']}"
            await client.get(url, headers=owner.headers)
            assert (await client.get(url, headers=owner.headers)).json()["name"] == "Before"

            server.pause()  # accepts connections, never answers: every call times out
            for _ in range(3):
                assert (await client.get(url, headers=owner.headers)).status_code == 200
            assert breaker_state() == OPEN
            lost = sample("app_cache_invalidations_total", outcome="lost")
            calls = redis_calls()
            patched = await client.patch(url, json={"name": "After"}, headers=owner.headers)
            assert patched.status_code == 200  # the write commits; Redis cannot be told
            assert sample("app_cache_invalidations_total", outcome="lost") == lost + 1
            assert redis_calls() == calls
            assert (await client.get(url, headers=owner.headers)).json()["name"] == "After"

            server.resume()  # back, with the old value and its tokens intact
            [value_key] = await direct.keys(f"{namespace}:val:*")
            stored = orjson.loads(await direct.get(value_key) or b"null")
            assert stored[3]["name"] == "Before"
            tokens = await direct.mget(
                [
                    f"{namespace}:epoch",
                    f"{namespace}:gen:{org}",
                    f"{namespace}:ver:{org}:project:{project['id']}",
                ]
            )
            # Tag for tag, the stale value still matches: only the resync keeps it unserved.
            assert stored[:3] == [t.decode() for t in tokens]

            clock.now += COOLDOWN
            resyncs = sample("app_cache_resyncs_total")
            for _ in range(3):
                assert (await client.get(url, headers=owner.headers)).json()["name"] == "After"
            assert sample("app_cache_resyncs_total") == resyncs + 1
            assert breaker_state() == CLOSED
            hits = requests("project", "hit")
            assert (await client.get(url, headers=owner.headers)).json()["name"] == "After"
            assert requests("project", "hit") == hits + 1
    finally:
        await direct.aclose()


async def test_one_lost_invalidation_bypasses_the_cache_until_resynced(
    server: RedisServer,
) -> None:
    # Redis sits behind a proxy: stopping the proxy refuses connections while Redis keeps its
    # data, so the invalidation surely never arrives and the stale value stays in Redis.
    proxy = TcpProxy("127.0.0.1", server.port)
    await proxy.start()
    direct = Redis.from_url(server.url)
    keys = CacheKeys("faults", "0001.test")
    # The breaker never opens here (threshold 100): the lost invalidation alone must suffice.
    cache = VersionedCache(
        Redis.from_url(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=0.1),
        keys,
        CircuitBreaker(failure_threshold=100, window_seconds=60, cooldown_seconds=60),
        timeout_seconds=0.1,
    )
    ref = ObjectRef(uuid.uuid4(), "project", uuid.uuid4())
    current = {"name": "Before"}
    sources: list[str] = []

    async def load(for_cache: bool) -> ProjectOut:
        sources.append("fill" if for_cache else "db-only")
        return ProjectOut.model_validate(
            {
                "id": ref.id,
                "name": current["name"],
                "description": None,
                "created_at": "2024-02-29T00:00:00Z",
                "updated_at": "2024-02-29T00:00:00Z",
            }
        )

    try:
        await cache.get_or_load(ref, ProjectOut, load)
        assert (await cache.get_or_load(ref, ProjectOut, load)).name == "Before"  # a hit
        assert sources == ["fill"]

        await proxy.stop()
        current["name"] = "After"  # committed in the database...
        await cache.invalidate([ref])  # ...but Redis cannot be told
        assert cache.resync_needed
        assert cache.breaker.state is BreakerState.closed
        assert (await cache.get_or_load(ref, ProjectOut, load)).name == "After"
        assert sources[-1] == "db-only"  # distrusted: straight to the database
        await proxy.start()  # same port: Redis is reachable again

        stored = orjson.loads(await direct.get(keys.value(ref)) or b"null")
        tokens = await direct.mget([keys.epoch(), keys.generation(ref.org_id), keys.version(ref)])
        assert stored[3]["name"] == "Before"
        assert stored[:3] == [t.decode() for t in tokens]  # stale, yet tagged as current

        assert (await cache.get_or_load(ref, ProjectOut, load)).name == "After"
        assert not cache.resync_needed
        assert (await cache.get_or_load(ref, ProjectOut, load)).name == "After"
        assert sources[-1] == "fill"  # refilled once after the resync, then hits
        assert sources.count("fill") == 2
    finally:
        await cache.close()
        await direct.aclose()
        await proxy.stop()


async def test_after_the_cooldown_only_one_request_waits_on_a_black_holed_redis(
    server: RedisServer,
) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=2, window_seconds=60, cooldown_seconds=30)
    breaker.clock = clock
    cache = VersionedCache(
        Redis.from_url(server.url), CacheKeys("faults", "0001.test"), breaker, timeout_seconds=0.1
    )
    ref = ObjectRef(uuid.uuid4(), "task", uuid.uuid4())

    async def load(_for_cache: bool) -> ProjectOut:
        return ProjectOut.model_validate(
            {
                "id": ref.id,
                "name": "from the database",
                "description": None,
                "created_at": "2024-02-29T00:00:00Z",
                "updated_at": "2024-02-29T00:00:00Z",
            }
        )

    try:
        server.pause()
        for _ in range(2):
            await cache.get_or_load(ref, ProjectOut, load)
        assert breaker.state is BreakerState.open
        clock.now += 30
        calls = redis_calls()
        answers = await asyncio.gather(
            *(cache.get_or_load(ref, ProjectOut, load) for _ in range(20))
        )
        assert {a.name for a in answers if a is not None} == {"from the database"}
        assert redis_calls() == calls + 1  # the single trial; the other 19 never waited
        assert breaker.state is BreakerState.open  # the trial timed out: open again
    finally:
        server.resume()
        await cache.close()


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs (not even the close hooks)."""


async def test_a_crash_between_commit_and_invalidation_serves_nothing_stale(
    database_url: str, server: RedisServer
) -> None:
    app, namespace = cached_app(database_url, server.url, **BREAKER)
    direct = Redis.from_url(server.url)
    try:
        async with running(app) as client:
            state = await state_of(client, app)
            api = Api(client)
            owner = await api.user()
            org = await api.org(owner)
            project = await api.project(org, owner)
            task = await api.task(org, owner, TaskFactory.payload(project["id"], title="Before"))
            url = f"/orgs/{org}/tasks/{task['id']}"
            await client.get(url, headers=owner.headers)
            hits = requests("task", "hit")
            assert (await client.get(url, headers=owner.headers)).json()["title"] == "Before"
            assert requests("task", "hit") == hits + 1

            # A writer commits, then dies before its after-commit hooks run.
            uow = UnitOfWork(state.db)

            async def die() -> None:
                raise Crash

            uow.after_commit(die)
            invalidate_tasks_after_commit(uow, state.cache, uuid.UUID(org), uuid.UUID(task["id"]))
            await uow.session.execute(
                update(Task).where(Task.id == uuid.UUID(task["id"])).values(title="After")
            )
            with pytest.raises(Crash):
                await uow.commit()
            await uow.session.close()

            version = f"{namespace}:ver:{org}:task:{task['id']}"
            marker = (await direct.get(version) or b"").decode()
            assert marker.startswith("~1:")  # one write in flight, as far as Redis knows
            assert 0 < await direct.ttl(version) <= PENDING_TTL_SECONDS
            bypasses = requests("task", "bypass")
            for _ in range(2):
                assert (await client.get(url, headers=owner.headers)).json()["title"] == "After"
            assert requests("task", "bypass") == bypasses + 2  # read around the cache

            await direct.delete(version)  # what the marker's TTL does after its 30 s
            misses, hits = requests("task", "miss"), requests("task", "hit")
            for _ in range(2):
                assert (await client.get(url, headers=owner.headers)).json()["title"] == "After"
            assert (requests("task", "miss"), requests("task", "hit")) == (misses + 1, hits + 1)
    finally:
        await direct.aclose()


async def _backstop_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(CacheInvalidation)) or 0)


@pytest.mark.parametrize("recovers", ["other process", "restarted writer"])
async def test_a_write_that_cannot_reach_redis_is_replayed_from_the_database(
    database_url: str, server: RedisServer, admin_engine: AsyncEngine, recovers: str
) -> None:
    # The writer reaches Redis through a proxy; the other process reaches it directly.
    proxy = TcpProxy("127.0.0.1", server.port)
    await proxy.start()
    writer_url = f"redis://127.0.0.1:{proxy.port}/0"
    writer, namespace = cached_app(database_url, writer_url, **BREAKER)
    other, _ = cached_app(database_url, server.url, cache_namespace=namespace, **BREAKER)
    try:
        async with running(other) as reader:
            async with running(writer) as client:
                api = Api(client)
                owner = await api.user()
                org = await api.org(owner)
                project = await api.project(org, owner, name="Before")
                url = f"/orgs/{org}/projects/{project['id']}"
                await reader.get(url, headers=owner.headers)
                hits = requests("project", "hit")
                assert (await reader.get(url, headers=owner.headers)).json()["name"] == "Before"
                assert requests("project", "hit") == hits + 1

                await proxy.stop()  # the writer alone is cut off from Redis
                recorded = sample("app_cache_invalidations_total", outcome="recorded")
                patched = await client.patch(url, json={"name": "After"}, headers=owner.headers)
                assert patched.status_code == 200
                assert sample("app_cache_invalidations_total", outcome="recorded") == recorded + 1
                assert await _backstop_rows(admin_engine) == 1  # committed with the write
                # The documented window: until a replay, the other process still has the
                # old value (at most one CACHE_BACKSTOP_INTERVAL_SECONDS in production).
                assert (await reader.get(url, headers=owner.headers)).json()["name"] == "Before"

            if recovers == "other process":
                backstop = (await state_of(reader, other)).cache_backstop
                assert await backstop.replay() == 1
            else:  # the writer restarts once Redis is reachable again: it replays at start-up
                await proxy.start()
                restarted, _ = cached_app(
                    database_url, writer_url, cache_namespace=namespace, **BREAKER
                )
                async with running(restarted) as again:
                    assert (await again.get(url, headers=owner.headers)).json()["name"] == "After"
            assert await _backstop_rows(admin_engine) == 0
            for _ in range(2):
                assert (await reader.get(url, headers=owner.headers)).json()["name"] == "After"
            hits = requests("project", "hit")
            assert (await reader.get(url, headers=owner.headers)).json()["name"] == "After"
            assert requests("project", "hit") == hits + 1  # cached again, the new value
    finally:
        await proxy.stop()
