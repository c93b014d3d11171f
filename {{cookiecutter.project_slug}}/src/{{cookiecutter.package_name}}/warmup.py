"""Cache and pool warm-up after a deploy: a bounded burst of GETs on the critical read paths.

Paths are templates. `{org_id}` expands to each organization the caller belongs to; an id
placeholder (`{project_id}`, `{task_id}`) expands to the ids on the first page of the listing
that supplies it (`ID_SOURCES`). The burst is capped (`max_requests`, `concurrency`), so it
stops by itself; the cap is shared round-robin across the templates, so every path gets its
turn (the task ids are not crowded out by the project ids). The service must be ready before
and after the burst.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

DEFAULT_PATHS = (
    "/orgs",
    "/orgs/{org_id}",
    "/orgs/{org_id}/stats",
    "/orgs/{org_id}/projects",
    "/orgs/{org_id}/projects/{project_id}",
    "/orgs/{org_id}/tasks",
    "/orgs/{org_id}/tasks/{task_id}",
)
# Which listing supplies the values of an id placeholder.
ID_SOURCES = {
    "project_id": "/orgs/{org_id}/projects",
    "task_id": "/orgs/{org_id}/tasks",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class WarmupError(Exception):
    """The warm-up could not run (not ready, bad credentials, bad path template)."""


@dataclass
class PathResult:
    """What one path template got: status codes and latencies of its requests."""

    template: str
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Requests sent for this template."""
        return sum(self.statuses.values()) + self.errors

    @property
    def p50_ms(self) -> float:
        """Median latency of the answered requests."""
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def healthy(self) -> bool:
        """No transport error and no 5xx."""
        return self.errors == 0 and not any(code >= 500 for code in self.statuses)


@dataclass
class WarmupReport:
    """The outcome of a warm-up: per-template results and readiness after the burst."""

    results: list[PathResult]
    ready_after: bool

    @property
    def healthy(self) -> bool:
        """Ready after the burst, and no request failed with a 5xx or a transport error."""
        return self.ready_after and all(r.healthy for r in self.results)


async def _ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/health/ready")).status_code == 200
    except httpx.HTTPError:
        return False


async def _token(client: httpx.AsyncClient, email: str, password: str) -> str:
    response = await client.post("/auth/token", data={"username": email, "password": password})
    if response.status_code != 200:
        raise WarmupError(f"login as {email} failed with HTTP {response.status_code}")
    token: str = response.json()["access_token"]
    return token


async def _ids(
    client: httpx.AsyncClient, listing: str, limit: int, headers: dict[str, str]
) -> list[str]:
    response = await client.get(listing, params={"limit": limit}, headers=headers)
    if response.status_code != 200:
        return []  # e.g. a role without the list grant: nothing to expand
    return [str(item["id"]) for item in response.json().get("items", [])]


async def plan(
    client: httpx.AsyncClient,
    paths: Sequence[str],
    headers: dict[str, str],
    *,
    max_orgs: int,
    ids_per_org: int,
) -> list[tuple[str, str]]:
    """Every (template, concrete path) to request: one of each template in turn."""
    for template in paths:
        unknown = set(_PLACEHOLDER.findall(template)) - {"org_id", *ID_SOURCES}
        if not template.startswith("/") or unknown:
            raise WarmupError(f"cannot expand path {template!r}: unknown {sorted(unknown)}")
    orgs: list[str] = []
    if any("{org_id}" in t for t in paths):
        response = await client.get("/orgs", headers=headers)
        if response.status_code != 200:
            raise WarmupError(f"GET /orgs answered HTTP {response.status_code}")
        orgs = [str(org["id"]) for org in response.json()][:max_orgs]
    ids: dict[tuple[str, str], list[str]] = {}
    groups: list[list[tuple[str, str]]] = []
    for template in paths:
        names = set(_PLACEHOLDER.findall(template))
        if not names:
            groups.append([(template, template)])
            continue
        group: list[tuple[str, str]] = []
        for org in orgs:
            values = [{"org_id": org}]
            for name in sorted(names - {"org_id"}):
                if (org, name) not in ids:
                    listing = ID_SOURCES[name].format(org_id=org)
                    ids[(org, name)] = await _ids(client, listing, ids_per_org, headers)
                values = [{**v, name: i} for v in values for i in ids[(org, name)]]
            group += [(template, template.format(**v)) for v in values]
        groups.append(group)
    # Round-robin, so that a cap on the burst cuts every template's tail, not whole templates.
    rounds = itertools.zip_longest(*groups)
    return [item for round_ in rounds for item in round_ if item is not None]


async def warm(
    client: httpx.AsyncClient,
    *,
    token: str | None = None,
    email: str | None = None,
    password: str | None = None,
    paths: Sequence[str] = DEFAULT_PATHS,
    max_requests: int = 500,
    concurrency: int = 8,
    max_orgs: int = 20,
    ids_per_org: int = 20,
) -> WarmupReport:
    """Check readiness, authenticate, send the bounded burst, and check readiness again."""
    if not await _ready(client):
        raise WarmupError("the service is not ready (GET /health/ready is not 200)")
    if token is None:
        if not (email and password):
            raise WarmupError("give a token, or an email and a password to log in with")
        token = await _token(client, email, password)
    headers = {"Authorization": f"Bearer {token}"}
    planned = await plan(client, paths, headers, max_orgs=max_orgs, ids_per_org=ids_per_org)
    planned = planned[:max_requests]
    results = {template: PathResult(template) for template in paths}
    gate = asyncio.Semaphore(concurrency)

    async def one(template: str, path: str) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                response = await client.get(path, headers=headers)
            except httpx.HTTPError:
                results[template].errors += 1
                return
            results[template].latencies_ms.append((time.perf_counter() - started) * 1000)
            results[template].statuses[response.status_code] += 1

    await asyncio.gather(*(one(template, path) for template, path in planned))
    return WarmupReport(list(results.values()), ready_after=await _ready(client))


def render(report: WarmupReport) -> list[str]:
    """Human-readable lines: one per path template, then the verdict."""
    lines = []
    for result in report.results:
        codes = " ".join(f"{code}x{n}" for code, n in sorted(result.statuses.items())) or "-"
        if result.errors:
            codes += f" errors x{result.errors}"
        lines.append(
            f"{result.requests:5d} req  p50 {result.p50_ms:7.1f} ms  {codes:<24} {result.template}"
        )
    verdict = "healthy" if report.healthy else "UNHEALTHY"
    lines.append(f"warm-up done: {sum(r.requests for r in report.results)} requests, {verdict}")
    return lines
