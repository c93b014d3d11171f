"""Liveness (the process answers) and readiness (its dependencies answer)."""

from __future__ import annotations

import asyncio

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


@router.get("/ready", response_model=None)
async def ready(request: Request) -> JSONResponse | object:
    """Ready to serve: the primary database answers, and Redis when one is configured."""
    checks = {"database": _database(request.state.db)}
    redis: Redis | None = request.state.redis
    if redis is not None:
        checks["redis"] = _redis(redis)
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready", and says which
            results[name] = f"failed: {type(exc).__name__}"
    if all(v == "ok" for v in results.values()):
        return JSONResponse({"status": "ok", "checks": results})
    return problem_response(
        503, "A dependency is not answering.", type_="not-ready", checks=results
    )
