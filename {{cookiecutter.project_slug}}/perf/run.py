"""Load benchmark of the hot paths against a bare Starlette + asyncpg service, in the same run.

    uv run python perf/run.py [--baseline PATH] [--tasks 1000000] [--duration 10] [--rounds 2]
                              [--connections 32] [--threads 1] [--smoke] [--goals]

- Creates (or reuses) the database `perf_PACKAGE` on PERF_DATABASE_URL's server, seeds one
  organization with --tasks tasks (`PACKAGE seed`, timed) and the bare app's raw_item table
  with as many rows.
- Starts four servers on free ports of 127.0.0.1: this service as in production (`PACKAGE
  serve`: auth, tenancy, RBAC and tracing on) with the Redis cache, which serves every
  scenario; the same without Redis (a reference); the bare app: perf/baseline_app.py, or
  --baseline (a directory with app.py + seed.sql, like ../shared/bench/raw-baseline, or a .py
  file like ours); and the FastAPI floor, perf/floor_app.py (the bare app's work behind
  FastAPI with dependencies that do nothing: the most a FastAPI service reaches).
- Drives them with wrk in rounds. Each scenario's servers (ours, bare, floor) run in another
  order from one round to the next; the table shows the medians: scenario, req/s, p50, p95,
  p99, errors, ratio to the bare app (the floor's too), verdict.
- Judges the `perf:` section of perf/budgets.yaml (the gate) and exits 1 when a budget is
  missed. A budget whose figure is missing (scenario not run, no ratio) counts as missed, not
  skipped. `perf_goals:` (the stricter targets still to reach) are printed as GOAL NOT MET
  lines; --goals makes them fail the run too.
- --smoke: a few thousand tasks, 2 s per scenario, one round: every scenario runs and the table
  prints, but only errors fail it (a rot check for tests, not a measurement).

Needs wrk (apt-get install wrk). PERF_REDIS_URL (default redis://127.0.0.1:6379/9) receives the
bare app's `item:*` keys and ours under the namespace `perf-run`, whose keys are deleted before
every cache-miss run.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import importlib.util
import json
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.pagination import CursorCodec, Position

PERF = Path(__file__).resolve().parent
PACKAGE = "{{ cookiecutter.package_name }}"
DB_NAME = f"perf_{PACKAGE}"
SECRET = "perf-run-secret-" + "x" * 40
METRICS_TOKEN = "perf-run-metrics-token"  # noqa: S105 - a local benchmark server
OWNER, PASSWORD = "perf-owner@example.com", "perf-owner-password"
NAMESPACE = "perf-run"
HIT_SET = 2000  # ids the cache-hit scenarios cycle through (all warmed first)
MISS_POOL = 100_000  # distinct ids of the miss scenario: more than one run sends
DEEP_PAGES = 9000


@dataclass
class Run:
    """One wrk run."""

    rate: float
    p50: float
    p95: float
    p99: float
    errors: int
    cpu: float  # wrk's CPU seconds per second of the run, per thread (1.0 = saturated)
    server_us: float = 0.0  # the server's CPU time per request, in microseconds


@dataclass
class Scenario:
    """Requests to our service, with the bare app's equivalent when there is one."""

    name: str
    group: str | None  # the route group whose p95 budget applies
    paths: list[str]
    bare: list[str] | None = None
    bare_name: str = ""
    floor: list[str] | None = None  # the bare app's paths on the FastAPI floor (perf/floor_app.py)
    server: str = "ours"  # or "nocache"
    method: str = "GET"
    body: str | None = None
    idempotency: bool = False
    prepare: Callable[[], None] | None = None  # run before each round's runs of the scenario
    cached: bool = False  # count the cache hits of its runs (/metrics)
    runs: list[Run] = field(default_factory=list)
    bare_runs: list[Run] = field(default_factory=list)
    floor_runs: list[Run] = field(default_factory=list)
    hit_shares: list[float] = field(default_factory=list)


