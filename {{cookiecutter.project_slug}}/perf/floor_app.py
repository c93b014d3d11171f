"""The FastAPI floor of `make perf`: the bare app's work behind FastAPI, with our routes' shape.

It answers the bare app's queries (perf/baseline_app.py: the same SQL, Redis keys and JSON
bytes) the way the fastest FastAPI service with dependency-injected auth, tenancy and RBAC
could: the organization in the path, three dependencies standing for authentication, the
tenancy check and the permission check, which do no work, and a `Response` of orjson bytes
(no response model to validate). What it costs over the bare app is FastAPI's routing,
parameter parsing, dependency solving and response handling alone, so its ratio to the bare
app is the most any FastAPI service built that way reaches on this hardware:

    /ping                                    constant body, no dependencies
    /orgs/{org_id}/items/{id}                SELECT by primary key
    /orgs/{org_id}/items?after=ID&limit=N    keyset page (N <= 100)
    /orgs/{org_id}/cached/items/{id}         Redis GET of the item's JSON (read-through)

Config via env, as the bare app: PG_DSN, REDIS_URL, PG_POOL_MIN, PG_POOL_MAX.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from baseline_app import SQL_ONE, SQL_PAGE
from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import Response

state: dict[str, Any] = {}


async def caller(authorization: Annotated[str | None, Header()] = None) -> str:
    """Stands for authentication: takes the Authorization header, verifies nothing."""
    return authorization or ""


async def tenant(org_id: str, who: Annotated[str, Depends(caller)]) -> str:
    """Stands for the tenancy check: the path's organization, checked against nothing."""
    return org_id


async def permitted(
    org: Annotated[str, Depends(tenant)], who: Annotated[str, Depends(caller)]
) -> None:
    """Stands for the permission check: allows everything."""


Allowed = Annotated[None, Depends(permitted)]


def json_response(obj: object) -> Response:
    return Response(orjson.dumps(obj), media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state["pool"] = await asyncpg.create_pool(
        os.environ.get("PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        min_size=int(os.environ.get("PG_POOL_MIN", "4")),
        max_size=int(os.environ.get("PG_POOL_MAX", "16")),
    )
    state["redis"] = aioredis.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), max_connections=32
    )
    try:
        yield
    finally:
        await state["pool"].close()
        await state["redis"].aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/ping")
async def ping() -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


@app.get("/orgs/{org_id}/items/{item_id}")
async def get_item(item_id: int, _: Allowed) -> Response:
    row = await state["pool"].fetchrow(SQL_ONE, item_id)
    if row is None:
        raise HTTPException(404, "Item not found")
    return json_response(dict(row))


@app.get("/orgs/{org_id}/items")
async def list_items(
    _: Allowed, after: int = 0, limit: Annotated[int, Query(ge=1, le=100)] = 100
) -> Response:
    data = [dict(r) for r in await state["pool"].fetch(SQL_PAGE, after, limit)]
    return json_response({"data": data, "next_after": data[-1]["id"] if data else None})


@app.get("/orgs/{org_id}/cached/items/{item_id}")
async def cached_item(item_id: int, _: Allowed) -> Response:
    key = f"item:{item_id}"
    body = await state["redis"].get(key)
    if body is None:  # miss: read through from PostgreSQL
        row = await state["pool"].fetchrow(SQL_ONE, item_id)
        if row is None:
            raise HTTPException(404, "Item not found")
        body = orjson.dumps(dict(row))
        await state["redis"].set(key, body)
    return Response(body, media_type="application/json")
