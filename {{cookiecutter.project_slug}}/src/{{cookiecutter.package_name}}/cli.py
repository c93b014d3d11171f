"""The `{{ cookiecutter.package_name }}` command: serve, migrate, and the operational sub-commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

app = typer.Typer(help="{{ cookiecutter.project_name }} operations.", no_args_is_help=True)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (dev).")] = False,
) -> None:
    """Run the HTTP API with uvicorn."""
    import uvicorn

    uvicorn.run(
        "{{ cookiecutter.package_name }}.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_config=None,  # the app configures logging (structlog) itself
        proxy_headers=True,
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (alembic upgrade) to DATABASE_URL."""
    from alembic import command

    command.upgrade(_alembic_config(), revision)
    typer.echo(f"database at revision {revision}")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
) -> None:
    """Revert database migrations (alembic downgrade)."""
    from alembic import command

    command.downgrade(_alembic_config(), revision)
    typer.echo(f"database at revision {revision}")


@app.command("rbac-matrix")
def rbac_matrix(
    output_format: Annotated[
        str, typer.Option("--format", help="md (a review-friendly table) or json.")
    ] = "md",
    policy: Annotated[
        Path | None, typer.Option(help="Policy file (default: the configured one).")
    ] = None,
) -> None:
    """Print the resolved roles x actions matrix of policy/rbac.yaml."""
    from {{ cookiecutter.package_name }}.security.rbac import (
        PolicyError,
        load_policy,
        render_json,
        render_markdown,
    )
    from {{ cookiecutter.package_name }}.settings import get_settings

    try:
        resolved = load_policy(policy or get_settings().rbac_policy_path)
    except PolicyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if output_format not in ("md", "json"):
        raise typer.BadParameter("use md or json", param_hint="--format")
    typer.echo(
        render_markdown(resolved) if output_format == "md" else render_json(resolved), nl=False
    )


def _engine() -> AsyncEngine:
    from sqlalchemy.ext.asyncio import create_async_engine

    from {{ cookiecutter.package_name }}.settings import get_settings

    return create_async_engine(get_settings().database_url)


@app.command()
def seed(
    tasks: Annotated[int, typer.Option(help="How many tasks to create.")] = 1_000_000,
    projects: Annotated[int, typer.Option(help="Spread over this many projects.")] = 100,
    owner_email: Annotated[str, typer.Option(help="Owner account (created if missing).")] = (
        "perf-owner@example.com"
    ),
    password: Annotated[str, typer.Option(help="Its password.", envvar="SEED_PASSWORD")] = (
        "perf-owner-password"  # noqa: S107 - a seeded benchmark account, never production
    ),
) -> None:
    """Seed one organization with a production-sized task table (generated server-side)."""
    import asyncio
    import time

    from argon2 import PasswordHasher

    from {{ cookiecutter.package_name }}.db.seed import seed as run_seed

    async def go() -> None:
        engine = _engine()
        started = time.perf_counter()
        try:
            done = await run_seed(
                engine,
                tasks=tasks,
                projects=projects,
                owner_email=owner_email,
                password_hash=PasswordHasher().hash(password),
            )
        finally:
            await engine.dispose()
        typer.echo(
            f"seeded org {done.org_id}: {done.tasks} tasks in {projects} projects "
            f"in {time.perf_counter() - started:.1f}s (owner {done.owner_email})"
        )

    asyncio.run(go())


@app.command("explain-check")
def explain_check(
    budgets: Annotated[Path, typer.Option(help="Budget file.")] = PROJECT_ROOT
    / "perf"
    / "budgets.yaml",
) -> None:
    """EXPLAIN the critical queries on the seeded database; exit 1 over budget or on a seq scan."""
    import asyncio

    from {{ cookiecutter.package_name }}.db.explain import explain_check as run
    from {{ cookiecutter.package_name }}.db.explain import render

    async def go() -> bool:
        engine = _engine()
        try:
            outcomes = await run(engine, budgets)
        finally:
            await engine.dispose()
        typer.echo(render(outcomes))
        return all(o.ok for o in outcomes)

    if not asyncio.run(go()):
        raise typer.Exit(1)