@dataclass
class Row:
    """A scenario's medians over the rounds, as printed and judged."""

    scenario: str
    group: str | None
    rate: float
    p50: float
    p95: float
    p99: float
    errors: int
    server_us: float = 0.0
    ratio: float | None = None
    floor_ratio: float | None = None  # the FastAPI floor's ratio to the same bare runs
    verdict: str = ""

    @classmethod
    def of(cls, name: str, group: str | None, runs: Sequence[Run]) -> Row:
        def med(attr: str) -> float:
            return statistics.median(getattr(r, attr) for r in runs)

        return cls(
            name,
            group,
            med("rate"),
            med("p50"),
            med("p95"),
            med("p99"),
            sum(r.errors for r in runs),
            med("server_us"),
        )


@dataclass
class Facts:
    """Everything measured besides the table."""

    memory: dict[str, tuple[float, float]]  # server -> (peak MiB, MiB after the load)
    cold_import_s: float
    loadgen_rate: float | None  # wrk's rate on the bare /ping
    loadgen_cpu: float  # the busiest wrk run's CPU per thread (1.0 = saturated)
    cache_hit_share: dict[str, float]  # scenario -> share of its reads that hit the cache
    seed_s_per_million: float | None = None


# -- database and seeding -------------------------------------------------------------------


def prepare_database(admin: str, tasks: int) -> tuple[str, float | None]:
    """Create, migrate and seed the perf database; reuse an organization already seeded."""
    url = make_url(admin).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(False), autocommit=True) as conn:
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            is None
        ):
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    target = url.set(database=DB_NAME).render_as_string(False)
    env = {**os.environ, "DATABASE_URL": target}
    subprocess.run(
        [sys.executable, "-m", PACKAGE, "migrate"], check=True, env=env, capture_output=True
    )
    if perf_org(target, tasks) is not None:
        return target, None
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            PACKAGE,
            "seed",
            "--tasks",
            str(tasks),
            "--owner-email",
            OWNER,
            "--password",
            PASSWORD,
        ],
        check=True,
        env=env,
    )
    seconds = time.perf_counter() - started
    print(f"seeded {tasks} tasks in {seconds:.1f} s (process start included)")
    return target, seconds


def perf_org(database: str, tasks: int) -> Any:
    """The id of the organization `PACKAGE seed --tasks N` created, if any."""
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT o.id FROM organizations o JOIN memberships m ON m.org_id = o.id"
            " JOIN users u ON u.id = m.user_id WHERE o.name = %s AND u.email_key = %s",
            (f"Perf org ({tasks} tasks)", OWNER),
        ).fetchone()
    return None if row is None else row[0]


@dataclass
class Baseline:
    """How to start the bare app and seed its table."""

    app_dir: Path
    app: str
    seed: list[str]

    @classmethod
    def load(cls, path: Path, rows: int) -> Baseline:
        if path.is_dir():  # the shared layout: app.py + seed.sql
            sql = (path / "seed.sql").read_text()
            statements = [s.strip() for s in re.split(r";\s*$", sql, flags=re.MULTILINE)]
            return cls(path, "app:app", [s for s in statements if _has_sql(s)])
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"{path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return cls(path.parent, f"{path.stem}:app", module.seed_statements(rows))


def _has_sql(statement: str) -> bool:
    return any(
        line.strip() and not line.strip().startswith("--") for line in statement.splitlines()
    )


def seed_baseline(database: str, baseline: Baseline) -> None:
    """Run the bare app's seed, one statement at a time (VACUUM refuses a transaction)."""
    mark = "seed " + hashlib.sha256("\n".join(baseline.seed).encode()).hexdigest()[:16]
    with psycopg.connect(database, autocommit=True) as conn:
        have = conn.execute(
            "SELECT obj_description(to_regclass('raw_item'), 'pg_class')"
        ).fetchone()
        if have is not None and have[0] == mark:
            return
        started = time.perf_counter()
        for statement in baseline.seed:
            conn.execute(statement.encode())
        conn.execute(f"COMMENT ON TABLE raw_item IS '{mark}'".encode())
    print(f"seeded the bare app's raw_item in {time.perf_counter() - started:.1f} s")


# -- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process on a free port; its output goes to a file shown if it fails."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port)], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, path: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{self.name} did not come up on {self.url}:\n{tail}")

    def memory_mib(self) -> tuple[float, float]:
        """Peak resident memory (VmHWM) and resident memory now (VmRSS), in MiB."""
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        )
        return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (its threads included)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def measure(self, paths: list[str], args: argparse.Namespace, **options: Any) -> Run:
        """A wrk run against this server, with the server's CPU time per request."""
        cpu = self.cpu_seconds()
        run = wrk(self.url, paths, args, **options)
        requests = run.rate * args.duration
        run.server_us = (self.cpu_seconds() - cpu) / requests * 1e6 if requests else 0.0
        return run

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- load -------------------------------------------------------------------------------------


