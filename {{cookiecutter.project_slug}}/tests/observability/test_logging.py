"""Every log line carries trace, span and request ids, the tenant and the job where known;
uvicorn's and arq's records go through the same pipeline; secrets never reach a line."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from fastapi import FastAPI, Request

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


def _add_failing_route(app: FastAPI) -> None:
    @app.post("/orgs/{org_id}/_test/fail")
    async def fail(
        body: dict[str, str], request: Request, access: OrgAccess = authorize("projects:read")
    ) -> None:
        # Locals a traceback that shows frame variables would print.
        password = body["password"]
        authorization = request.headers["authorization"]
        raise RuntimeError(f"failed after reading {len(password) + len(authorization)} chars")


@pytest.mark.parametrize("renderer", ["json", "console"])
async def test_an_unhandled_error_logs_neither_the_password_nor_the_token(
    database_url: str, capsys: pytest.CaptureFixture[str], renderer: str
) -> None:
    settings = make_settings(
        database_url,
        log_level="INFO",
        **({"log_json": True} if renderer == "json" else {"log_json": None, "environment": "dev"}),
    )
    app = create_app(settings)
    _add_failing_route(app)
    async with running(app, raise_app_exceptions=False) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        response = await client.post(
            f"/orgs/{org}/_test/fail", json={"password": PASSWORD}, headers=owner.headers
        )
    assert response.status_code == 500
    out = capsys.readouterr().out
    # The error and its traceback were logged...
    assert "unhandled_error" in out
    assert "RuntimeError: failed after reading" in out
    # ...without the frame locals: no password, no token, not even a token's first characters.
    assert PASSWORD not in out
    assert owner.token[:24] not in out


def test_secrets_nested_in_dicts_and_lists_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    create_app(make_settings("sqlite+aiosqlite://", log_level="INFO"))  # configures logging
    structlog.get_logger("probe").info(
        "outgoing_call",
        request={
            "headers": {"Authorization": "Bearer abc.def.ghi", "Accept": "*/*"},
            "params": [{"password": "hunter2-very-secret"}, {"page": 2}],
        },
        raw_headers=[(b"authorization", b"Bearer abc.def.ghi"), (b"accept", b"*/*")],
    )
    out = capsys.readouterr().out
    (line,) = [r for r in lines(out) if r["event"] == "outgoing_call"]
    assert line["request"]["headers"] == {"Authorization": "[redacted]", "Accept": "*/*"}
    assert line["request"]["params"] == [{"password": "[redacted]"}, {"page": 2}]
    assert "abc.def.ghi" not in out
    assert "hunter2-very-secret" not in out
    assert "accept" in json.dumps(line["raw_headers"])


async def test_access_lines_carry_no_secret_query_values(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real uvicorn server: its access line (and httpx's request line) are scrubbed too."""
    app = create_app(make_settings(database_url, log_level="INFO"))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=True)
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as http:
            response = await http.get(
                f"http://127.0.0.1:{port}/health/live",
                params={"token": "supersecret-1", "limit": "5", "API_KEY": "sk-live-abcdef"},
            )
        assert response.status_code == 200
    finally:
        server.should_exit = True
        await serving
    out = capsys.readouterr().out
    (access,) = [r for r in lines(out) if r.get("logger") == "uvicorn.access"]
    assert "GET /health/live?token=[redacted]&limit=5&API_KEY=[redacted]" in access["event"]
    assert "supersecret-1" not in out
    assert "sk-live-abcdef" not in out


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