# --- Warm-up after a deploy (issue 4) ---
@app.command()
def warmup(
    base_url: Annotated[str, typer.Option(help="The service to warm, e.g. http://127.0.0.1:8000.")],
    token: Annotated[
        str | None,
        typer.Option(envvar="{{ cookiecutter.package_name|upper }}_WARMUP_TOKEN", help="A bearer token to use as is."),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(envvar="{{ cookiecutter.package_name|upper }}_WARMUP_EMAIL", help="Log in as this user..."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="{{ cookiecutter.package_name|upper }}_WARMUP_PASSWORD", help="...with this password."),
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option(
            envvar="{{ cookiecutter.package_name|upper }}_WARMUP_PATHS",
            help="A read path template to warm (repeat); default: the critical read paths.",
        ),
    ] = None,
    max_requests: Annotated[int, typer.Option(min=1, help="Cap on requests sent.")] = 500,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 8,
    timeout: Annotated[float, typer.Option(min=0.1, help="Per-request timeout (s).")] = 5.0,
    max_orgs: Annotated[int, typer.Option(min=1, help="Organizations to expand.")] = 20,
    ids_per_org: Annotated[
        int, typer.Option(min=1, help="Ids per {project_id}/{task_id}, per organization.")
    ] = 20,
) -> None:
    """Send a bounded burst of GETs to the critical read paths; exit 1 if unhealthy."""
    import asyncio

    import httpx

    from {{ cookiecutter.package_name }}.warmup import DEFAULT_PATHS, WarmupError, render, warm

    async def run() -> int:
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
            try:
                report = await warm(
                    client,
                    token=token,
                    email=email,
                    password=password,
                    paths=path or DEFAULT_PATHS,
                    max_requests=max_requests,
                    concurrency=concurrency,
                    max_orgs=max_orgs,
                    ids_per_org=ids_per_org,
                )
            except (WarmupError, httpx.HTTPError) as exc:
                typer.echo(f"warm-up failed: {exc}", err=True)
                return 1
        for line in render(report):
            typer.echo(line)
        return 0 if report.healthy else 1

    raise typer.Exit(asyncio.run(run()))


# --- Observability: SLO rules and domain dashboards rendered from slo.yaml ---
SLO_FILE = PROJECT_ROOT / "slo.yaml"
RULES_FILE = PROJECT_ROOT / "deploy" / "prometheus" / "rules.yaml"
DASHBOARDS_DIR = PROJECT_ROOT / "deploy" / "grafana" / "dashboards"


@app.command("slo-rules")
def slo_rules(
    slo: Annotated[Path, typer.Option(help="The SLO declarations.")] = SLO_FILE,
    output: Annotated[
        str,
        typer.Option(help="Rule file to write ('-' prints it); its promtool test goes beside it."),
    ] = str(RULES_FILE),
) -> None:
    """Render Prometheus recording + burn-rate alerting rules (and their promtool test)."""
    from {{ cookiecutter.package_name }}.observability.slo import (
        SLOError,
        dump_yaml,
        load_slos,
        render_rule_tests,
        render_rules,
    )

    try:
        spec = load_slos(slo)
    except SLOError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    rules = dump_yaml(render_rules(spec))
    if output == "-":
        typer.echo(rules, nl=False)
        return
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(rules, encoding="utf-8")
    tests = target.with_name(target.stem + ".test.yaml")
    tests.write_text(dump_yaml(render_rule_tests(spec, target.name)), encoding="utf-8")
    typer.echo(f"wrote {target} and {tests}")


@app.command()
def dashboards(
    slo: Annotated[Path, typer.Option(help="The SLO declarations (domains).")] = SLO_FILE,
    output: Annotated[Path, typer.Option(help="Directory for the JSON files.")] = DASHBOARDS_DIR,
) -> None:
    """Render one Grafana dashboard per domain of slo.yaml."""
    from {{ cookiecutter.package_name }}.observability.dashboards import render_dashboards
    from {{ cookiecutter.package_name }}.observability.slo import SLOError, load_slos

    try:
        spec = load_slos(slo)
    except SLOError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    output.mkdir(parents=True, exist_ok=True)
    for name, text in render_dashboards(spec).items():
        (output / name).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output / name}")


