"""Liveness and readiness."""

from __future__ import annotations

import httpx
import pytest

from {{ cookiecutter.package_name }}.app import create_app

from .conftest import REDIS_URL, make_settings, running


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")
async def test_ready_checks_redis_when_configured(database_url: str) -> None:
    app = create_app(make_settings(database_url, redis_url=REDIS_URL))
    async with running(app) as client:
        response = await client.get("/health/ready")
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_not_ready_when_redis_is_unreachable(database_url: str) -> None:
    # Port 9 (discard) on loopback refuses connections: a Redis that is down.
    app = create_app(make_settings(database_url, redis_url="redis://127.0.0.1:9/0"))
    async with running(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("failed")
