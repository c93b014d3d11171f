"""Benchmark of GET /orgs/{org}/tasks/{id}: cache hit, cache miss, Redis unreachable (breaker
open), and no cache at all, against the service run by uvicorn on 127.0.0.1.

    uv run python perf/bench_cache.py [--tasks 300] [--rounds 3] [--concurrency 8]

It creates a throw-away PostgreSQL database (TEST_DATABASE_URL's server, migrated by alembic),
starts a private redis-server on a free port, seeds data through the API, measures, and
removes everything again. "Unreachable" is a SIGSTOPped redis-server: the port accepts
connections and never answers, the worst case for a client. Prints req/s, p50 and p95, and
the share of cache hits the service counted in each scenario (a breaker that opened under load
turns a "hit" scenario into a database one; the table shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from redis.asyncio import Redis

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
PASSWORD = "benchmark password 1234"  # noqa: S105 - a throw-away local user


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Result:
    scenario: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    failures: int

    def row(self) -> str:
        ordered = sorted(self.latencies_ms)
        p50 = statistics.median(ordered)
        p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
        rate = self.requests / self.seconds
        return (
            f"{self.scenario:<34} {self.requests:>7} {rate:>9.0f} {p50:>9.2f} {p95:>9.2f}"
            f" {self.failures:>7}"
        )


async def load(
    client: httpx.AsyncClient,
    scenario: str,
    paths: Sequence[str],
    headers: dict[str, str],
    concurrency: int,
) -> Result:
    """Send every path once with at most `concurrency` requests in flight."""
    latencies: list[float] = []
    failures = 0
    queue = list(reversed(paths))

    async def worker() -> None:
        nonlocal failures
        while queue:
            path = queue.pop()
            started = time.perf_counter()
            response = await client.get(path, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(scenario, len(paths), time.perf_counter() - started, latencies, failures)


async def trip_breaker(
    client: httpx.AsyncClient, paths: Sequence[str], headers: dict[str, str], limit: int = 200
) -> Result:
    """Sequential reads until the breaker reports open, at most `limit` (then exit 1).

    As many as it takes: the failures must come in a row *and* stretch over the breaker's
    minimum span ({{ cookiecutter.package_name|upper }}_CACHE_BREAKER_MIN_SPAN_SECONDS), so a fixed
    count of requests that each time out quickly may not be enough."""
    latencies: list[float] = []
    failures = 0
    started = time.perf_counter()
    for path in itertools.islice(itertools.cycle(paths), limit):
        sent = time.perf_counter()
        response = await client.get(path, headers=headers)
        latencies.append((time.perf_counter() - sent) * 1000)
        failures += response.status_code != 200
        if (await cache_metrics(client)).get("breaker") == 2:
            elapsed = time.perf_counter() - started
            return Result("tripping the breaker", len(latencies), elapsed, latencies, failures)
    sys.exit(f"the breaker did not open on the black-holed Redis after {limit} requests")


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    return process, port


def start_service(env: dict[str, str], workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "{{ cookiecutter.package_name }}.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, **env},
        cwd=workdir,  # no stray .env file
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_ready(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for _ in range(1200):  # up to a minute: two services import at once on a small box
            try:
                if (await client.get("/health/live")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    sys.exit(f"the service at {base_url} did not start")


async def cache_metrics(client: httpx.AsyncClient) -> dict[str, float]:
    """The service's task cache reads by result, and its breaker state (`breaker`: 2 = open)."""
    found: dict[str, float] = {}
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("app_cache_requests_total{") and 'resource="task"' in line:
            found[line.split('result="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("app_cache_breaker_state "):
            found["breaker"] = float(line.rsplit(" ", 1)[1])
    return found


async def seed(client: httpx.AsyncClient, tasks: int) -> tuple[dict[str, str], list[str]]:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    login = await client.post("/auth/token", data={"username": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    org = (await client.post("/orgs", json={"name": "Bench"}, headers=headers)).json()["id"]
    project = (
        await client.post(f"/orgs/{org}/projects", json={"name": "P"}, headers=headers)
    ).json()["id"]
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> str:
        async with gate:
            body = {"project_id": project, "title": f"Task {n} ✨"}
            response = await client.post(f"/orgs/{org}/tasks", json=body, headers=headers)
            return f"/orgs/{org}/tasks/{response.json()['id']}"

    return headers, list(await asyncio.gather(*(one(n) for n in range(tasks))))


async def main(args: argparse.Namespace) -> None:
    admin_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_cache_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    database_url += f"/{name}"
    redis, redis_port = start_redis()
    processes: list[subprocess.Popen[bytes]] = [redis]
    workdir = tempfile.mkdtemp(prefix="bench-cache-")
    try:
        subprocess.run(  # noqa: ASYNC221 - once, before any load
            [sys.executable, "-m", "{{ cookiecutter.package_name }}", "migrate"],
            env={**os.environ, "DATABASE_URL": database_url},
            cwd=workdir,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        common = {
            "DATABASE_URL": database_url,
            "{{ cookiecutter.package_name|upper }}_LOG_LEVEL": "WARNING",
            "{{ cookiecutter.package_name|upper }}_CACHE_NAMESPACE": NAMESPACE,
            "{{ cookiecutter.package_name|upper }}_CACHE_TIMEOUT_SECONDS": "0.05",
            "{{ cookiecutter.package_name|upper }}_CACHE_BREAKER_FAILURES": "5",
            # Long enough that the breaker stays open for the whole measurement.
            "{{ cookiecutter.package_name|upper }}_CACHE_BREAKER_COOLDOWN_SECONDS": "600",
        }
        cached, cached_url = start_service(
            {**common, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}, workdir
        )
        plain, plain_url = start_service(common, workdir)
        processes += [cached, plain]
        await wait_ready(cached_url)
        await wait_ready(plain_url)

        limits = httpx.Limits(max_connections=args.concurrency)
        results: dict[str, list[Result]] = {}
        epoch = f"{NAMESPACE}:epoch"
        async with (
            httpx.AsyncClient(base_url=cached_url, limits=limits, timeout=30) as client,
            httpx.AsyncClient(base_url=plain_url, limits=limits, timeout=30) as baseline,
            Redis(port=redis_port) as direct,
        ):
            headers, paths = await seed(client, args.tasks)
            await load(client, "warm-up", paths, headers, args.concurrency)
            await load(baseline, "warm-up", paths, headers, args.concurrency)

            hits: dict[str, list[float]] = {}

            async def measure(name: str, target: httpx.AsyncClient) -> None:
                before = await cache_metrics(target)
                result = await load(target, name, paths, headers, args.concurrency)
                after = await cache_metrics(target)
                results.setdefault(name, []).append(result)
                reads = sum(after.get(k, 0) - before.get(k, 0) for k in ("hit", "miss", "bypass"))
                if reads:  # what the scenario really was: the breaker may have opened under load
                    share = (after.get("hit", 0) - before.get("hit", 0)) / reads
                    hits.setdefault(name, []).append(share)

            # Rounds interleave the scenarios, so a busy neighbour slows all of them alike.
            for _ in range(args.rounds):
                await direct.set(epoch, uuid.uuid4().hex)  # every cached value is now outdated
                await measure("cache miss (read + fill)", client)
                await measure("cache hit", client)
                await measure("no cache (Redis not configured)", baseline)
            os.kill(redis.pid, signal.SIGSTOP)  # black hole: accepts, never answers
            trip = await trip_breaker(client, paths, headers)
            for _ in range(args.rounds):
                await measure("Redis unreachable, breaker open", client)
                await measure("no cache (Redis not configured)", baseline)
            os.kill(redis.pid, signal.SIGCONT)

        print(
            f"GET task by id: {args.tasks} tasks x {args.rounds} rounds per scenario, "
            f"{args.concurrency} in flight, 127.0.0.1, {os.cpu_count()} CPUs"
        )
        print(
            f"{'scenario':<34} {'req':>7} {'req/s':>9} {'p50 ms':>9} {'p95 ms':>9} {'non-200':>7}"
            " cache hits (worst round)"
        )
        for name, rounds in results.items():
            merged = Result(
                name,
                sum(r.requests for r in rounds),
                sum(r.seconds for r in rounds),
                [ms for r in rounds for ms in r.latencies_ms],
                sum(r.failures for r in rounds),
            )
            shares = hits.get(name)
            print(merged.row() + (f" {min(shares):>7.0%}" if shares else ""))
        print(
            f"(tripping the breaker took {len(trip.latencies_ms)} sequential requests in"
            f" {trip.seconds:.2f} s, the slowest {max(trip.latencies_ms):.1f} ms while Redis timed"
            f" out; {trip.failures} of them failed)"
        )
    finally:
        os.kill(redis.pid, signal.SIGCONT)  # a stopped process would not see SIGTERM
        for process in processes:
            process.terminate()
            process.wait(10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300, help="tasks seeded (= requests/round)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
