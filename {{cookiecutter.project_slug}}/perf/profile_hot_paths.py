"""Profile the hot paths with pyinstrument: where one API process spends its time under load.

    uv run python perf/profile_hot_paths.py [--tasks 1000000] [--duration 5] [--top 25] [--tree]

Serves the app in this process (uvicorn + uvloop, production settings, Redis cache on, as
perf/run.py starts it), drives each scenario with wrk from outside, and samples the event-loop
thread meanwhile: GET task (cache hit), GET task (cache miss), and a list page of 100. For each
it prints, from a run without the profiler, the server's CPU time per request, the garbage
collector's part and what the cache counted (a breaker that opened under load shows as
`bypass`); then, from a profiled run, the functions with the most time of their own (time in
the event loop's poll, `Runner.run`, is the part not spent on requests). --tree prints the call
tree as well. Uses the database and Redis of perf/run.py (PERF_DATABASE_URL, PERF_REDIS_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import time

import httpx
import psycopg
import uvicorn
import uvloop
from pyinstrument import Profiler
from run import (
    OWNER,
    PASSWORD,
    cache_counters,
    counter_changes,
    delete_namespace,
    free_port,
    perf_org,
    prepare_database,
    service_settings,
    warm,
    wrk,
)

from {{ cookiecutter.package_name }}.app import create_app


class GcClock:
    """Time spent in the garbage collector (pyinstrument charges it to whatever frame ran)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.longest = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._started
            self.seconds += pause
            self.longest = max(self.longest, pause)
            self.collections[info["generation"]] += 1


class LoopLag:
    """The event loop's worst lag: how late a 10 ms sleep wakes up (what every await may wait)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.perf_counter() - started - 0.01)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def profile(args: argparse.Namespace, database: str, redis_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(
        create_app(), host="127.0.0.1", port=port, log_config=None, proxy_headers=True
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
        await asyncio.sleep(0.05)
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            login = await client.post("/auth/token", data={"username": OWNER, "password": PASSWORD})
            token = login.json()["access_token"]
        org_id = perf_org(database, args.tasks)
        with psycopg.connect(database) as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM tasks WHERE org_id = %s ORDER BY random() LIMIT 50000",
                    (org_id,),
                )
            ]
        tasks = f"/orgs/{org_id}/tasks"
        hits = [f"{tasks}/{i}" for i in ids[:2000]]
        misses = [f"{tasks}/{i}" for i in ids]
        scenarios = [
            ("GET task, cache hit", hits, lambda: warm(base, hits, token)),
            ("GET task, cache miss", misses, lambda: delete_namespace(redis_url)),
            ("list 100 tasks, first page", [f"{tasks}?limit=100"], None),
        ]
        for name, paths, prepare in scenarios:
            # First without the profiler (its samples allocate, so the collector runs more).
            if prepare is not None:
                await asyncio.to_thread(prepare)
            gc_clock = GcClock()
            gc.callbacks.append(gc_clock)
            counted = await asyncio.to_thread(cache_counters, base)
            cpu = time.process_time()
            with LoopLag() as lag:
                run = await asyncio.to_thread(wrk, base, paths, args, token=token)
            cpu = time.process_time() - cpu
            gc.callbacks.remove(gc_clock)
            after = await asyncio.to_thread(cache_counters, base)
            requests = max(1.0, run.rate * args.duration)
            print(f"\n=== {name}: {run.rate:.0f} req/s, p95 {run.p95:.1f} ms, errors {run.errors}")
            print(
                f"    server CPU {cpu / requests * 1e6:.0f} us per request, of which the garbage"
                f" collector {gc_clock.seconds / requests * 1e6:.0f} us"
                f" (collections by generation: {gc_clock.collections}, longest pause"
                f" {gc_clock.longest * 1e3:.1f} ms); worst event-loop lag {lag.worst * 1e3:.0f} ms"
            )
            print(f"    the cache counted:{counter_changes(counted, after) or ' nothing'}")
            # Then profiled: wrk runs in a thread, the profiler samples this one (the event loop).
            if prepare is not None:
                await asyncio.to_thread(prepare)
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
            await asyncio.to_thread(wrk, base, paths, args, token=token)
            profiler.stop()
            flat = profiler.output_text(flat=True, time="percent_of_total", short_mode=True)
            print("\n".join(flat.splitlines()[: args.top + 4]))
            if args.tree:
                print(profiler.output_text(time="percent_of_total"))
    finally:
        server.should_exit = True
        await serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=5, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25, help="functions listed per scenario")
    parser.add_argument("--tree", action="store_true", help="also print the call tree")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (or brew install wrk)")
    admin = os.environ.get("PERF_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("PERF_REDIS_URL", "redis://127.0.0.1:6379/9")
    database, _ = prepare_database(admin, args.tasks)
    os.environ.update(service_settings(database, redis_url))  # read by the app's settings
    uvloop.run(profile(args, database, redis_url))


if __name__ == "__main__":
    main()
