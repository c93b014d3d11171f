"""Serving the Prometheus metrics: `/metrics` on the app, or a port of its own (API or worker).

The process-wide metrics (observability/metrics.py) live in prometheus_client's default
registry. What belongs to one running app, its database pools, is read at scrape time by a
collector in a registry of that app, which also re-exports the process-wide metrics: one scrape
gives both, and a process that builds several apps (tests) never registers a name twice.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator
from threading import Thread
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import Response

from {{ cookiecutter.package_name }}.errors import problem_response

if TYPE_CHECKING:
    from {{ cookiecutter.package_name }}.db.engines import Database
    from {{ cookiecutter.package_name }}.settings import Settings


class DatabasePoolCollector:
    """Connection-pool gauges of one Database (primary, replica), read when scraped."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def describe(self) -> Iterable[Metric]:
        # Nothing to declare up front: the gauges exist only while the pools do.
        return ()

    def collect(self) -> Iterator[Metric]:
        """Yield checked-out connections, pool size and overflow per database role."""
        checked_out = GaugeMetricFamily(
            "app_db_pool_checked_out", "Connections in use, by database role.", labels=["role"]
        )
        size = GaugeMetricFamily(
            "app_db_pool_size",
            "Connections the pool keeps open, by database role.",
            labels=["role"],
        )
        overflow = GaugeMetricFamily(
            "app_db_pool_overflow",
            "Connections beyond the pool size, by database role.",
            labels=["role"],
        )
        for role, engine in self._db.engines().items():
            pool = engine.pool
            # Only queue pools have a size (SQLite's in-memory pools do not): others report none.
            if not isinstance(pool, QueuePool):
                continue
            checked_out.add_metric([role], pool.checkedout())
            size.add_metric([role], pool.size())
            overflow.add_metric([role], max(pool.overflow(), 0))
        yield from (checked_out, size, overflow)


class _ProcessMetrics:
    """Re-exports the default registry's metrics from another registry."""

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def app_registry(db: Database | None = None) -> CollectorRegistry:
    """A registry with the process-wide metrics plus, when given, this app's pool gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    if db is not None:
        registry.register(DatabasePoolCollector(db))
    return registry


def metrics_token_required(settings: Settings) -> bool:
    """A token is required when one is configured, and always in production."""
    return settings.metrics_token is not None or settings.environment == "production"


def _authorized(request: Request, settings: Settings) -> bool:
    if not metrics_token_required(settings):
        return True
    if settings.metrics_token is None:
        return False  # production without a token: nobody may scrape the app's port
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value()
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), expected.encode())


async def metrics_endpoint(request: Request) -> Response:
    """`GET /metrics`: the Prometheus text format, behind the bearer token when required."""
    settings: Settings = request.state.settings
    if not _authorized(request, settings):
        return problem_response(
            401,
            "Metrics need 'Authorization: Bearer <METRICS_TOKEN>'.",
            type_="unauthorized",
            instance=request.url.path,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    registry: CollectorRegistry = request.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def start_metrics_server(
    port: int,
    *,
    host: str = "0.0.0.0",  # noqa: S104 - a scrape target listens on the pod's address
    registry: CollectorRegistry | None = None,
) -> tuple[WSGIServer, Thread]:
    """Serve the metrics on their own port (a worker process, or the API when so configured).

    Returns the server and its thread; `server.shutdown()` stops it. The worker's start-up
    (observability/telemetry.py `start_worker_telemetry`) opens it on METRICS_PORT.
    """
    return start_http_server(port, addr=host, registry=registry or REGISTRY)
