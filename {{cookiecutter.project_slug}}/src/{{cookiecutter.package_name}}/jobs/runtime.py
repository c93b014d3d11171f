"""Wiring of the job machinery for one process: dispatcher, relay, job environment, poller.

With a Redis URL, jobs go to arq (a separate `{{ cookiecutter.package_name }} worker` process runs them); without
one, the in-process runner runs them as asyncio tasks in the API process, and a poller here
relays outbox rows that an after-commit nudge missed (a crash, an earlier failure).

Given the process's tracer provider, the runtime traces what it owns: its outgoing HTTP clients
(the `traceparent` goes to the receiver), its Redis client, and the relay's and jobs' spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import ClassVar

import httpx
import structlog
from arq.connections import ArqRedis
from opentelemetry.sdk.trace import TracerProvider

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.catalog import load_jobs
from {{ cookiecutter.package_name }}.jobs.outbox import Relay
from {{ cookiecutter.package_name }}.jobs.queue import ArqDispatcher, arq_pool
from {{ cookiecutter.package_name }}.jobs.registry import Dispatcher, JobEnv
from {{ cookiecutter.package_name }}.jobs.runner import InProcessRunner
from {{ cookiecutter.package_name }}.jobs.webhooks.ssrf import guarded_transport, safe_origin
from {{ cookiecutter.package_name }}.observability.tracing import instrument_httpx, instrument_redis, tracer_for
from {{ cookiecutter.package_name }}.settings import Settings

log = structlog.get_logger(__name__)


def http_client(settings: Settings, *, untrusted: bool = False) -> httpx.AsyncClient:
    """An outbound HTTP client of jobs: explicit connect/read timeouts, no redirects.

    `untrusted` (URLs that organizations registered): in production every connection goes
    through the SSRF guard, which pins the address it checked."""
    timeout = httpx.Timeout(
        settings.webhook_read_timeout_seconds, connect=settings.webhook_connect_timeout_seconds
    )
    transport = guarded_transport() if untrusted and settings.environment == "production" else None
    # httpx logs each request at INFO with its full URL, and receiver URLs carry tokens
    # (userinfo, Slack-style paths, signed queries): only its warnings reach the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)


class JobsRuntime:
    """Everything jobs need in this process; `start()` and `close()` from a lifespan."""

    # Live runtimes of this process, so tests can let in-process jobs settle between tests.
    _live: ClassVar[weakref.WeakSet[JobsRuntime]] = weakref.WeakSet()

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        redis_url: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        load_jobs()
        self.settings = settings
        self.db = db
        url = redis_url if redis_url is not None else settings.redis_url
        self.redis: ArqRedis | None = arq_pool(settings, url) if url else None
        self.runner: InProcessRunner | None = None
        dispatcher: Dispatcher
        if self.redis is not None:
            dispatcher = ArqDispatcher(self.redis, settings.jobs_queue_name)
        else:
            self.runner = InProcessRunner(settings.worker_max_jobs)
            dispatcher = self.runner
        tracer = tracer_for(tracer_provider)
        self.relay = Relay(db, dispatcher, settings, tracer=tracer)
        self.env = JobEnv(
            settings=settings,
            db=db,
            http=http_client(settings),
            webhook_http=http_client(settings, untrusted=True),
            relay=self.relay,
            tracer=tracer,
        )
        if tracer_provider is not None:
            instrument_httpx(self.env.http, tracer_provider)
            instrument_httpx(self.env.webhook_http, tracer_provider, show_url=safe_origin)
            if self.redis is not None:
                instrument_redis(self.redis, tracer_provider)
        if self.runner is not None:
            self.runner.env = self.env
        self._poller: asyncio.Task[None] | None = None
        JobsRuntime._live.add(self)

    @classmethod
    async def settle_all(cls, limit_seconds: float = 30.0) -> None:
        """Drain every live in-process runtime (each bounded by `limit_seconds`); for tests."""
        for runtime in list(cls._live):
            if runtime.in_process:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(limit_seconds):
                        await runtime.drain()

    @property
    def in_process(self) -> bool:
        """True when jobs run inside this process (no Redis)."""
        return self.runner is not None

    def start(self, *, poll: bool | None = None) -> None:
        """Start the periodic relay (by default only in-process: arq workers run their cron)."""
        if poll if poll is not None else self.in_process:
            self._poller = asyncio.create_task(self._poll(), name="outbox-poller")

    async def _poll(self) -> None:
        while True:
            await self.relay.nudge()
            with contextlib.suppress(Exception):
                await self.relay.housekeeping()
            await asyncio.sleep(self.settings.outbox_relay_interval_seconds)

    async def drain(self) -> None:
        """Relay everything due and wait for in-process jobs to finish (tests, benchmarks)."""
        await self.relay.drain()
        if self.runner is not None:
            while self.runner.running:
                await self.runner.drain()
                await self.relay.drain()

    async def close(self) -> None:
        """Stop the poller and in-process jobs; close the HTTP client and Redis."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.runner is not None:
            await self.runner.close()
        await self.env.http.aclose()
        await self.env.webhook_http.aclose()
        if self.redis is not None:
            await self.redis.aclose()
