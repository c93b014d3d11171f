"""The arq worker: every registered job behind the one wrapper, plus the outbox relay cron.

Run it with `{{ cookiecutter.package_name }} worker`. arq only retries a job that raises `arq.Retry`, so the
wrapper's retry decision becomes exactly that; a dead-lettered job completes normally (its
failure lives in the dead_letters table, not in Redis).
"""

from __future__ import annotations

from typing import Any

from arq import Retry, Worker, cron, func
from arq.typing import WorkerCoroutine

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.catalog import load_jobs
from {{ cookiecutter.package_name }}.jobs.queue import arq_pool, dumps, loads
from {{ cookiecutter.package_name }}.jobs.registry import JobSpec, registered_jobs
from {{ cookiecutter.package_name }}.jobs.runner import run_attempt
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.settings import Settings

RELAY_CRON = "outbox.relay"


def _arq_job(spec: JobSpec) -> WorkerCoroutine:
    async def run(ctx: dict[str, Any], args: dict[str, Any], meta: dict[str, Any]) -> str:
        runtime: JobsRuntime = ctx["jobs"]
        decision = await run_attempt(runtime.env, spec.name, args, meta, ctx["job_try"])
        if decision.kind == "retry":
            raise Retry(defer=decision.delay)
        return decision.kind

    run.__qualname__ = spec.name
    return run


async def _relay(ctx: dict[str, Any]) -> None:
    runtime: JobsRuntime = ctx["jobs"]
    await runtime.relay.nudge()
    await runtime.relay.housekeeping()


def build_worker(
    settings: Settings, *, burst: bool = False, redis_url: str | None = None, **options: Any
) -> Worker:
    """An arq Worker for all registered jobs; `burst=True` stops once the queue is empty."""
    url = redis_url or settings.redis_url
    if url is None:
        raise ValueError("the worker needs REDIS_URL; without it jobs run inside the API process")
    runtime_holder: dict[str, JobsRuntime] = {}

    async def startup(ctx: dict[str, Any]) -> None:
        runtime = JobsRuntime(settings, Database(settings), redis_url=url)
        runtime_holder["jobs"] = runtime
        ctx["jobs"] = runtime

    async def shutdown(ctx: dict[str, Any]) -> None:
        runtime = runtime_holder.pop("jobs", None)
        if runtime is not None:
            await runtime.close()
            await runtime.db.dispose()

    load_jobs()  # the registry must be complete before the function table is built
    functions = [
        func(
            _arq_job(spec),
            name=spec.name,
            # The wrapper decides retries; arq's own cap only stops a job that kills its worker.
            max_tries=spec.tries(settings),
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
    return Worker(
        functions=functions,
        cron_jobs=[relay],
        queue_name=settings.jobs_queue_name,
        redis_pool=arq_pool(settings, url),
        burst=burst,
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=settings.worker_max_jobs,
        job_serializer=dumps,
        job_deserializer=loads,
        **options,
    )
