"""Jobs that exist only in tests: they fail on demand, so the wrapper's policy can be observed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import structlog

from {{ cookiecutter.package_name }}.jobs.errors import HttpStatusError, PermanentJobError
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, job

ATTEMPTS: Counter[str] = Counter()
BROKEN: set[str] = set()
RUNNING: Counter[str] = Counter()
PEAK: Counter[str] = Counter()


@job("test.flaky", max_tries=3)
async def flaky(_env: JobEnv, args: JobArgs) -> dict[str, Any]:
    """Fails `fail_times` times with HTTP `status` (default 503), then succeeds.

    A key in BROKEN fails every time (until the test repairs it)."""
    key = args["key"]
    ATTEMPTS[key] += 1
    if key in BROKEN or ATTEMPTS[key] <= args.get("fail_times", 0):
        raise HttpStatusError(args.get("status", 503), "probe failure")
    return {"key": key, "attempts": ATTEMPTS[key]}


@job("test.invalid")
async def invalid(_env: JobEnv, args: JobArgs) -> None:
    """Always a permanent failure (bad arguments)."""
    ATTEMPTS[args["key"]] += 1
    raise PermanentJobError(f"argument 'x' is invalid: {args.get('x')!r}")


@job("test.slow", max_tries=2, timeout=0.2)
async def slow(_env: JobEnv, args: JobArgs) -> None:
    """Sleeps past its 0.2 s time limit (every try)."""
    ATTEMPTS[args["key"]] += 1
    await asyncio.sleep(args.get("seconds", 5.0))


@job("test.logged")
async def logged(_env: JobEnv, args: JobArgs) -> None:
    """Writes one log line, so a test can read the ids every job line carries."""
    ATTEMPTS[args["key"]] += 1
    structlog.get_logger("probe").warning("probe_job_ran", key=args["key"])


@job("test.concurrent")
async def concurrent(_env: JobEnv, args: JobArgs) -> None:
    """Records how many of its kind run at once (yields a few times while it counts as running)."""
    ATTEMPTS[args["key"]] += 1
    RUNNING["test.concurrent"] += 1
    PEAK["test.concurrent"] = max(PEAK["test.concurrent"], RUNNING["test.concurrent"])
    try:
        for _ in range(5):
            await asyncio.sleep(0.01)
    finally:
        RUNNING["test.concurrent"] -= 1
