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
    """An app whose cache uses `redis_url` under a namespace of its own; returns both."""
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        database_url, redis_url=redis_url, cache_namespace=namespace, **overrides
    )
    return create_app(settings), namespace


async def cache_of(client: httpx.AsyncClient, app: FastAPI) -> VersionedCache:
    """The running app's cache object (through a test-only route added on the fly)."""
    found: list[VersionedCache] = []

    async def grab(request: Request) -> dict[str, str]:
        found.append(request.state.cache)
        return {}

    app.add_api_route("/__test/cache", grab, methods=["GET"])
    await client.get("/__test/cache")
    return found[0]
