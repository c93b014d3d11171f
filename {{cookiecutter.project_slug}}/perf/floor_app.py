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

from typing import Annotated

from baseline_app import cached_body, fetch_item, fetch_page, json_response, lifespan
from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import Response


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
# The bare app's lifespan: the same asyncpg pool and Redis client, from the same settings.
app = FastAPI(lifespan=lifespan)


@app.get("/ping")
async def ping() -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


@app.get("/orgs/{org_id}/items/{item_id}")
async def get_item(item_id: int, _: Allowed) -> Response:
    item = await fetch_item(item_id)
    if item is None:
        raise HTTPException(404, "Item not found")
    return json_response(item)


@app.get("/orgs/{org_id}/items")
async def list_items(
    _: Allowed, after: int = 0, limit: Annotated[int, Query(ge=1, le=100)] = 100
) -> Response:
    return json_response(await fetch_page(after, limit))


@app.get("/orgs/{org_id}/cached/items/{item_id}")
async def cached_item(item_id: int, _: Allowed) -> Response:
    body = await cached_body(item_id)
    if body is None:
        raise HTTPException(404, "Item not found")
    return Response(body, media_type="application/json")
