"""The one job wrapper, and the two ways of running it.

`run_attempt` is every job's policy in one place: run the function under its time limit, inside
a CONSUMER span that continues the trace the job carries and with its ids bound into every log
line; classify a failure, decide between retry (exponential backoff with jitter, at least the
remote's Retry-After) and dead letter, mark the outbox row, count the outcome. The arq worker
(jobs/worker.py) turns a retry decision into `arq.Retry(defer=...)`; `InProcessRunner`
(embedded mode, no Redis) sleeps and calls it again. Same rules, so dev behaves like
production, only in one process.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from {{ cookiecutter.package_name }}.jobs import dead_letters
from {{ cookiecutter.package_name }}.jobs.errors import Classified, classify
from {{ cookiecutter.package_name }}.jobs.outbox import OutboxStatus, mark_completed
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, get_job
from {{ cookiecutter.package_name }}.observability.logging import bind_job_context
from {{ cookiecutter.package_name }}.observability.metrics import JOB_LOST_TRIES, JOB_RETRIES, JOB_TIMEOUTS, JOBS
from {{ cookiecutter.package_name }}.observability.tracing import extracted_context, inject_trace_context
from {{ cookiecutter.package_name }}.settings import Settings

log = structlog.get_logger(__name__)

# Jitter only spreads retries; SystemRandom keeps linters quiet without a suppression marker.
_jitter = random.SystemRandom()
IN_PROCESS = "in_process"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the wrapper decided after one attempt."""

    kind: Literal["done", "retry", "dead"]
    delay: float = 0.0
    error: str = ""
    result: Any = None


def backoff(settings: Settings, attempt: int, retry_after: float | None = None) -> float:
    """Seconds before try `attempt + 1`: base * 2^(attempt-1), capped, "equal jitter" applied;
    never earlier than the remote's Retry-After (itself capped at the maximum)."""
    ceiling = min(
        settings.job_retry_max_seconds, settings.job_retry_base_seconds * 2.0 ** (attempt - 1)
    )
    delay = ceiling / 2 + _jitter.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.job_retry_max_seconds))
    return delay


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_attempt(
    env: JobEnv, name: str, args: JobArgs, meta: JobArgs, attempt: int, *, system: str = IN_PROCESS
) -> Decision:
    """Run try number `attempt` of job `name` and apply the retry/dead-letter policy.

    `system` names the queue for the span (`messaging.system`): "arq" or "in_process"."""
    outbox_id = meta.get("outbox_id")
    attributes: dict[str, AttributeValue] = {
        "messaging.system": system,
        "messaging.operation.type": "process",
        "messaging.destination.name": env.settings.jobs_queue_name,
        "messaging.message.id": str(outbox_id),
        "app.job.name": name,
        "app.job.attempt": attempt,
        "app.org.id": str(meta.get("org_id")),
    }
    with (
        extracted_context(meta.get("trace_context")),
        env.tracer.start_as_current_span(
            f"process {name}",
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            # The outcome is decided below: a retried failure is not an unhandled one.
            record_exception=False,
            set_status_on_exception=False,
        ) as span,
        bind_job_context(job_id=outbox_id, org_id=meta.get("org_id"), job=name, attempt=attempt),
    ):
        decision = await _attempt(env, name, args, meta, attempt, span)
        span.set_attribute("app.job.outcome", decision.kind)
        if decision.kind != "done":
            span.set_status(StatusCode.ERROR, decision.error[:500])
        return decision