# --- Background jobs: the arq worker and the dead-letter queue (jobs/) ---------------------
dlq_app = typer.Typer(help="Inspect and replay dead-lettered jobs.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit once the queue is empty.")] = False,
) -> None:
    """Run the arq worker: every job, plus the outbox relay (needs REDIS_URL)."""
    import asyncio
    import contextlib

    from {{ cookiecutter.package_name }}.jobs.worker import build_worker
    from {{ cookiecutter.package_name }}.observability.logging import configure_logging
    from {{ cookiecutter.package_name }}.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.json_logs)
    if settings.redis_url is None:
        typer.echo("REDIS_URL is not set: without it jobs run inside the API process.", err=True)
        raise typer.Exit(2)

    async def run() -> None:
        # arq binds the worker to the running loop when it is built, so build it inside.
        worker = build_worker(settings, burst=burst)
        try:
            # SIGINT/SIGTERM: arq finishes or re-queues the running jobs, then cancels main().
            with contextlib.suppress(asyncio.CancelledError):
                await worker.async_run()
        finally:
            # close() gathers the jobs the signal cancelled (arq re-queues them): their
            # CancelledError is the shutdown asked for, not a failure, so the exit stays 0.
            with contextlib.suppress(asyncio.CancelledError):
                await worker.close()

    asyncio.run(run())


@dlq_app.command("list")
def dlq_list(
    include_replayed: Annotated[bool, typer.Option("--all", help="Include replayed.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List dead letters: id, job, attempts, when, last error."""
    import asyncio

    from {{ cookiecutter.package_name }}.jobs.admin import list_dead_letters

    for line in asyncio.run(list_dead_letters(include_replayed=include_replayed, limit=limit)):
        typer.echo(line)


@dlq_app.command("replay")
def dlq_replay(
    letter_id: Annotated[str | None, typer.Argument(help="The dead letter's id.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every pending one.")] = False,
) -> None:
    """Queue a dead letter (or all of them) again through the outbox."""
    import asyncio

    from {{ cookiecutter.package_name }}.jobs.admin import replay_dead_letters

    if (letter_id is None) == (not replay_all):
        typer.echo("Give a dead letter ID or --all (not both).", err=True)
        raise typer.Exit(2)
    try:
        count = asyncio.run(replay_dead_letters(letter_id))
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"replayed {count} dead letter(s)")


@app.command("prompts-lock")
def prompts_lock(
    check: Annotated[bool, typer.Option(help="Only check; exit 1 if the lock is stale.")] = False,
) -> None:
    """Regenerate prompts/prompts.lock from the templates (a deliberate, reviewed change)."""
    from {{ cookiecutter.package_name }}.jobs.ai.prompts import lock_problems, write_lock
    from {{ cookiecutter.package_name }}.settings import get_settings

    prompts_dir = get_settings().prompts_dir
    problems = lock_problems(prompts_dir)
    if check:
        for problem in problems:
            typer.echo(problem, err=True)
        raise typer.Exit(1 if problems else 0)
    hashes = write_lock(prompts_dir)
    for problem in problems:
        typer.echo(f"updated: {problem}")
    typer.echo(f"locked {len(hashes)} prompt(s) in {prompts_dir / 'prompts.lock'}")


# --- schema drift (issue 8): the scheduled drift workflow runs `make drift` ---


def next_revision_id(config: Config) -> str:
    """The revision id after the highest numeric one: "0001" -> "0002"."""
    from alembic.script import ScriptDirectory

    numbers = [
        int(script.revision)
        for script in ScriptDirectory.from_config(config).walk_revisions()
        if script.revision.isdigit()
    ]
    return f"{max(numbers, default=0) + 1:04d}"


@app.command()
def drift(
    write_revision: Annotated[
        str | None,
        typer.Option(help="On drift, autogenerate a migration with this message."),
    ] = None,
) -> None:
    """Compare the models with the database at DATABASE_URL (alembic check); exit 1 on drift."""
    from alembic import command
    from alembic.util.exc import AutogenerateDiffsDetected, CommandError

    config = _alembic_config()
    try:
        command.check(config)
    except AutogenerateDiffsDetected as exc:
        typer.echo(f"schema drift: {exc}", err=True)
        if write_revision is None:
            raise typer.Exit(1) from exc
        rev_id = next_revision_id(config)
        command.revision(config, message=write_revision, autogenerate=True, rev_id=rev_id)
        typer.echo(f"wrote revision {rev_id}; review it before merging")
        return
    except CommandError as exc:  # e.g. the database is not at head: migrate it first
        typer.echo(f"cannot compare: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo("no drift: the database matches the models")


def main() -> None:
    """Console-script entry point."""
    app()
