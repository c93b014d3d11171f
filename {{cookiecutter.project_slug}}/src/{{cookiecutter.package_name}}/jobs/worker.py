"""The arq worker: every registered job behind the one wrapper, plus the outbox relay cron.

Run it with `{{ cookiecutter.package_name }} worker`. arq only retries a job that raises `arq.Retry`, so the
wrapper's retry decision becomes exactly that; a dead-lettered job completes normally (its
failure lives in the dead_letters table, not in Redis).

What arq would otherwise decide alone is given back to the wrapper, so that every job that
fails for good ends in the dead-letter table:
- time limit: the wrapper cancels an attempt at the job's limit (a retryable timeout); arq's
  own `timeout` is a margin later, for bookkeeping that hangs;
- tries: arq counts a try that a dying worker never finished too; it may start the job one
  more time than the wrapper allows, and the wrapper then dead-letters it (a "lost try");
- results: none are kept (`keep_result=0`): the durable state is in the database, and a kept
  result would make arq ignore the relay's re-dispatch of the same job id.

At start-up the worker sets up its own tracing (`<service>-worker`, OTLP when configured) and
serves its metrics on METRICS_PORT (observability/telemetry.py).
"""

from __future__ import annotations

from typing import Any

import structlog
from arq import Retry, Worker, cron, func
from arq.typing import WorkerCoroutine
from opentelemetry.sdk.trace.export import SpanExporter

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.catalog import load_jobs
from {{ cookiecutter.package_name }}.jobs.queue import ArqDispatcher, arq_pool, dumps, loads
from {{ cookiecutter.package_name }}.jobs.registry import JobSpec, registered_jobs
from {{ cookiecutter.package_name }}.jobs.runner import run_attempt
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.observability.telemetry import Telemetry, start_worker_telemetry
from {{ cookiecutter.package_name }}.settings import Settings

RELAY_CRON = "outbox.relay"
# arq's hard time limit is this much later than the wrapper's, which should always fire first.
ARQ_TIMEOUT_MARGIN_SECONDS = 30.0


def _arq_job(spec: JobSpec) -> WorkerCoroutine:
    async def run(ctx: dict[str, Any], args: dict[str, Any], meta: dict[str, Any]) -> str:
        runtime: JobsRuntime = ctx["jobs"]
        decision = await run_attempt(
            runtime.env, spec.name, args, meta, ctx["job_try"], system=ArqDispatcher.system
        )
        if decision.kind == "retry":
            raise Retry(defer=decision.delay)
        return decision.kind

    run.__qualname__ = spec.name
    return run


async def _relay(ctx: dict[str, Any]) -> None:
    runtime: JobsRuntime = ctx["jobs"]
    await runtime.relay.nudge()
    await runtime.relay.housekeeping()


async def _bind_arq_job(ctx: dict[str, Any]) -> None:
    # arq logs a job's start and end outside the wrapper, in the task that runs the job.
    structlog.contextvars.bind_contextvars(job_id=ctx["job_id"], attempt=ctx["job_try"])


async def _unbind_arq_job(ctx: dict[str, Any]) -> None:
    structlog.contextvars.unbind_contextvars("job_id", "attempt")


def build_worker(
    settings: Settings,
    *,
    burst: bool = False,
    redis_url: str | None = None,
    span_exporter: SpanExporter | None = None,
    **options: Any,
) -> Worker:
    """An arq Worker for all registered jobs; `burst=True` stops once the queue is empty.

    `span_exporter` (tests, scripts) receives the worker's spans, besides OTLP."""
    url = redis_url or settings.redis_url
    if url is None:
        raise ValueError("the worker needs REDIS_URL; without it jobs run inside the API process")
    opened: dict[str, Any] = {}

    async def startup(ctx: dict[str, Any]) -> None:
        db = Database(settings)
        telemetry = start_worker_telemetry(settings, db, span_exporter=span_exporter)
        runtime = JobsRuntime(settings, db, redis_url=url, tracer_provider=telemetry.provider)
        opened.update(jobs=runtime, telemetry=telemetry)
        ctx["jobs"] = runtime

    async def shutdown(ctx: dict[str, Any]) -> None:
        runtime: JobsRuntime | None = opened.pop("jobs", None)
        if runtime is not None:
            await runtime.close()
            await runtime.db.dispose()
        telemetry: Telemetry | None = opened.pop("telemetry", None)
        if telemetry is not None:
            telemetry.shutdown()

    load_jobs()  # the registry must be complete before the function table is built
    functions = [
        func(
            _arq_job(spec),
            name=spec.name,
            max_tries=spec.tries(settings) + 1,  # one more, so the wrapper sees a lost try
            timeout=spec.time_limit(settings) + ARQ_TIMEOUT_MARGIN_SECONDS,
        )
        for spec in registered_jobs()
    ]
    interval = max(1, int(settings.outbox_relay_interval_seconds))
    relay = cron(
        _relay,
        name=RELAY_CRON,
        second=set(range(0, 60, interval)),
        run_at_startup=True,
        timeout=max(60, interval * 10),
    )
    worker_options: dict[str, Any] = {
        "keep_result": 0,
        "max_jobs": settings.worker_max_jobs,
        **options,
    }
    return Worker(
        functions=functions,
        cron_jobs=[relay],
        queue_name=settings.jobs_queue_name,
        redis_pool=arq_pool(settings, url),
        burst=burst,
        on_startup=startup,
        on_shutdown=shutdown,
        on_job_start=_bind_arq_job,
        after_job_end=_unbind_arq_job,
        job_serializer=dumps,
        job_deserializer=loads,
        **worker_options,
    )
