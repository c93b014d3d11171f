"""Liveness and readiness."""

from __future__ import annotations

import gc

import httpx
import pytest

from {{ cookiecutter.package_name }}.app import YOUNG_GC_THRESHOLD, create_app

from .conftest import REDIS_URL, make_settings, running
from .tcp_proxy import ThreadedProxy, primary_proxy

__all__ = ["primary_proxy"]  # a fixture


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="TEST_REDIS_URL is not set")
async def test_ready_checks_redis_when_configured(database_url: str) -> None:
    app = create_app(make_settings(database_url, redis_url=REDIS_URL))
    async with running(app) as client:
        response = await client.get("/health/ready")
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_a_dead_redis_degrades_but_stays_ready(database_url: str) -> None:
    # Port 9 (discard) on loopback refuses connections: a Redis that is down. The cache's
    # breaker serves reads from the database, so the pod must stay in the load balancer.
    app = create_app(make_settings(database_url, redis_url="redis://127.0.0.1:9/0"))
    async with running(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("failed")


async def test_not_ready_while_the_database_is_unreachable(
    primary_proxy: tuple[ThreadedProxy, str],
) -> None:
    # Stopping the proxy cuts the pool's connections and refuses new ones, as a crash would.
    proxy, url = primary_proxy
    async with running(create_app(make_settings(url))) as client:
        assert (await client.get("/health/ready")).status_code == 200
        proxy.stop()
        try:
            response = await client.get("/health/ready")
            live = await client.get("/health/live")
        finally:
            proxy.start()  # same port: the database is back
        again = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["checks"]["database"].startswith("failed")
    assert live.status_code == 200  # liveness checks nothing: a restart would not help
    assert again.status_code == 200


async def test_the_app_tunes_the_collector_while_it_serves_and_restores_it(
    database_url: str,
) -> None:
    before = gc.get_threshold()
    app = create_app(make_settings(database_url))
    async with running(app) as client:
        assert (await client.get("/health/live")).status_code == 200
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before
