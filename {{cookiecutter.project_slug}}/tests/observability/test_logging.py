"""Every log line carries trace, span and request ids, the tenant and the job where known;
uvicorn's and arq's records go through the same pipeline; secrets never reach a line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.observability.logging import bind_job_context, configure_logging
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize

from ..api import PASSWORD, Api
from ..conftest import make_settings, running

SECRET_VALUES = ("hunter2-very-secret", "sk-live-abcdef", PASSWORD)


def lines(out: str) -> list[dict[str, Any]]:
    """The JSON log lines of captured output (other output is ignored)."""
    found = []
    for line in out.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def _add_logging_route(app: FastAPI) -> None:
    @app.get("/orgs/{org_id}/_test/log")
    async def log_something(access: OrgAccess = authorize("projects:read")) -> dict[str, str]:
        structlog.get_logger("probe").info(
            "probe_event", password="hunter2-very-secret", api_key="sk-live-abcdef"
        )
        logging.getLogger("uvicorn.error").info("uvicorn says hello")
        return {"role": access.role}


async def test_request_log_lines_carry_ids_and_no_secrets(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(make_settings(database_url, log_level="INFO"))
    _add_logging_route(app)
    async with running(app) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        response = await client.get(
            f"/orgs/{org}/_test/log", headers={**owner.headers, "x-request-id": "req-42"}
        )
        assert response.status_code == 200, response.text
        after = await client.get("/health/live")
    out = capsys.readouterr().out
    records = lines(out)

    (probe,) = [r for r in records if r["event"] == "probe_event"]
    (uvicorn,) = [r for r in records if r["event"] == "uvicorn says hello"]
    for record in (probe, uvicorn):
        assert record["trace_id"] == response.headers["x-trace-id"]
        assert len(record["span_id"]) == 16
        assert record["request_id"] == "req-42"
        assert record["org_id"] == org
        assert record["user_id"] == owner.id
    assert uvicorn["logger"] == "uvicorn.error"
    assert probe["password"] == "[redacted]"
    assert probe["api_key"] == "[redacted]"
    # Registration and login logged nothing secret either, at INFO.
    for secret in (*SECRET_VALUES, owner.token):
        assert secret not in out
    # Nothing of the request stays bound once it is answered.
    assert after.status_code == 200
    assert structlog.contextvars.get_contextvars() == {}


def test_job_context_is_bound_in_the_block_and_gone_after(
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_app(make_settings("sqlite+aiosqlite://", log_level="INFO"))  # configures logging
    log = structlog.get_logger("job")
    with bind_job_context(job_id=7, prompt_id="summarize-v3"):
        log.info("job_started", token="abc.def.ghi")
        logging.getLogger("arq.worker").info("arq worker line")
    log.info("job_finished")
    started, arq_line, finished = (
        r for r in lines(capsys.readouterr().out) if r["event"] != "metrics_unreachable"
    )
    for record in (started, arq_line):
        assert record["job_id"] == "7"
        assert record["prompt_id"] == "summarize-v3"
    assert arq_line["logger"] == "arq.worker"
    assert started["token"] == "[redacted]"
    assert "job_id" not in finished


def test_console_renderer_in_dev(capsys: pytest.CaptureFixture[str]) -> None:
    create_app(
        make_settings("sqlite+aiosqlite://", log_level="INFO", log_json=None, environment="dev")
    )
    structlog.get_logger("dev").info("readable_line", password="pw-never-shown")
    out = capsys.readouterr().out
    assert "readable_line" in out
    assert not out.lstrip().startswith("{")
    assert "pw-never-shown" not in out


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """These tests point logging at their captured stdout; give the next tests the default."""
    yield
    configure_logging("WARNING", json=True)
