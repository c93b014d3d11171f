"""`Annotated` dependency aliases: route signatures read like sentences, the wiring lives here.

Resources created by the lifespan (engines, policy, token keys) reach handlers through the
request state, never through module globals. The getters are `async def` although they do no
I/O: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per request each.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.cache.reads import CachedReads
from {{ cookiecutter.package_name }}.cache.store import VersionedCache
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.session import get_session, wants_primary
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.errors import ProblemError
from {{ cookiecutter.package_name }}.flags import FlagsDep as FlagsDep  # feature flags (issue 8), re-exported
from {{ cookiecutter.package_name }}.jobs.outbox import Outbox
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.pagination import CursorCodec, PageParams
from {{ cookiecutter.package_name }}.security.auth import current_principal
from {{ cookiecutter.package_name }}.security.membership_cache import MembershipCache
from {{ cookiecutter.package_name }}.security.passwords import Passwords
from {{ cookiecutter.package_name }}.security.rate_limit import LoginThrottle
from {{ cookiecutter.package_name }}.security.rbac import Policy
from {{ cookiecutter.package_name }}.security.tokens import Principal, Tokens
from {{ cookiecutter.package_name }}.settings import Settings


async def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


async def _uow(request: Request) -> UnitOfWork:
    uow: UnitOfWork = request.state.uow
    return uow


async def _passwords(request: Request) -> Passwords:
    passwords: Passwords = request.state.passwords
    return passwords


async def _tokens(request: Request) -> Tokens:
    tokens: Tokens = request.state.tokens
    return tokens


async def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.state.login_throttle
    return throttle


async def _memberships(request: Request) -> MembershipCache:
    memberships: MembershipCache = request.state.memberships
    return memberships


async def _cursors(request: Request) -> CursorCodec:
    cursors: CursorCodec = request.state.cursors
    return cursors


async def _policy(request: Request) -> Policy:
    policy: Policy = request.state.policy
    return policy


# --- Background jobs: the request's outbox (rows join the unit of work's transaction) -------
async def _jobs(request: Request) -> JobsRuntime:
    jobs: JobsRuntime = request.state.jobs
    return jobs


async def _outbox(request: Request) -> Outbox:
    # Rows record the trace context of the request's server span when added (jobs/outbox.py),
    # so the jobs they cause are children of this request, not of the client's span.
    jobs: JobsRuntime = request.state.jobs
    return Outbox(request.state.uow, jobs.relay)


async def _page_params(
    request: Request,
    limit: Annotated[
        int | None, Query(ge=1, description="Page size; the default and the cap are in settings.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageParams:
    settings: Settings = request.state.settings
    if limit is None:
        limit = settings.page_size_default
    elif limit > settings.page_size_max:
        raise ProblemError(
            422,
            f"limit must be at most {settings.page_size_max}; follow next_cursor for more.",
            type_="validation",
            max_limit=settings.page_size_max,
        )
    return PageParams(cursor=cursor, limit=limit)


SessionDep = Annotated[AsyncSession, Depends(get_session)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(_uow)]
SettingsDep = Annotated[Settings, Depends(_settings)]
PasswordsDep = Annotated[Passwords, Depends(_passwords)]
TokensDep = Annotated[Tokens, Depends(_tokens)]
ThrottleDep = Annotated[LoginThrottle, Depends(_throttle)]
MembershipsDep = Annotated[MembershipCache, Depends(_memberships)]
CursorsDep = Annotated[CursorCodec, Depends(_cursors)]
PolicyDep = Annotated[Policy, Depends(_policy)]
PageQuery = Annotated[PageParams, Depends(_page_params)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


# --- Cache and database handles (issue 4) ---
async def _cache(request: Request) -> VersionedCache:
    cache: VersionedCache = request.state.cache
    return cache


async def _cached_reads(request: Request) -> CachedReads:
    return CachedReads(request.state.cache, request.state.db, wants_primary(request))


async def _database(request: Request) -> Database:
    db: Database = request.state.db
    return db


CacheDep = Annotated[VersionedCache, Depends(_cache)]
CachedReadsDep = Annotated[CachedReads, Depends(_cached_reads)]
DatabaseDep = Annotated[Database, Depends(_database)]
# Background jobs
JobsDep = Annotated[JobsRuntime, Depends(_jobs)]
OutboxDep = Annotated[Outbox, Depends(_outbox)]
