"""Load benchmark of the hot paths against a bare Starlette + asyncpg service, in the same run.

    uv run python perf/run.py [--baseline DIR] [--duration 10] [--connections 32] [--tasks N]

- Creates (or reuses) the database `perf_{{ cookiecutter.package_name }}` on PERF_DATABASE_URL's server and seeds
  one organization with --tasks tasks (1,000,000 by default; `{{ cookiecutter.package_name }} seed`).
- Starts this service (one uvicorn process, production settings, Redis cache on when
  PERF_REDIS_URL is set) and, with --baseline, the bare app of that directory (its seed.sql
  is loaded once), each on a free port of 127.0.0.1.
- Drives them with wrk (C, not the bottleneck: its rate on the bare /ping is printed), pairs
  interleaved, and prints: scenario, req/s, p50, p95, p99, errors, ratio to the bare app.
- Compares with the `perf:` targets of perf/budgets.yaml and exits 1 when one is missed.

Needs wrk (`apt-get install wrk`, `brew install wrk`). Loopback only; every run is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from sqlalchemy.engine import make_url

from {{ cookiecutter.package_name }}.pagination import CursorCodec, Position

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "perf_{{ cookiecutter.package_name }}"
SECRET = "perf-run-secret-" + "x" * 40
OWNER, PASSWORD = "perf-owner@example.com", "perf-owner-password"
WRK_SCRIPT = """
local paths, n = {}, 0
local file = os.getenv("PERF_PATHS")
for line in io.lines(file) do n = n + 1; paths[n] = line end
local method = os.getenv("PERF_METHOD") or "GET"
local body = os.getenv("PERF_BODY")
local counter = 0
request = function()
  counter = counter + 1
  local path = paths[(counter % n) + 1]
  local headers = {}
  local token = os.getenv("PERF_TOKEN")
  if token then headers["Authorization"] = "Bearer " .. token end
  if body then
    headers["Content-Type"] = "application/json"
    local nonce = counter .. "-" .. math.random(1e9)
    headers["Idempotency-Key"] = "k-" .. os.getenv("PERF_RUN") .. "-" .. nonce
    path = path:gsub("KEY", tostring(counter) .. "-" .. math.random(1e9))
  end
  return wrk.format(method, path, headers, body)
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "JSON{\\"requests\\": %d, \\"seconds\\": %f, \\"p50\\": %f, \\"p95\\": %f, "
    .. "\\"p99\\": %f, \\"errors\\": %d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, errors))
