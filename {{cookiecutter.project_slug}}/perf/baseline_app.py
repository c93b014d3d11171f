"""The bare reference service of `make perf`: Starlette + asyncpg + redis-py, no auth, no ORM.

It stands for the fastest a Python ASGI service answers the same queries on this hardware; the
runner measures this service against it in the same run and reports ratios. It is the same app
and seed as the shared raw baseline (`--baseline DIR` runs that one instead):

    /ping                      constant body, no I/O (framework + server floor)
    /items/{id}                SELECT by integer primary key from raw_item
    /items?after=ID&limit=N    keyset page: WHERE id > $1 ORDER BY id LIMIT $2 (N <= 100)
    /cached/items/{id}         Redis GET of the item as JSON bytes (read-through on a miss)

Config via env: PG_DSN, REDIS_URL, PG_POOL_MIN, PG_POOL_MAX.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def seed_statements(rows: int = 1_000_000) -> list[str]:
    """The seed of raw_item (bigint ids 1..rows), one statement each (VACUUM needs autocommit)."""
    return [
        "DROP TABLE IF EXISTS raw_item",
        "CREATE TABLE raw_item (id bigint PRIMARY KEY, title varchar(255) NOT NULL,"
        " description varchar(255), owner_id uuid NOT NULL)",
        "INSERT INTO raw_item SELECT g, 'Item ' || g, 'Description for item number ' || g,"
        f" gen_random_uuid() FROM generate_series(1, {int(rows)}) AS g",
        "VACUUM (ANALYZE) raw_item",
    ]


SQL_ONE = "SELECT id, title, description, owner_id::text AS owner_id FROM raw_item WHERE id = $1"
SQL_PAGE = (
    "SELECT id, title, description, owner_id::text AS owner_id FROM raw_item "
    "WHERE id > $1 ORDER BY id LIMIT $2"
)
state: dict[str, Any] = {}


def json_response(obj: object, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


async def ping(request: Request) -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


# The work of each endpoint, apart from its HTTP handling (perf/floor_app.py does the same work
# behind FastAPI).


async def fetch_item(item_id: int) -> dict[str, Any] | None:
    row = await state["pool"].fetchrow(SQL_ONE, item_id)
    return None if row is None else dict(row)


async def fetch_page(after: int, limit: int) -> dict[str, Any]:
    data = [dict(r) for r in await state["pool"].fetch(SQL_PAGE, after, limit)]
    return {"data": data, "next_after": data[-1]["id"] if data else None}


async def cached_body(item_id: int) -> bytes | None:
    """The item's JSON from Redis, read through from PostgreSQL on a miss; None if no such item."""
    key = f"item:{item_id}"
    body: bytes | None = await state["redis"].get(key)
    if body is None:  # miss: read through from PostgreSQL
        item = await fetch_item(item_id)
        if item is None:
            return None
        body = orjson.dumps(item)
        await state["redis"].set(key, body)
    return body


async def get_item(request: Request) -> Response:
    item = await fetch_item(int(request.path_params["id"]))
    if item is None:
        return json_response({"detail": "Item not found"}, 404)
    return json_response(item)


async def list_items(request: Request) -> Response:
    after = int(request.query_params.get("after", "0"))
    limit = max(1, min(int(request.query_params.get("limit", "100")), 100))
    return json_response(await fetch_page(after, limit))


async def cached_item(request: Request) -> Response:
    body = await cached_body(int(request.path_params["id"]))
    if body is None:
        return json_response({"detail": "Item not found"}, 404)
    return Response(body, media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app: object) -> AsyncIterator[None]:
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


app = Starlette(
    routes=[
        Route("/ping", ping),
        Route("/items/{id:int}", get_item),
        Route("/items", list_items),
        Route("/cached/items/{id:int}", cached_item),
    ],
    lifespan=lifespan,
)