def wrk(
    base: str,
    paths: list[str],
    args: argparse.Namespace,
    *,
    token: str | None = None,
    method: str = "GET",
    body: str | None = None,
    idempotency: bool = False,
) -> Run:
    """One wrk run over `paths`, with wrk's own CPU use measured."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("\n".join(paths) + "\n")
        listing.flush()
        env = {
            **os.environ,
            "PERF_PATHS": listing.name,
            "PERF_METHOD": method,
            "PERF_RUN": f"{os.getpid()}-{time.monotonic_ns()}",
            "PERF_IDEMPOTENCY": "1" if idempotency else "0",
        }
        if token:
            env["PERF_TOKEN"] = token
        if body:
            env["PERF_BODY"] = body
        cpu_before = _children_cpu()
        out = subprocess.run(
            [
                "wrk",
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--timeout",
                "5s",
                "-s",
                str(PERF / "wrk.lua"),
                base,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=args.duration + 60,
        ).stdout
        cpu = _children_cpu() - cpu_before
    data = json.loads(out[out.index("JSON") + 4 :].splitlines()[0])
    seconds = data["seconds"]
    return Run(
        data["requests"] / seconds,
        data["p50"],
        data["p95"],
        data["p99"],
        data["errors"],
        cpu / seconds / args.threads,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def warm(base: str, paths: list[str], token: str | None = None) -> None:
    """GET every path once (16 in flight), so each is cached before a hit run."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def go() -> None:
        gate = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:

            async def one(path: str) -> None:
                async with gate:
                    (await client.get(path)).raise_for_status()

            await asyncio.gather(*(one(p) for p in paths))

    asyncio.run(go())


