"""One transaction per write request: committed before a 2xx leaves, rolled back otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.dependencies import SessionDep, UnitOfWorkDep
from {{ cookiecutter.package_name }}.errors import ProblemError
from {{ cookiecutter.package_name }}.resources.orgs.model import Organization

from .conftest import make_settings, running


def _app_with_probe_routes(database_url: str) -> FastAPI:
    app = create_app(make_settings(database_url))

    @app.post("/__test/orgs/{outcome}", status_code=201)
    async def write(outcome: str, session: SessionDep, uow: UnitOfWorkDep) -> dict[str, str]:
        session.add(Organization(name=f"written-then-{outcome}"))
        await session.flush()  # the row exists inside the transaction now

        async def remember() -> None:
            app.state.after_commit_ran = True

        uow.after_commit(remember)
        if outcome == "rejected":
            raise ProblemError(422, "rejected after writing")
        if outcome == "crashed":
            raise RuntimeError("bug after writing")
        return {"outcome": outcome}

    return app


@pytest.fixture
async def probe(database_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = _app_with_probe_routes(database_url)
    app.state.after_commit_ran = False
    async with running(app) as client:
        yield app, client


async def _org_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(Organization)) or 0)


async def test_success_commits_and_runs_after_commit_hooks(
    probe: tuple[FastAPI, httpx.AsyncClient], admin_engine: AsyncEngine
) -> None:
    app, client = probe
    response = await client.post("/__test/orgs/committed")
    assert response.status_code == 201
    assert await _org_count(admin_engine) == 1
    assert app.state.after_commit_ran is True


async def test_a_4xx_after_a_write_rolls_it_back(
    probe: tuple[FastAPI, httpx.AsyncClient], admin_engine: AsyncEngine
) -> None:
    app, client = probe
    response = await client.post("/__test/orgs/rejected")
    assert response.status_code == 422
    assert await _org_count(admin_engine) == 0
    assert app.state.after_commit_ran is False


async def test_a_crash_after_a_write_rolls_it_back_and_hides_the_traceback(
    database_url: str, admin_engine: AsyncEngine
) -> None:
    app = _app_with_probe_routes(database_url)
    async with running(app, raise_app_exceptions=False) as client:
        response = await client.post("/__test/orgs/crashed")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "RuntimeError" not in response.text
    assert await _org_count(admin_engine) == 0


async def test_a_failed_statement_never_logs_its_parameters(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(make_settings(database_url))
    secret = "$argon2id$v=19$m=65536,t=3,p=4$not-for-logs"

    @app.post("/__test/bad-statement")
    async def bad_statement(session: SessionDep) -> None:
        # Fails for a reason the server's message does not quote the value for; SQLAlchemy
        # would append the bound values to it (`[parameters: ...]`) without hide_parameters.
        await session.execute(text("SELECT CAST(:hash AS text), 1 / 0"), {"hash": secret})

    async with running(app, raise_app_exceptions=False) as client:
        response = await client.post("/__test/bad-statement")
    out = capsys.readouterr().out
    assert response.status_code == 500
    assert "unhandled_error" in out
    assert "division by zero" in out  # logged, with its SQL...
    assert "SQL parameters hidden" in out
    assert "not-for-logs" not in out  # ...but never its values
    assert secret not in response.text
