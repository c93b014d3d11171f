"""What tracing and request telemetry cost per request, measured in-process.

Runs the same requests against the app with tracing on (every span recorded, exported to
memory) and off, on a throw-away SQLite database, and prints the mean and p95 per request:

    uv run python perf/telemetry_overhead.py [requests per case, default 500]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT
from {{ cookiecutter.package_name }}.settings import Settings

PASSWORD = "a benchmark password that is long enough"  # noqa: S105 - throw-away database


def _settings(url: str, *, tracing: bool) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment="test",
        database_url=url,
        tracing_enabled=tracing,
        log_level="WARNING",
        argon2_time_cost=1,
        argon2_memory_kib=64,
    )


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    login = await client.post("/auth/token", data={"username": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def measure(
    url: str, *, requests: int, rounds: int = 10
) -> dict[str, dict[bool, list[float]]]:
    """Seconds per request, by path and tracing on/off; the two apps alternate in rounds so
    that the load of the machine weighs on both alike."""
    exporter = InMemorySpanExporter()
    apps = {
        on: create_app(_settings(url, tracing=on), span_exporter=exporter) for on in (False, True)
    }
    timings: dict[str, dict[bool, list[float]]] = {}
    async with LifespanManager(apps[False]) as off_app, LifespanManager(apps[True]) as on_app:
        clients = {
            on: httpx.AsyncClient(transport=httpx.ASGITransport(app=m.app), base_url="http://bench")
            for on, m in ((False, off_app), (True, on_app))
        }
        auth = {
            on: await _login(client, f"bench-{on}@example.com") for on, client in clients.items()
        }
        for path in ("/health/live", "/users/me", "/orgs"):
            for on, client in clients.items():  # warm-up
                for _ in range(50):
                    await client.get(path, headers=auth[on])
            for _ in range(rounds):
                for on, client in clients.items():
                    found = timings.setdefault(path, {}).setdefault(on, [])
                    for _ in range(requests // rounds):
                        started = time.perf_counter()
                        response = await client.get(path, headers=auth[on])
                        found.append(time.perf_counter() - started)
                        response.raise_for_status()
                    exporter.clear()
        for client in clients.values():
            await client.aclose()
    return timings


def main() -> None:
    """Print mean and p95 per request, tracing off vs on."""
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        config = Config(str(PROJECT_ROOT / "alembic.ini"))
        config.attributes.update(database_url=url, configure_logger=False)
        command.upgrade(config, "head")
        timings = asyncio.run(measure(url, requests=requests))
    print(f"{requests} requests per case, in-process, SQLite")
    print(f"{'path':<14} {'off mean':>10} {'on mean':>10} {'off p95':>10} {'on p95':>10}  (us)")
    for path, by_mode in timings.items():
        a, b = by_mode[False], by_mode[True]
        p95 = [statistics.quantiles(x, n=20)[18] * 1e6 for x in (a, b)]
        means = [statistics.fmean(x) * 1e6 for x in (a, b)]
        print(f"{path:<14} {means[0]:>10.0f} {means[1]:>10.0f} {p95[0]:>10.0f} {p95[1]:>10.0f}")


if __name__ == "__main__":
    main()
