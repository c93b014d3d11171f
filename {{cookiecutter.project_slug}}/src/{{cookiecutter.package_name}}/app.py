"""create_app(): middleware, routers and the lifespan that opens and closes every resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis

from {{ cookiecutter.package_name }} import __version__
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.read_your_writes import ConsistencyTokens
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWorkMiddleware
from {{ cookiecutter.package_name }}.errors import install_error_handlers
from {{ cookiecutter.package_name }}.flags import open_flags
from {{ cookiecutter.package_name }}.health import router as health_router
from {{ cookiecutter.package_name }}.idempotency import IdempotencyMiddleware
from {{ cookiecutter.package_name }}.observability.logging import configure_logging
from {{ cookiecutter.package_name }}.pagination import CursorCodec
from {{ cookiecutter.package_name }}.resources.orgs.router import router as orgs_router
from {{ cookiecutter.package_name }}.resources.projects.router import router as projects_router
from {{ cookiecutter.package_name }}.resources.tasks.router import router as tasks_router
from {{ cookiecutter.package_name }}.resources.users.router import router as users_router
from {{ cookiecutter.package_name }}.security.passwords import Passwords
from {{ cookiecutter.package_name }}.security.rbac import load_policy
from {{ cookiecutter.package_name }}.security.tenancy import RBAC_ACTION_ATTR
from {{ cookiecutter.package_name }}.security.tokens import Tokens
from {{ cookiecutter.package_name }}.settings import Settings, get_settings


def declared_actions(app: FastAPI) -> dict[str, str]:
    """`{"METHOD /path": "resource:action"}` for every route guarded by `authorize()`."""
    found: dict[str, str] = {}
    for route in app.routes:
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        stack = list(dependant.dependencies)
        while stack:
            dep = stack.pop()
            action = getattr(dep.call, RBAC_ACTION_ATTR, None)
            if action is not None:
                for method in sorted(getattr(route, "methods", ())):
                    found[f"{method} {getattr(route, 'path', '')}"] = action
            stack.extend(dep.dependencies)
    return found


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI application; nothing is opened until the lifespan starts."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.json_logs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        policy = load_policy(settings.rbac_policy_path)
        unknown = {a for a in declared_actions(app).values() if a not in policy.actions}
        if unknown:
            raise RuntimeError(f"routes declare actions missing from the policy: {sorted(unknown)}")
        secret = settings.secret_key.get_secret_value()
        db = Database(settings)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        # Feature flags (issue 8): an OpenFeature provider of this app's own.
        flags, flags_provider = open_flags(settings.flags_file, settings.service_name)
        try:
            yield {
                "settings": settings,
                "db": db,
                "redis": redis,
                "policy": policy,
                "tokens": Tokens(settings),
                "passwords": Passwords(settings),
                "cursors": CursorCodec(secret),
                "consistency": ConsistencyTokens(secret, settings.read_your_writes_seconds),
                "flags": flags,
            }
        finally:
            flags_provider.shutdown()
            if redis is not None:
                await redis.aclose()
            await db.dispose()

    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        version=__version__,
        description="{{ cookiecutter.description }}",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Added last = runs first: the unit of work wraps idempotency, which wraps the routes.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(UnitOfWorkMiddleware)
    for router in (health_router, users_router, orgs_router, projects_router, tasks_router):
        app.include_router(router)
    return app
