"""Helpers for cache tests: metric deltas and an app wired to a given Redis."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI, Request
from prometheus_client import REGISTRY

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.cache import VersionedCache

from .conftest import make_settings


def sample(name: str, **labels: str) -> float:
    """The current value of a Prometheus sample (0 when never touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(resource: str, result: str) -> float:
    """app_cache_requests_total for one resource and result."""
    return sample("app_cache_requests_total", resource=resource, result=result)


def redis_calls() -> float:
    """Every Redis call the cache attempted, successful or not."""
    return sample("app_cache_redis_calls_total", outcome="ok") + sample(
        "app_cache_redis_calls_total", outcome="error"
    )


class ManualClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cached_app(database_url: str, redis_url: str, **overrides: Any) -> tuple[FastAPI, str]:
    """An app whose cache uses `redis_url` under a namespace of its own; returns both.

    The backstop's background replay is off (a test replays by hand, when it means to), and
    Redis calls may take 1 s: on a loaded test machine 50 ms would turn hits into errors.
    Fault tests pass their own, short timeout."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "cache_namespace": f"test-{uuid.uuid4().hex[:8]}",
        "cache_backstop_interval_seconds": 3600.0,
        "cache_timeout_seconds": 1.0,
        **overrides,
    }
    return create_app(make_settings(database_url, **values)), values["cache_namespace"]


async def state_of(client: httpx.AsyncClient, app: FastAPI) -> Any:
    """The running app's request state: its db, cache, backstop (a test-only route)."""
    found: list[Any] = []

    async def grab(request: Request) -> dict[str, str]:
        found.append(request.state)
        return {}

    path = f"/__test/state/{uuid.uuid4().hex}"
    app.add_api_route(path, grab, methods=["GET"])
    await client.get(path)
    return found[0]


async def cache_of(client: httpx.AsyncClient, app: FastAPI) -> VersionedCache:
    """The running app's cache object."""
    cache: VersionedCache = (await state_of(client, app)).cache
    return cache
