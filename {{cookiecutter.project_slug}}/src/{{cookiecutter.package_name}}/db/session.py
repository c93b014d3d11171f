"""The request's database session, routed by HTTP method."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.read_your_writes import COOKIE_NAME, HEADER_NAME, ConsistencyTokens
from {{ cookiecutter.package_name }}.db.unit_of_work import SAFE_METHODS, UnitOfWork


def wants_primary(request: Request) -> bool:
    """True when this client wrote lately (read-your-writes): its reads go to the primary."""
    tokens: ConsistencyTokens = request.state.consistency
    token = request.headers.get(HEADER_NAME) or request.cookies.get(COOKIE_NAME)
    return tokens.wants_primary(token)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """GET/HEAD: a read session (replica, or primary after this client's recent write).
    Anything else: the request's unit-of-work session on the primary."""
    if request.method in SAFE_METHODS:
        db: Database = request.state.db
        async with db.reader(prefer_primary=wants_primary(request)) as session:
            yield session
    else:
        uow: UnitOfWork = request.state.uow
        yield uow.session
