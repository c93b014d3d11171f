"""The `{{ cookiecutter.package_name }}` command: serve, migrate, and the operational sub-commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from alembic.config import Config

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


def main() -> None:
    """Console-script entry point."""
    app()
