"""Liveness (the process answers) and readiness (it can serve requests).

Only the primary database decides readiness. Redis is reported but never makes the service
unready: the cache's circuit breaker keeps reads working without it, and a readiness probe
that failed on Redis would take every pod out of the load balancer at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from sqlalchemy import text

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.errors import problem_response

router = APIRouter(prefix="/health", tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up; no dependency is checked (a restart would not fix them)."""
    return {"status": "ok"}


async def _database(db: Database) -> None:
    async with db.primary.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis(redis: Redis) -> None:
    await redis.ping()


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure is reported by name, never raised
        return f"failed: {type(exc).__name__}"
    return "ok"


@router.get("/ready", response_model=None)
async def ready(request: Request) -> JSONResponse | object:
    """200 while the primary database answers (`degraded` if Redis does not); else 503."""
    results = {"database": await _check(_database(request.state.db))}
    redis: Redis | None = request.state.redis
    if redis is not None:
        results["redis"] = await _check(_redis(redis))
    if results["database"] != "ok":
        return problem_response(
            503, "The database is not answering.", type_="not-ready", checks=results
        )
    status = "ok" if all(v == "ok" for v in results.values()) else "degraded"
    return JSONResponse({"status": status, "checks": results})
