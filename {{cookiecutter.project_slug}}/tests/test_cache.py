"""The versioned read-through cache against a real Redis (TEST_REDIS_URL).

Each test uses a namespace of its own, so tests never see each other's keys.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.cache import CacheKeys, CircuitBreaker, ObjectRef, VersionedCache
from {{ cookiecutter.package_name }}.cache.schema_version import alembic_head, schema_version
from {{ cookiecutter.package_name }}.cache.store import PENDING_TTL_SECONDS, TOKEN_TTL_SECONDS
from {{ cookiecutter.package_name }}.resources.projects.schemas import ProjectOut
from {{ cookiecutter.package_name }}.resources.tasks.schemas import TaskOut

from .api import Api, User
from .cache_helpers import cached_app, requests, sample
from .conftest import REDIS_URL, running
from .factories import TaskFactory

HEAD = alembic_head(Path(__file__).resolve().parents[1] / "migrations")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set"),
]


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL or "")
    yield client
    await client.aclose()


@pytest.fixture
async def cached(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    app, namespace = cached_app(database_url, REDIS_URL or "")
    async with running(app) as client:
        yield client, namespace


def _direct_cache(keys: CacheKeys, ttls: dict[str, int] | None = None) -> VersionedCache:
    """A cache on the test Redis, used directly (no app): a 1 s timeout, a lenient breaker."""
    return VersionedCache(
        Redis.from_url(REDIS_URL or ""),
        keys,
        CircuitBreaker(failure_threshold=5, window_seconds=10, cooldown_seconds=1),
        timeout_seconds=1.0,
        ttls=ttls,
    )


async def _setup(api: Api) -> tuple[User, str, dict[str, object], dict[str, object]]:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    task = await api.task(org, owner, TaskFactory.payload(project["id"]))
    return owner, org, project, task


async def test_a_second_read_is_a_hit_under_a_versioned_key(
    cached: tuple[httpx.AsyncClient, str], redis: Redis
) -> None:
    client, namespace = cached
    owner, org, project, task = await _setup(Api(client))
    url = f"/orgs/{org}/projects/{project['id']}"
    misses, hits = requests("project", "miss"), requests("project", "hit")
    first = await client.get(url, headers=owner.headers)
    second = await client.get(url, headers=owner.headers)
    assert first.json() == second.json() == project
    assert requests("project", "miss") == misses + 1
    assert requests("project", "hit") == hits + 1

    keys = sorted(k.decode() for k in await redis.keys(f"{namespace}:val:*"))
    head = HEAD
    assert len(keys) == 1
    assert keys[0].startswith(f"{namespace}:val:{head}.")
    assert keys[0].endswith(f":{org}:project:{project['id']}")

    task_url = f"/orgs/{org}/tasks/{task['id']}"
    assert (await client.get(task_url, headers=owner.headers)).json() == task
    hits = requests("task", "hit")
    assert (await client.get(task_url, headers=owner.headers)).json() == task
    assert requests("task", "hit") == hits + 1


async def test_writes_invalidate_what_they_change(cached: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = cached
    owner, org, project, task = await _setup(Api(client))
    h = owner.headers
    task_url = f"/orgs/{org}/tasks/{task['id']}"
    project_url = f"/orgs/{org}/projects/{project['id']}"
    for _ in range(2):  # fill, then hit
        await client.get(task_url, headers=h)
        await client.get(project_url, headers=h)

    patched = await client.patch(task_url, json={"title": "Renamed ✅"}, headers=h)
    assert patched.status_code == 200
    assert (await client.get(task_url, headers=h)).json()["title"] == "Renamed ✅"

    renamed = await client.patch(project_url, json={"name": "New name 🚀"}, headers=h)
    assert renamed.status_code == 200
    assert (await client.get(project_url, headers=h)).json()["name"] == "New name 🚀"
    # The task embeds its project's name: that cached copy went too.
    assert (await client.get(task_url, headers=h)).json()["project"]["name"] == "New name 🚀"

    keyed = await client.put(
        f"/orgs/{org}/tasks/by-key/K-1",
        json={"project_id": project["id"], "title": "v1"},
        headers=h,
    )
    keyed_url = f"/orgs/{org}/tasks/{keyed.json()['id']}"
    assert (await client.get(keyed_url, headers=h)).json()["title"] == "v1"
    await client.put(
        f"/orgs/{org}/tasks/by-key/K-1",
        json={"project_id": project["id"], "title": "v2", "status": "done"},
        headers=h,
    )
    after_upsert = (await client.get(keyed_url, headers=h)).json()
    assert (after_upsert["title"], after_upsert["status"]) == ("v2", "done")

    assert (await client.delete(task_url, headers=h)).status_code == 204
    assert (await client.get(task_url, headers=h)).status_code == 404

    # Deleting the project deletes its tasks (ON DELETE CASCADE): their cached copies too.
    assert (await client.get(keyed_url, headers=h)).status_code == 200
    assert (await client.delete(project_url, headers=h)).status_code == 204
    assert (await client.get(project_url, headers=h)).status_code == 404
    assert (await client.get(keyed_url, headers=h)).status_code == 404


async def test_a_rejected_write_invalidates_nothing(cached: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = cached
    owner, org, _project, task = await _setup(Api(client))
    task_url = f"/orgs/{org}/tasks/{task['id']}"
    await client.get(task_url, headers=owner.headers)
    ok_before = sample("app_cache_invalidations_total", outcome="ok")
    bad = await client.patch(
        task_url, json={"assignee_id": str(uuid.uuid4())}, headers=owner.headers
    )
    assert bad.status_code == 422  # rolled back: the hook registered before it never runs
    assert sample("app_cache_invalidations_total", outcome="ok") == ok_before
    hits = requests("task", "hit")
    assert (await client.get(task_url, headers=owner.headers)).json() == task
    assert requests("task", "hit") == hits + 1


async def test_an_undecodable_value_is_a_miss_and_is_replaced(
    cached: tuple[httpx.AsyncClient, str], redis: Redis
) -> None:
    client, namespace = cached
    owner, org, project, _task = await _setup(Api(client))
    url = f"/orgs/{org}/projects/{project['id']}"
    await client.get(url, headers=owner.headers)
    [key] = await redis.keys(f"{namespace}:val:*")
    errors = sample("app_cache_decode_errors_total")
    for bad_shape in (False, True):
        stored = orjson.loads(await redis.get(key) or b"null")
        # Not JSON at all; or JSON under the current tags whose object is not a project.
        corrupt = (
            orjson.dumps([*stored[:3], {"id": "not-a-uuid"}]) if bad_shape else b"\x93not json"
        )
        await redis.set(key, corrupt)
        response = await client.get(url, headers=owner.headers)
        assert response.status_code == 200
        assert response.json() == project
        assert orjson.loads(await redis.get(key) or b"null")[3] == project  # refilled
    assert sample("app_cache_decode_errors_total") == errors + 2


async def test_a_reader_racing_a_writer_cannot_store_a_stale_value(redis: Redis) -> None:
    keys = CacheKeys(f"test-{uuid.uuid4().hex[:8]}", "0001.test")
    cache = _direct_cache(keys)
    ref = ObjectRef(uuid.uuid4(), "project", uuid.uuid4())
    old = ProjectOut.model_validate(
        {
            "id": ref.id,
            "name": "old",
            "description": None,
            "created_at": "2024-02-29T00:00:00Z",
            "updated_at": "2024-02-29T00:00:00Z",
        }
    )
    new = old.model_copy(update={"name": "new"})
    loads: list[str] = []

    async def slow_reader(_for_cache: bool) -> ProjectOut:
        # The reader has read the old row; meanwhile a writer commits and invalidates.
        loads.append("old")
        await cache.invalidate([ref])
        return old

    async def fresh_reader(_for_cache: bool) -> ProjectOut:
        loads.append("new")
        return new

    try:
        assert await cache.get_or_load(ref, ProjectOut, slow_reader) == old
        assert await cache.get_or_load(ref, ProjectOut, fresh_reader) == new
        assert await cache.get_or_load(ref, ProjectOut, fresh_reader) == new
        assert loads == ["old", "new"]  # the stale fill was never served; the fresh one was
    finally:
        await cache.close()


async def test_pending_markers_count_the_writes_in_flight(redis: Redis) -> None:
    keys = CacheKeys(f"test-{uuid.uuid4().hex[:8]}", "0001.test")
    cache = _direct_cache(keys, ttls={"project": 300})
    ref = ObjectRef(uuid.uuid4(), "project", uuid.uuid4())
    value = ProjectOut.model_validate(
        {
            "id": ref.id,
            "name": "v",
            "description": None,
            "created_at": "2024-02-29T00:00:00Z",
            "updated_at": "2024-02-29T00:00:00Z",
        }
    )
    fills: list[bool] = []

    async def load(for_cache: bool) -> ProjectOut:
        fills.append(for_cache)
        return value

    async def token() -> str:
        return (await redis.get(keys.version(ref)) or b"").decode()

    try:
        await cache.get_or_load(ref, ProjectOut, load)
        assert fills == [True]
        # The first read created the tokens: epoch and generation for a day, the version for
        # the resource's TTL (300 s here).
        assert 300 < await redis.ttl(keys.epoch()) <= TOKEN_TTL_SECONDS
        assert 300 < await redis.ttl(keys.generation(ref.org_id)) <= TOKEN_TTL_SECONDS
        assert 0 < await redis.ttl(keys.version(ref)) <= 300
        marked_at = time.monotonic()
        assert await cache.mark_pending([ref])  # two writers commit the same object
        assert await cache.mark_pending([ref])
        assert (await token()).startswith("~2:")
        assert 0 < await redis.ttl(keys.version(ref)) <= PENDING_TTL_SECONDS
        await cache.invalidate([ref])  # a replay meanwhile leaves the writers' markers
        assert (await token()).startswith("~2:")
        await cache.settle([ref], marked_at=marked_at)  # one settles; one is still in flight
        assert (await token()).startswith("~1:")
        await cache.get_or_load(ref, ProjectOut, load)
        assert fills == [True, False]  # read around the cache, nothing stored
        await cache.settle([ref], marked_at=marked_at)  # the last one leaves a fresh token
        fresh = await token()
        assert fresh
        assert not fresh.startswith("~")
        assert await redis.ttl(keys.version(ref)) > PENDING_TTL_SECONDS  # the project TTL
        for _ in range(2):
            await cache.get_or_load(ref, ProjectOut, load)
        assert fills == [True, False, True]  # refilled once, then a hit
    finally:
        await cache.close()


async def test_schema_versions_do_not_share_values() -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    ref = ObjectRef(uuid.uuid4(), "project", uuid.uuid4())
    value = ProjectOut.model_validate(
        {
            "id": ref.id,
            "name": "v",
            "description": "d",
            "created_at": "2024-02-29T00:00:00Z",
            "updated_at": "2024-02-29T00:00:00Z",
        }
    )
    calls: list[str] = []

    def cache_for(version: str) -> VersionedCache:
        return _direct_cache(CacheKeys(namespace, version))

    old_code, new_code = cache_for("0001.aaaa"), cache_for("0002.bbbb")

    async def load(_for_cache: bool) -> ProjectOut:
        calls.append("db")
        return value

    try:
        await old_code.get_or_load(ref, ProjectOut, load)
        await old_code.get_or_load(ref, ProjectOut, load)
        assert calls == ["db"]
        await new_code.get_or_load(ref, ProjectOut, load)
        assert calls == ["db", "db"]  # the new schema never reads the old code's value
        await new_code.invalidate([ref])  # ...but its writes drop the old code's copy too
        await old_code.get_or_load(ref, ProjectOut, load)
        assert calls == ["db", "db", "db"]
    finally:
        await old_code.close()
        await new_code.close()


def test_schema_version_follows_the_alembic_head(tmp_path: Path) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / "r1.py").write_text('revision = "0001"\ndown_revision = None\n')
    first = schema_version([ProjectOut, TaskOut], tmp_path)
    assert first.startswith("0001.")
    (tmp_path / "versions" / "r2.py").write_text('revision = "0002"\ndown_revision = "0001"\n')
    second = schema_version([ProjectOut, TaskOut], tmp_path)
    assert second.startswith("0002.")
    assert first.split(".")[1] == second.split(".")[1]  # same shapes, new head
    assert schema_version([ProjectOut], tmp_path) != second  # another shape, another version


def test_schema_version_refuses_to_guess_without_migrations(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no alembic migrations"):
        schema_version([ProjectOut], tmp_path / "not-installed")


def test_importing_the_app_does_not_import_alembic() -> None:
    # alembic is a large part of a cold start; only the lifespan needs it (schema_version).
    probe = "import sys, {{ cookiecutter.package_name }}.app; print('alembic' in sys.modules)"
    result = subprocess.run(  # noqa: S603 - our own interpreter, a fixed script
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
