"""The job registry: `@job("name")` declares a job function once; the arq worker and the
in-process runner both run it through the same wrapper (jobs/runner.py).

A job function takes the job environment and one JSON-serialisable dict of arguments, so a
job can be stored in the outbox, sent through Redis, dead-lettered and replayed unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry.trace import NoOpTracer, Tracer

if TYPE_CHECKING:
    import httpx

    from {{ cookiecutter.package_name }}.db.engines import Database
    from {{ cookiecutter.package_name }}.jobs.outbox import Relay
    from {{ cookiecutter.package_name }}.settings import Settings

JobArgs = dict[str, Any]


class Dispatcher(Protocol):
    """Hands a job to whatever runs it: arq through Redis, or an asyncio task in-process."""

    # `messaging.system` of the spans: "arq", or "in_process" in embedded mode.
    system: str

    async def dispatch(self, name: str, args: JobArgs, meta: JobArgs, job_id: str) -> bool:
        """Queue the job; False if a job with this id is still queued or running. Raises if it
        could not be queued (the outbox row then waits)."""


@dataclass
class JobEnv:
    """What every job may use; built once per worker process (or per app, in-process).

    `http` calls configured services (the AI provider); `webhook_http` calls URLs that
    organizations registered, through the SSRF guard in production (webhooks/ssrf.py)."""

    settings: Settings
    db: Database
    http: httpx.AsyncClient
    webhook_http: httpx.AsyncClient
    relay: Relay
    # The process's tracer: spans of jobs, webhook deliveries and AI calls.
    tracer: Tracer = field(default_factory=NoOpTracer)
    extras: dict[str, Any] = field(default_factory=dict)


JobFn = Callable[[JobEnv, JobArgs], Awaitable[Any]]
# Called once when a job is dead-lettered (e.g. to mark an export record failed).
DeadHook = Callable[[JobEnv, JobArgs, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A registered job: its name, function, retry budget and time limit per attempt
    (None: settings.job_max_tries, settings.job_timeout_seconds)."""

    name: str
    fn: JobFn
    max_tries: int | None = None
    on_dead: DeadHook | None = None
    timeout: float | None = None

    def tries(self, settings: Settings) -> int:
        """The maximum number of attempts before the job is dead-lettered."""
        return self.max_tries or settings.job_max_tries

    def time_limit(self, settings: Settings) -> float:
        """Seconds one attempt may run before it is cancelled (and counts as a timeout)."""
        return self.timeout or settings.job_timeout_seconds


_JOBS: dict[str, JobSpec] = {}


def job(
    name: str,
    *,
    max_tries: int | None = None,
    on_dead: DeadHook | None = None,
    timeout: float | None = None,
) -> Callable[[JobFn], JobFn]:
    """Register `fn` as the job `name` (names are stable: they are stored in the outbox)."""

    def register(fn: JobFn) -> JobFn:
        existing = _JOBS.get(name)
        if existing is not None and existing.fn is not fn:
            raise RuntimeError(f"job {name!r} is registered twice")
        _JOBS[name] = JobSpec(name, fn, max_tries, on_dead, timeout)
        return fn

    return register


def get_job(name: str) -> JobSpec | None:
    """The registered job called `name`, if any."""
    return _JOBS.get(name)


def registered_jobs() -> list[JobSpec]:
    """Every registered job, by name."""
    return [_JOBS[name] for name in sorted(_JOBS)]
