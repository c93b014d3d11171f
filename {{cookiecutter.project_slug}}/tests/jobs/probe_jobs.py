"""Jobs that exist only in tests: they fail on demand, so the wrapper's policy can be observed."""

from __future__ import annotations

from collections import Counter
from typing import Any

from {{ cookiecutter.package_name }}.jobs.errors import HttpStatusError, PermanentJobError
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, job

ATTEMPTS: Counter[str] = Counter()
BROKEN: set[str] = set()


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