def warm_until_cached(base: str, paths: list[str], token: str, patience: float = 30) -> None:
    """Warm, then check that a second read of a sample hits; if not, wait and warm again.

    After a write-heavy scenario the cache may be unusable for a while (a breaker cooling
    down, a writer that lost an invalidation and must resync: see cache/store.py); a hit run
    measures hits, so it waits for that to pass (at most `patience` seconds) and says so."""
    sample = paths[:: max(1, len(paths) // 50)]
    deadline = time.monotonic() + patience
    waited = 0.0
    while True:
        warm(base, paths, token)
        before = cache_reads(base).get("hit", 0)
        warm(base, sample, token)
        if cache_reads(base).get("hit", 0) - before >= len(sample):
            break
        if time.monotonic() > deadline:
            print(f"  the cache still did not hit after {patience:.0f} s of warming")
            return
        time.sleep(1)
        waited += 1
    if waited:
        print(f"  (the cache served no hits until {waited:.0f} s after the previous scenario)")


def cache_reads(base: str) -> dict[str, float]:
    """This server's task cache reads so far, by result (hit, miss, bypass, error)."""
    return cache_counters(base)["reads"]


def cache_counters(base: str) -> dict[str, dict[str, float]]:
    """Task cache reads by result, invalidations by outcome and resyncs, from /metrics."""
    text = httpx.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    found: dict[str, dict[str, float]] = {"reads": {}, "invalidations": {}, "resyncs": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if family.name == "app_cache_requests" and sample.labels.get("resource") == "task":
                found["reads"][sample.labels["result"]] = sample.value
            elif family.name == "app_cache_invalidations":
                found["invalidations"][sample.labels["outcome"]] = sample.value
            elif family.name == "app_cache_resyncs":
                found["resyncs"]["resyncs"] = sample.value
    return found


def counter_changes(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> str:
    """What the cache counted between two readings, e.g. ' (reads: hit 10399, miss 0)'."""
    parts = []
    for group, values in after.items():
        changed = {k: v - before[group].get(k, 0) for k, v in values.items()}
        if any(changed.values()):
            parts.append(f"{group}: " + ", ".join(f"{k} {v:.0f}" for k, v in changed.items()))
    return f" ({'; '.join(parts)})" if parts else ""


def delete_namespace(redis_url: str) -> None:
    """Drop every key of our cache namespace: the next read of any id is a real miss."""
    with redis.Redis.from_url(redis_url) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{NAMESPACE}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)


# -- the run ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=PERF / "baseline_app.py",
        help="the bare app: a .py file (default perf/baseline_app.py) or a directory with"
        " app.py and seed.sql",
    )
    parser.add_argument("--tasks", type=int, help="tasks in the organization (1,000,000)")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (10)")
    parser.add_argument("--rounds", type=int, help="rounds of every pair (2; medians reported)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1 on 2 cores)")
    parser.add_argument("--budgets", type=Path, default=PERF / "budgets.yaml")
    parser.add_argument("--smoke", action="store_true", help="small and short; only errors fail")
    parser.add_argument(
        "--goals",
        action="store_true",
        help="fail on an unmet perf_goals target too (not only perf)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for our servers, e.g. PACKAGE_TRACING_ENABLED=false (to see what it costs)",
    )
    args = parser.parse_args()
    smoke = {"tasks": 3000, "duration": 2, "rounds": 1}
    full = {"tasks": 1_000_000, "duration": 10, "rounds": 2}
    for name, default in (smoke if args.smoke else full).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (or brew install wrk)")

    cold_import = measure_cold_import(1 if args.smoke else 5)
    admin = os.environ.get("PERF_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("PERF_REDIS_URL", "redis://127.0.0.1:6379/9")
    database, seed_seconds = prepare_database(admin, args.tasks)
    baseline = Baseline.load(args.baseline.resolve(), args.tasks)
    seed_baseline(database, baseline)

    with tempfile.TemporaryDirectory(prefix="perf-") as logs:
        overrides = dict(item.split("=", 1) for item in args.env)
        servers = start_servers(database, redis_url, baseline, Path(logs), overrides)
        try:
            token = httpx.post(
                f"{servers['ours'].url}/auth/token", data={"username": OWNER, "password": PASSWORD}
            ).json()["access_token"]
            scenarios = build_scenarios(args, database, servers, token, redis_url)
            loadgen = run_rounds(args, scenarios, servers, token)
            hit_share = {s.name: statistics.median(s.hit_shares) for s in scenarios if s.hit_shares}
            memory = {name: server.memory_mib() for name, server in servers.items()}
        finally:
            for server in servers.values():
                server.stop()

    rows = table_rows(scenarios)
    facts = Facts(
        memory=memory,
        cold_import_s=cold_import,
        loadgen_rate=statistics.median(r.rate for r in loadgen) if loadgen else None,
        loadgen_cpu=max(r.cpu for s in scenarios for r in (*s.runs, *s.bare_runs, *s.floor_runs)),
        cache_hit_share=hit_share,
        # Per million only from a large seed: a small one is mostly process start-up.
        seed_s_per_million=seed_seconds * 1e6 / args.tasks
        if seed_seconds is not None and args.tasks >= 100_000
        else None,
    )
    budgets = yaml.safe_load(args.budgets.read_text())
    goals_missed = unmet_goals(rows, facts, budgets["perf"], budgets.get("perf_goals", {}))
    misses = judge(rows, facts, budgets["perf"])
    goal_ratios = budgets.get("perf_goals", {}).get("min_ratio", {})
    print_report(args, rows, facts, misses, goals_missed, goal_ratios)
    if args.smoke:
        # A smoke run proves every scenario still runs; its figures mean nothing.
        broken = [m for m in misses if m.startswith(("errors", "not measured"))]
        return 1 if broken else 0
    if args.goals:
        misses += goals_missed
    return 1 if misses else 0


def unmet_goals(
    rows: list[Row], facts: Facts, budgets: dict[str, Any], goals: dict[str, Any]
) -> list[str]:
    """What `perf_goals` (stricter than the gate, e.g. ratios to reach) would miss on top."""
    if not goals:
        return []
    gate = judge(copy.deepcopy(rows), facts, budgets)
    with_goals = judge(copy.deepcopy(rows), facts, {**budgets, **goals})
    return [text for text in with_goals if text not in gate]


def measure_cold_import(samples: int) -> float:
    """Median seconds of `import PACKAGE.app` in fresh processes, with compiled bytecode.

    The first import writes the bytecode caches, as the image does at build time
    (UV_COMPILE_BYTECODE): without them every start compiles each module from source, about
    2.5x slower here. So PYTHONDONTWRITEBYTECODE, if the shell sets it, is dropped."""
    command = [sys.executable, "-c", f"import {PACKAGE}.app"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, check=True, env=env)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def service_settings(database: str, redis_url: str) -> dict[str, str]:
    """The environment of our server: production settings, its own cache namespace."""
    prefix = PACKAGE.upper() + "_"
    return {
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        prefix + "ENVIRONMENT": "production",
        prefix + "SECRET_KEY": SECRET,
        prefix + "LOG_LEVEL": "WARNING",
        prefix + "LOGIN_LIMIT_PER_ADDRESS": "100000 per minute",
        prefix + "LOGIN_LIMIT_PER_ACCOUNT": "100000 per minute",
        prefix + "CACHE_NAMESPACE": NAMESPACE,
        prefix + "METRICS_TOKEN": METRICS_TOKEN,
    }


def start_servers(
    database: str, redis_url: str, baseline: Baseline, logs: Path, overrides: dict[str, str]
) -> dict[str, Server]:
    ours_env = {**os.environ, **service_settings(database, redis_url), **overrides}
    nocache_env = {k: v for k, v in ours_env.items() if k != "REDIS_URL"}
    serve = [sys.executable, "-m", PACKAGE, "serve"]
    bare_cmd = [
        *(sys.executable, "-m", "uvicorn", baseline.app, "--app-dir", str(baseline.app_dir)),
        *("--no-access-log", "--log-level", "warning"),
    ]
    floor_cmd = [
        *(sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(PERF)),
        *("--no-access-log", "--log-level", "warning"),
    ]
    bare_env = {**os.environ, "PG_DSN": database, "REDIS_URL": redis_url}
    servers = {
        "ours": Server("ours", serve, ours_env, logs),
        "nocache": Server("nocache", serve, nocache_env, logs),
        "bare": Server("bare", bare_cmd, bare_env, logs),
        "floor": Server("floor", floor_cmd, bare_env, logs),
    }
    try:
        for name, server in servers.items():
            server.wait_ready("/ping" if name in ("bare", "floor") else "/health/live")
    except BaseException:
        for server in servers.values():  # none may outlive a failed start
            server.stop()
        raise
    return servers


def build_scenarios(
    args: argparse.Namespace,
    database: str,
    servers: dict[str, Server],
    token: str,
    redis_url: str,
) -> list[Scenario]:
    org_id = perf_org(database, args.tasks)
    depth = min(DEEP_PAGES * 100, args.tasks * 9 // 10)
    with psycopg.connect(database) as conn:
        ids = [
            str(r[0])
            for r in conn.execute(
                "SELECT id FROM tasks WHERE org_id = %s ORDER BY random() LIMIT %s",
                (org_id, max(MISS_POOL, HIT_SET)),
            )
        ]
        deep = conn.execute(
            "SELECT created_at, id FROM tasks WHERE org_id = %s"
            " ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
            (org_id, depth),
        ).fetchone()
        project_id = conn.execute(
            "SELECT id FROM projects WHERE org_id = %s ORDER BY id LIMIT 1", (org_id,)
        ).fetchone()[0]
    if deep is None:
        raise SystemExit(f"the organization has fewer than {depth} tasks")
    rng = random.Random(9)  # noqa: S311 - picks benchmark ids, nothing secret
    bare_ids = rng.sample(range(1, args.tasks + 1), min(len(ids), args.tasks))
    tasks = f"/orgs/{org_id}/tasks"
    hit_set = min(HIT_SET, max(1, args.tasks // 10))
    hits, bare_hits = ids[:hit_set], bare_ids[:hit_set]
    hit_paths = [f"{tasks}/{i}" for i in hits]
    bare_hit_paths = [f"/cached/items/{n}" for n in bare_hits]
    floor = f"/orgs/{org_id}"  # the floor's routes have our shape: the organization in the path
    cursor = CursorCodec(SECRET).encode(f"tasks:{org_id}:*:*", Position(deep[0], deep[1]))
    body = json.dumps({"project_id": str(project_id), "title": "perf COUNTER"})
    # Half the PUTs replace a seeded task (an update), half create one (an insert).
    put_paths = [
        p
        for g in rng.sample(range(args.tasks), min(1000, args.tasks))
        for p in (f"{tasks}/by-key/SEED-{g}", f"{tasks}/by-key/NEWKEY")
    ]
    route = "/orgs/{org_id}/tasks"
    get_one = "GET " + route + "/{task_id}"
    by_id = [f"{tasks}/{i}" for i in ids]
    bare_by_id = [f"/items/{n}" for n in bare_ids]
    print(
        f"{args.tasks} tasks; deep page at offset {depth} (page {depth // 100 + 1});"
        f" {len(hits)} ids for cache hits, {len(ids)} for misses"
    )

    def prepare_hits() -> None:
        # Fresh values: ones filled by an earlier scenario would expire (TTL) during the run.
        delete_namespace(redis_url)
        warm_until_cached(servers["ours"].url, hit_paths, token)
        warm(servers["bare"].url, bare_hit_paths)  # the floor reads the same keys

    return [
        Scenario(
            "GET task, cache hit",
            get_one,
            hit_paths,
            bare_hit_paths,
            "/cached/items/{id}, hit",
            floor=[floor + p for p in bare_hit_paths],
            prepare=prepare_hits,
            cached=True,
        ),
        Scenario(
            "GET task, cache miss",
            get_one,
            by_id,
            bare_by_id,
            "/items/{id}",
            floor=[floor + p for p in bare_by_id],
            prepare=lambda: delete_namespace(redis_url),
            cached=True,
        ),
        Scenario("GET task, no Redis", get_one, by_id, bare_by_id, "/items/{id}", server="nocache"),
        Scenario(
            "list 100 tasks, first page",
            "GET " + route,
            [f"{tasks}?limit=100"],
            ["/items?after=0&limit=100"],
            "/items?after=0&limit=100",
            floor=[floor + "/items?after=0&limit=100"],
        ),
        Scenario(
            "list 100 tasks, deep page",
            "GET " + route,
            [f"{tasks}?limit=100&cursor={cursor}"],
            [f"/items?after={depth}&limit=100"],
            f"/items?after={depth}&limit=100",
            floor=[f"{floor}/items?after={depth}&limit=100"],
        ),
        Scenario(
            "POST task, Idempotency-Key",
            "POST " + route,
            [tasks],
            method="POST",
            body=body,
            idempotency=True,
        ),
        Scenario(
            "PUT task by external key",
            "PUT " + route + "/by-key/{external_key}",
            put_paths,
            method="PUT",
            body=body,
        ),
    ]


def run_rounds(
    args: argparse.Namespace,
    scenarios: list[Scenario],
    servers: dict[str, Server],
    token: str,
) -> list[Run]:
    """Every round: the load-generator check, then each scenario's servers in turn (ours, the
    bare app, the FastAPI floor), each round in another order."""
    loadgen: list[Run] = []
    for round_no in range(args.rounds):
        loadgen.append(servers["bare"].measure(["/ping"], args))
        for n, s in enumerate(scenarios):
            if s.prepare is not None:
                s.prepare()
            ours = servers[s.server]
            counted = cache_counters(ours.url) if s.server == "ours" else None

            def mine(s: Scenario = s, ours: Server = ours) -> None:
                options = {"method": s.method, "body": s.body, "idempotency": s.idempotency}
                s.runs.append(ours.measure(s.paths, args, token=token, **options))

            def theirs(s: Scenario = s) -> None:
                if s.bare is not None:
                    s.bare_runs.append(servers["bare"].measure(s.bare, args))

            def floors(s: Scenario = s) -> None:
                if s.floor is not None:  # with our token: it sends the same headers as ours
                    s.floor_runs.append(servers["floor"].measure(s.floor, args, token=token))

            steps = [mine, theirs, floors]
            turn = (round_no + n) % len(steps)
            for step in steps[turn:] + steps[:turn]:
                step()
            changes = ""
            if counted is not None:
                now = cache_counters(ours.url)
                changes = counter_changes(counted, now)
                if s.cached:
                    before, after = counted["reads"], now["reads"]
                    hits = after.get("hit", 0) - before.get("hit", 0)
                    reads = sum(after.values()) - sum(before.values())
                    s.hit_shares.append(hits / reads if reads else 0.0)
            rate = s.runs[-1].rate
            print(f"  round {round_no + 1}/{args.rounds}: {s.name}: {rate:.0f} req/s{changes}")
    return loadgen


def table_rows(scenarios: list[Scenario]) -> list[Row]:
    """One row per scenario (ratio: median of the rounds' ratios), its bare pair below it,
    then the FastAPI floor's row; the scenario's row carries the floor's ratio too."""

    def ratio(runs: Sequence[Run], bare: Sequence[Run]) -> float:
        return statistics.median(m.rate / b.rate for m, b in zip(runs, bare, strict=True))

    rows: list[Row] = []
    for s in scenarios:
        if not s.runs:
            continue
        row = Row.of(s.name, s.group, s.runs)
        rows.append(row)
        if s.bare_runs:
            row.ratio = ratio(s.runs, s.bare_runs)
            rows.append(Row.of(f"  bare {s.bare_name}", None, s.bare_runs))
        if s.floor_runs and s.bare_runs:
            floor = Row.of(f"  FastAPI floor {s.bare_name}", None, s.floor_runs)
            floor.ratio = row.floor_ratio = ratio(s.floor_runs, s.bare_runs)
            rows.append(floor)
    return rows


def floor_ratios(rows: list[Row]) -> dict[str, tuple[float, float]]:
    """Scenario -> (its ratio to the bare app, the FastAPI floor's ratio to the bare app).

    Only where both were measured: a floor that answered nothing has no share to give."""
    return {
        r.scenario: (r.ratio, r.floor_ratio)
        for r in rows
        if r.ratio is not None and r.floor_ratio  # neither None nor 0
    }


# -- verdict ----------------------------------------------------------------------------------


def judge(rows: list[Row], facts: Facts, budgets: dict[str, Any]) -> list[str]:
    """Every target of `budgets` (perf/budgets.yaml `perf:`) missed; marks rows' verdicts."""
    misses: list[str] = []
    by_name = {r.scenario: r for r in rows}

    def miss(row: Row | None, text: str) -> None:
        misses.append(text)
        if row is not None:
            row.verdict = "MISS"

    for row in rows:
        if row.group is not None:
            row.verdict = "ok"
    for name, minimum in budgets["min_ratio"].items():
        row = by_name.get(name)
        if row is None or row.ratio is None:
            miss(row, f"not measured: ratio of {name!r}")
        elif row.ratio < minimum:
            miss(row, f"{name}: {row.ratio:.2f}x the bare app < {minimum}x")
    for group, limit in budgets["p95_ms"].items():
        members = [r for r in rows if r.group == group]
        if not members:
            miss(None, f"not measured: route group {group!r}")
        for row in members:
            if row.p95 > limit:
                miss(row, f"{row.scenario}: p95 {row.p95:.1f} ms > {limit} ms ({group})")
    first = by_name.get("list 100 tasks, first page")
    deep = by_name.get("list 100 tasks, deep page")
    factor = budgets["deep_page_p95_factor"]
    if first is None or deep is None:
        miss(None, "not measured: first or deep page")
    elif deep.p95 > first.p95 * factor:
        miss(
            deep, f"deep page p95 {deep.p95:.1f} ms > {factor}x the first page's {first.p95:.1f} ms"
        )
    for server, (peak, after) in facts.memory.items():
        if server in ("bare", "floor"):  # not ours: references
            continue
        if peak > budgets["max_peak_rss_mib"]:
            miss(None, f"{server}: peak memory {peak:.0f} MiB > {budgets['max_peak_rss_mib']} MiB")
        if after > budgets["max_rss_mib"]:
            miss(
                None,
                f"{server}: memory after the load {after:.0f} MiB > {budgets['max_rss_mib']} MiB",
            )
    if facts.cold_import_s > budgets["max_cold_import_s"]:
        miss(None, f"cold import {facts.cold_import_s:.2f} s > {budgets['max_cold_import_s']} s")
    share = budgets["min_cache_hit_share"]
    hit, missed = (
        facts.cache_hit_share.get("GET task, cache hit"),
        facts.cache_hit_share.get("GET task, cache miss"),
    )
    if hit is None or missed is None:
        miss(None, "not measured: cache hit shares")
    else:
        if hit < share:
            miss(
                by_name.get("GET task, cache hit"),
                f"the hit scenario hit only {hit:.0%} (breaker open, values expired?)",
            )
        if missed > 1 - share:
            miss(
                by_name.get("GET task, cache miss"),
                f"the miss scenario hit {missed:.0%} of its reads",
            )
    fastest = max((r.rate for r in rows), default=0.0)
    headroom = budgets["loadgen_min_headroom"]
    if facts.loadgen_rate is None:
        miss(None, "not measured: load generator check (bare /ping)")
    elif facts.loadgen_rate < headroom * fastest:
        miss(
            None,
            f"load generator: {facts.loadgen_rate:.0f} req/s on bare /ping is under"
            f" {headroom}x the fastest scenario ({fastest:.0f} req/s): it may be the bottleneck",
        )
    if facts.loadgen_cpu > budgets["max_loadgen_cpu"]:
        miss(
            None,
            f"load generator: wrk used {facts.loadgen_cpu:.0%} of its thread(s): add --threads",
        )
    per_million = facts.seed_s_per_million
    if per_million is not None and per_million > budgets["max_seed_s_per_million"]:
        miss(
            None,
            f"seed: {per_million:.0f} s per million tasks > {budgets['max_seed_s_per_million']} s",
        )
    for row in rows:
        if row.errors:
            miss(row, f"errors during the load: {row.scenario.strip()} ({row.errors})")
        if row.rate == 0:
            miss(row, f"not measured: no request of {row.scenario.strip()!r} completed")
    return misses


def print_report(
    args: argparse.Namespace,
    rows: list[Row],
    facts: Facts,
    misses: list[str],
    goals_missed: Sequence[str] = (),
    goal_ratios: Mapping[str, float] | None = None,
) -> None:
    goal_ratios = goal_ratios or {}
    print(
        f"\n{args.tasks} tasks, {args.rounds} round(s) of {args.duration} s per scenario,"
        f" wrk -t{args.threads} -c{args.connections}, {os.cpu_count()} CPUs; medians"
        + "".join(f"\n  with {item}" for item in args.env)
        + "\n"
    )
    print(
        f"{'scenario':<46} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'errors':>7} {'ratio':>6} {'cpu us':>7}  verdict"
    )
    for r in rows:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        print(
            f"{r.scenario[:46]:<46} {r.rate:>8.0f} {r.p50:>8.2f} {r.p95:>8.2f} {r.p99:>8.2f}"
            f" {r.errors:>7} {ratio:>6} {r.server_us:>7.0f}  {r.verdict}"
        )
    print()
    for server, (peak, after) in facts.memory.items():
        print(f"memory of {server}: peak {peak:.0f} MiB, after the load {after:.0f} MiB")
    print("cpu us: the server's CPU time per request (steadier than req/s on a busy machine)")
    print(f"cold import of the app: {facts.cold_import_s:.2f} s (median, fresh processes)")
    for name, share in facts.cache_hit_share.items():
        print(f"cache hits in {name!r}: {share:.1%}")
    if facts.loadgen_rate is not None:
        print(
            f"load generator: {facts.loadgen_rate:.0f} req/s on bare /ping; busiest wrk run"
            f" used {facts.loadgen_cpu:.0%} of its thread(s)"
        )
    if facts.seed_s_per_million is not None:
        print(f"seed: {facts.seed_s_per_million:.1f} s per million tasks")
    print()
    floors = floor_ratios(rows)
    if floors:
        print(
            "FastAPI floor (perf/floor_app.py): the bare app's queries behind FastAPI's routing,"
            " three dependencies\nthat do no work and no response model, the most a FastAPI"
            " service with injected auth reaches here:"
        )
        for name, (ours, floor) in floors.items():
            goal = goal_ratios.get(name)
            print(
                f"  {name}: floor {floor:.2f}x the bare app, ours {ours:.2f}x ({ours / floor:.0%}"
                " of the floor)"
                + (f"; goal {goal}x" if goal is not None else "")
                + (": above the floor" if goal is not None and goal > floor else "")
            )
        print()
    for text in misses:
        print("MISSED:", text)
    for text in goals_missed:
        print("GOAL NOT MET:", text)
    if args.smoke:
        print("smoke run: the budgets are not enforced (only errors and unmeasured figures fail)")
    elif not misses:
        print(
            "every budget of perf/budgets.yaml met" + ("" if goals_missed else ", and every goal")
        )


if __name__ == "__main__":
    sys.exit(main())
