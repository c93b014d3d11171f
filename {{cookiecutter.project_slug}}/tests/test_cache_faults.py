"""The cache when Redis dies or black-holes mid-test: the database answers, the breaker opens,
no Redis call is attempted while it is open, and nothing stale is served after recovery.

Uses a private redis-server on a free port (redis_server.py), never the shared one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import orjson
import pytest
from redis.asyncio import Redis

from .api import Api
from .cache_helpers import ManualClock, cache_of, cached_app, redis_calls, requests, sample
from .conftest import running
from .factories import TaskFactory
from .redis_server import RedisServer

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed"),
]
COOLDOWN = 30.0  # on a manual clock: time only passes when the test moves it
BREAKER = {
    "cache_breaker_failures": 3,
    "cache_breaker_window_seconds": 60,
    "cache_breaker_cooldown_seconds": COOLDOWN,
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
