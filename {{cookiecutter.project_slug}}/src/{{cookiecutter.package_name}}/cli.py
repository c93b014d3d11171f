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


def main() -> None:
    """Console-script entry point."""
    app()