async def _attempt(
    env: JobEnv, name: str, args: JobArgs, meta: JobArgs, attempt: int, span: Span
) -> Decision:
    spec = get_job(name)
    if spec is None:
        error = f"LookupError: no job named {name!r} is registered"
        log.error("job_dead_lettered", error=error, permanent=True)
        await _dead_letter(env, name, args, meta, error, attempt)
        return Decision("dead", error=error)
    max_tries = spec.tries(env.settings)
    if attempt > max_tries:
        # arq ran the job again after a worker died (or was killed) during the last try:
        # the tries are spent, and the job must not vanish into arq's own "max tries" failure.
        JOB_LOST_TRIES.labels(name).inc()
        error = (
            f"LostTry: try {attempt - 1} of {max_tries} never reported back "
            "(the worker died or was stopped during it)"
        )
        log.error("job_dead_lettered", error=error, permanent=False)
        await _dead_letter(env, name, args, meta, error, max_tries)
        return Decision("dead", error=error)
    limit = spec.time_limit(env.settings)
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            result = await spec.fn(env, args)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        span.record_exception(exc)
        if deadline.expired():
            JOB_TIMEOUTS.labels(name).inc()
            verdict, error = Classified(retryable=True), f"JobTimeout: over its {limit:g} s limit"
        else:
            verdict, error = classify(exc), _describe(exc)
        if verdict.retryable and attempt < max_tries:
            delay = backoff(env.settings, attempt, verdict.retry_after)
            JOBS.labels(name, "retry").inc()
            JOB_RETRIES.labels(name).inc()
            log.warning("job_retry", error=error, retry_in_s=round(delay, 3), max_tries=max_tries)
            return Decision("retry", delay=delay, error=error)
        log.error("job_dead_lettered", error=error, permanent=not verdict.retryable)
        await _dead_letter(env, name, args, meta, error, attempt)
        return Decision("dead", error=error)
    JOBS.labels(name, "success").inc()
    await mark_completed(env.db, meta.get("outbox_id"), OutboxStatus.done)
    log.info("job_done")
    return Decision("done", result=result)


async def _dead_letter(
    env: JobEnv, name: str, args: JobArgs, meta: JobArgs, error: str, attempt: int
) -> None:
    JOBS.labels(name, "dead_letter").inc()
    # The letter points at this failed attempt's span: its trace shows every try.
    meta = {**meta, "trace_context": inject_trace_context() or meta.get("trace_context")}
    await dead_letters.record(env.db, name, args, meta, error, attempt)
    await mark_completed(env.db, meta.get("outbox_id"), OutboxStatus.dead)
    spec = get_job(name)
    if spec is not None and spec.on_dead is not None:
        try:
            await spec.on_dead(env, args, error)
        except Exception:
            log.exception("job_on_dead_hook_failed")


class InProcessRunner:
    """Embedded mode's queue: each job is an asyncio task that retries with the same policy, at
    most `max_jobs` attempts at once (like a worker's `worker_max_jobs`)."""

    system = IN_PROCESS

    def __init__(self, max_jobs: int = 10) -> None:
        self.env: JobEnv | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(max_jobs)

    async def dispatch(self, name: str, args: JobArgs, meta: JobArgs, job_id: str) -> bool:
        """Start the job as a task; a job id already running is not started twice (False)."""
        if job_id in self._tasks:
            return False
        task = asyncio.create_task(self._run(name, args, meta), name=f"job:{name}:{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))
        return True

    async def _run(self, name: str, args: JobArgs, meta: JobArgs) -> None:
        if self.env is None:  # pragma: no cover - wired by JobsRuntime before any dispatch
            raise RuntimeError("InProcessRunner used before its environment was set")
        attempt = 1
        while True:
            try:
                # A slot per attempt, not per job: a job waiting for its retry holds none.
                async with self._slots:
                    decision = await run_attempt(self.env, name, args, meta, attempt)
            except Exception:
                # The database itself failed while recording the outcome: the outbox row stays
                # dispatched, and the relay sends it again after the redispatch delay.
                log.exception("job_bookkeeping_failed", job=name)
                return
            if decision.kind != "retry":
                return
            await asyncio.sleep(decision.delay)
            attempt += 1

    @property
    def running(self) -> int:
        """Jobs in flight (including those waiting for a retry)."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until no job is in flight (tests, shutdown with a deadline)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the jobs in flight; their outbox rows are dispatched again later."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
