"""create_app(): middleware, routers and the lifespan that opens and closes every resource."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from redis.asyncio import Redis

from {{ cookiecutter.package_name }} import __version__
from {{ cookiecutter.package_name }}.cache import build_cache
from {{ cookiecutter.package_name }}.cache.backstop import BackstopReplayer
from {{ cookiecutter.package_name }}.cache.schema_version import schema_version
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.read_your_writes import ConsistencyTokens
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWorkMiddleware
from {{ cookiecutter.package_name }}.errors import PROBLEM_RESPONSES, install_error_handlers, problem_openapi
from {{ cookiecutter.package_name }}.flags import open_flags
from {{ cookiecutter.package_name }}.health import router as health_router
from {{ cookiecutter.package_name }}.idempotency import IdempotencyMiddleware
from {{ cookiecutter.package_name }}.jobs.routers import routers as jobs_routers
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.observability.exposition import metrics_endpoint
from {{ cookiecutter.package_name }}.observability.logging import configure_logging
from {{ cookiecutter.package_name }}.observability.middleware import RequestTelemetryMiddleware
from {{ cookiecutter.package_name }}.observability.telemetry import start_telemetry
from {{ cookiecutter.package_name }}.pagination import CursorCodec
from {{ cookiecutter.package_name }}.resources.orgs.router import router as orgs_router
from {{ cookiecutter.package_name }}.resources.projects.router import router as projects_router
from {{ cookiecutter.package_name }}.resources.projects.schemas import ProjectOut
from {{ cookiecutter.package_name }}.resources.stats.router import router as stats_router
from {{ cookiecutter.package_name }}.resources.tasks.router import router as tasks_router
from {{ cookiecutter.package_name }}.resources.tasks.schemas import TaskOut
from {{ cookiecutter.package_name }}.resources.users.router import router as users_router
from {{ cookiecutter.package_name }}.security.membership_cache import MembershipCache
from {{ cookiecutter.package_name }}.security.passwords import Passwords
from {{ cookiecutter.package_name }}.security.rate_limit import LoginThrottle
from {{ cookiecutter.package_name }}.security.rbac import RouteGuard, check_routes, load_policy
from {{ cookiecutter.package_name }}.security.tenancy import RBAC_GUARD_ATTR
from {{ cookiecutter.package_name }}.security.tokens import Tokens
from {{ cookiecutter.package_name }}.settings import Settings, get_settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter


# See the lifespan; measured with `make profile` (the list page's collector time per request).
YOUNG_GC_THRESHOLD = 10_000


def api_routes(app: FastAPI) -> dict[str, Any]:
    """`{"METHOD /path": route}` for every API route, with routers' prefixes applied."""
    found: dict[str, Any] = {}
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            for method in sorted(context.methods or ()):
                found[f"{method} {context.path}"] = context
    return found


def declared_guards(app: FastAPI) -> dict[str, RouteGuard]:
    """`{"METHOD /path": RouteGuard}` for every route guarded by `authorize()`."""
    found: dict[str, RouteGuard] = {}
    for key, route in api_routes(app).items():
        stack = list(route.dependant.dependencies)
        while stack:
            dep = stack.pop()
            guard = getattr(dep.call, RBAC_GUARD_ATTR, None)
            if isinstance(guard, RouteGuard):
                found[key] = guard
            stack.extend(dep.dependencies)
    return found


def declared_actions(app: FastAPI) -> dict[str, str]:
    """`{"METHOD /path": "resource:action"}` for every route guarded by `authorize()`."""
    return {key: guard.action for key, guard in declared_guards(app).items()}


def create_app(
    settings: Settings | None = None, *, span_exporter: SpanExporter | None = None
) -> FastAPI:
    """Build the ASGI application; nothing is opened until the lifespan starts.

    `span_exporter` (tests, scripts) receives every finished span, besides OTLP."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.json_logs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        policy = load_policy(settings.rbac_policy_path)
        check_routes(policy, declared_guards(app))
        # Feature flags (issue 8): an OpenFeature provider of this app's own; a bad flags file
        # stops the start-up here, before anything is opened.
        flags, flags_provider = open_flags(settings.flags_file, settings.service_name)
        secret = settings.secret_key.get_secret_value()
        db = Database(settings)
        redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
        throttle = LoginThrottle(
            settings.login_limit_per_account, settings.login_limit_per_address, settings.redis_url
        )
        # Cache keys carry the schema version, computed once here (alembic head + shapes).
        cache = build_cache(settings, schema_version([ProjectOut, TaskOut]))
        # Invalidations recorded while Redis was unreachable are applied before serving.
        backstop = BackstopReplayer(db, cache, settings.cache_backstop_interval_seconds)
        await backstop.start()
        telemetry = start_telemetry(app, settings, db, redis, span_exporter=span_exporter)
        # Background jobs: arq through Redis, or in-process tasks without it (jobs/runtime.py).
        jobs = JobsRuntime(settings, db, tracer_provider=telemetry.provider)
        jobs.start()
        # Start-up objects (routes, models, schemas) live as long as the app. Frozen, they are
        # not traversed again by every full collection, which a 100-row page's allocations
        # trigger often: measured, that was a fifth of the page's CPU (make profile).
        gc.freeze()
        # Collect the young generation after YOUNG_GC_THRESHOLD allocations, not 700: a page
        # of 100 tasks allocates thousands of objects, so at 700 the collector ran several times
        # per page, each time traversing (and promoting) the page still being built. Spread
        # over several requests, most of what it finds is already freed by reference counting.
        # An operator's own choice (collection off, or a higher threshold) is left alone.
        thresholds = gc.get_threshold()
        if 0 < thresholds[0] < YOUNG_GC_THRESHOLD:
            gc.set_threshold(YOUNG_GC_THRESHOLD, *thresholds[1:])
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
                "login_throttle": throttle,
                "memberships": MembershipCache(settings.membership_cache_seconds),
                "cache": cache,
                "cache_backstop": backstop,
                "jobs": jobs,
                **telemetry.state,
                "flags": flags,
            }
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()  # a process that outlives the app (tests) can collect it
            await jobs.close()
            flags_provider.shutdown()
            telemetry.shutdown()
            await backstop.close()
            await cache.close()
            await throttle.close()
            if redis is not None:
                await redis.aclose()
            await db.dispose()

    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        version=__version__,
        description="{{ cookiecutter.description | replace("\\", "\\\\") | replace('"', '\\"') }}",
        lifespan=lifespan,
        # FastAPI's own telemetry stays off until the lifespan gives it this app's tracer
        # provider (observability/tracing.py), whatever provider is global in the process.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    # Added last = runs first: the unit of work wraps idempotency, which wraps the routes.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(UnitOfWorkMiddleware)
    # Outermost of ours: its timing and status class include the unit of work's commit.
    app.add_middleware(RequestTelemetryMiddleware)
    if not settings.metrics_port:
        app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    # Routes are matched in order, one by one (about 4 us each): the probes (two routes), then
    # the busiest routers. No two routers share a path, so the order changes nothing else.
    routers = (health_router, tasks_router, projects_router, orgs_router, stats_router)
    # then users; webhooks, exports/imports, AI summaries, dead letters
    for router in (*routers, users_router, *jobs_routers):
        app.include_router(router, responses=PROBLEM_RESPONSES)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