end
"""


@dataclass
class Result:
    """One wrk run."""

    scenario: str
    rate: float
    p50: float
    p95: float
    p99: float
    errors: int
    ratio: float | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def prepare_database(admin: str, tasks: int) -> str:
    """Create, migrate and seed the perf database once; reuse it when already seeded."""
    url = make_url(admin)
    with psycopg.connect(
        url.set(drivername="postgresql").render_as_string(False), autocommit=True
    ) as conn:
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            is None
        ):
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    target = url.set(drivername="postgresql", database=DB_NAME).render_as_string(False)
    env = {**os.environ, "DATABASE_URL": target}
    subprocess.run(["{{ cookiecutter.package_name }}", "migrate"], check=True, env=env, capture_output=True)
    with psycopg.connect(target) as conn:
        have = conn.execute("SELECT count(*) FROM tasks").fetchone()
    if not have or have[0] < tasks:
        started = time.perf_counter()
        subprocess.run(
            [
                "{{ cookiecutter.package_name }}",
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
        print(f"seeded {tasks} tasks in {time.perf_counter() - started:.1f}s")
    return target


def start(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wrk(
    name: str,
    base: str,
    paths: list[str],
    seconds: int,
    connections: int,
    token: str | None = None,
    method: str = "GET",
    body: str | None = None,
) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        script, listing = Path(tmp, "s.lua"), Path(tmp, "paths.txt")
        script.write_text(WRK_SCRIPT)
        listing.write_text("\n".join(paths) + "\n")
        run_id = f"{os.getpid()}-{time.monotonic_ns()}"  # Idempotency-Key: visible ASCII only
        env = {**os.environ, "PERF_PATHS": str(listing), "PERF_METHOD": method, "PERF_RUN": run_id}
        if token:
            env["PERF_TOKEN"] = token
        if body:
            env["PERF_BODY"] = body
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "5s",
                "-s",
                str(script),
                base,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    data = json.loads(out[out.index("JSON") + 4 :].splitlines()[0])
    return Result(
        name,
        data["requests"] / data["seconds"],
        data["p50"],
        data["p95"],
        data["p99"],
        data["errors"],
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="directory of the bare baseline app")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (or brew install wrk)")
    admin = os.environ.get("PERF_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("PERF_REDIS_URL", "redis://127.0.0.1:6379/9")
    database = prepare_database(admin, args.tasks)

    with psycopg.connect(database) as conn:
        org_id, _owner = conn.execute(
            "SELECT m.org_id, m.user_id FROM memberships m JOIN users u ON u.id = m.user_id"
            " WHERE u.email_key = %s ORDER BY m.created_at DESC LIMIT 1",
            (OWNER,),
        ).fetchone()
        task_ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM tasks WHERE org_id = %s ORDER BY random() LIMIT 2000", (org_id,)
            )
        ]
        deep = conn.execute(
            "SELECT created_at, id FROM tasks WHERE org_id = %s ORDER BY created_at DESC, id DESC"
            " OFFSET 900000 LIMIT 1",
            (org_id,),
        ).fetchone()
        project_id = conn.execute(
            "SELECT id FROM projects WHERE org_id = %s LIMIT 1", (org_id,)
        ).fetchone()[0]

    procs: list[subprocess.Popen[bytes]] = []
    results: list[Result] = []
    try:
        ours_env = {
            **os.environ,
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "{{ cookiecutter.package_name|upper }}_ENVIRONMENT": "production",
            "{{ cookiecutter.package_name|upper }}_SECRET_KEY": SECRET,
            "{{ cookiecutter.package_name|upper }}_LOG_LEVEL": "WARNING",
            "{{ cookiecutter.package_name|upper }}_LOGIN_LIMIT_PER_ADDRESS": "100000 per minute",
        }

        def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
            port = free_port()
            proc = start(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "{{ cookiecutter.package_name }}.app:create_app",
                    "--factory",
                    "--port",
                    str(port),
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                env,
            )
            procs.append(proc)
            wait_ready(f"http://127.0.0.1:{port}/health/live")
            return proc, f"http://127.0.0.1:{port}"

        ours, base = serve(ours_env)  # with the Redis cache
        _, nocache = serve({k: v for k, v in ours_env.items() if k != "REDIS_URL"})
        token = httpx.post(
            f"{base}/auth/token", data={"username": OWNER, "password": PASSWORD}
        ).json()["access_token"]

        bare = None
        if args.baseline:
            with psycopg.connect(database, autocommit=True) as conn:
                if conn.execute("SELECT to_regclass('raw_item')").fetchone()[0] is None:
                    conn.execute((args.baseline / "seed.sql").read_text())
            bport = free_port()
            bare_env = {**os.environ, "PG_DSN": database, "REDIS_URL": redis_url}
            procs.append(
                start(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "app:app",
                        "--port",
                        str(bport),
                        "--no-access-log",
                        "--log-level",
                        "warning",
                        "--app-dir",
                        str(args.baseline),
                    ],
                    bare_env,
                )
            )
            bare = f"http://127.0.0.1:{bport}"
            wait_ready(f"{bare}/ping")

        codec = CursorCodec(SECRET)
        listing = f"tasks:{org_id}:*:*"
        deep_cursor = codec.encode(listing, Position(deep[0], deep[1]))
        ids = [str(i) for i in task_ids]
        d, c = args.duration, args.connections
        ours_get = [f"/orgs/{org_id}/tasks/{i}" for i in ids]
        bare_ids = [f"/items/{n}" for n in range(1, 2001)]

        def pair(
            name: str,
            bare_paths: list[str] | None,
            our_paths: list[str],
            target: str | None = None,
            **kw: Any,
        ) -> None:
            ref = wrk(f"bare {name}", bare, bare_paths, d, c) if bare and bare_paths else None
            mine = wrk(name, target or base, our_paths, d, c, token=token, **kw)
            if ref:
                results.append(ref)
                mine.ratio = mine.rate / ref.rate
            results.append(mine)

        if bare:
            results.append(wrk("bare /ping (load generator check)", bare, ["/ping"], d, c))
        # Warm the cache, then measure hits; misses use ids the cache has not seen.
        wrk("warm", base, ours_get, 3, c, token=token)
        pair("GET task, cache hit", [f"/cached/items/{n}" for n in range(1, 2001)], ours_get)
        pair("GET task, cache miss (database)", bare_ids, ours_get, target=nocache)
        pair(
            "list 100 tasks, first page",
            ["/items?after=0&limit=100"],
            [f"/orgs/{org_id}/tasks?limit=100"],
            target=nocache,
        )
        pair(
            "list 100 tasks, 9,000 pages deep",
            ["/items?after=900000&limit=100"],
            [f"/orgs/{org_id}/tasks?limit=100&cursor={deep_cursor}"],
            target=nocache,
        )
        body = json.dumps({"project_id": str(project_id), "title": "perf"})
        pair(
            "POST task with Idempotency-Key",
            None,
            [f"/orgs/{org_id}/tasks"],
            target=nocache,
            method="POST",
            body=body,
        )
        pair(
            "PUT task by external key",
            None,
            [f"/orgs/{org_id}/tasks/by-key/PERF-KEY"],
            target=nocache,
            method="PUT",
            body=body,
        )
        memory = rss_mib(ours.pid)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import {{ cookiecutter.package_name }}.app"], check=True)
    cold_import = time.perf_counter() - started

    print(
        f"\n{'scenario':<40} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'errors':>7} {'ratio':>6}"
    )
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        print(
            f"{r.scenario:<40} {r.rate:>8.0f} {r.p50:>8.2f} {r.p95:>8.2f} {r.p99:>8.2f}"
            f" {r.errors:>7} {ratio:>6}"
        )
    print(f"\nresident memory after load: {memory:.0f} MiB; cold import: {cold_import:.2f} s")
    return judge(results, memory, cold_import)


def judge(results: list[Result], memory: float, cold_import: float) -> int:
    """Compare with perf/budgets.yaml `perf:`; print every miss; 1 if any."""
    targets = yaml.safe_load((ROOT / "perf" / "budgets.yaml").read_text())["perf"]
    by_name = {r.scenario: r for r in results}
    misses = []
    for name, minimum in targets["min_ratio"].items():
        r = by_name.get(name)
        if r is not None and r.ratio is not None and r.ratio < minimum:
            misses.append(f"{name}: {r.ratio:.2f}x of the bare app < {minimum}x")
    first, deep = by_name["list 100 tasks, first page"], by_name["list 100 tasks, 9,000 pages deep"]
    if deep.p95 > first.p95 * targets["deep_page_p95_factor"]:
        misses.append(
            f"deep page p95 {deep.p95:.2f} ms > {targets['deep_page_p95_factor']}x"
            f" first page {first.p95:.2f} ms"
        )
    if memory > targets["max_rss_mib"]:
        misses.append(f"resident memory {memory:.0f} MiB > {targets['max_rss_mib']} MiB")
    if cold_import > targets["max_cold_import_s"]:
        misses.append(f"cold import {cold_import:.2f} s > {targets['max_cold_import_s']} s")
    if any(r.errors for r in results):
        misses.append(
            "errors during the load: " + ", ".join(r.scenario for r in results if r.errors)
        )
    for miss in misses:
        print("MISSED:", miss)
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
