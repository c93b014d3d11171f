"""API fuzzing with schemathesis against the service's own OpenAPI schema.

A real uvicorn server on 127.0.0.1 (test database) is called as an authenticated owner of a
seeded organization. Checks: no 5xx, every response matches its documented schema, status code
and media type. Not checked: that every schema-valid request is accepted: business rules the
schema cannot express (a deliverable email syntax, the common-password list) answer 422.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from {{ cookiecutter.package_name }}.app import create_app

from .conftest import make_settings

MAX_EXAMPLES = 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(database_url: str) -> Iterator[str]:
    """The app under uvicorn in a thread, for the duration of this module."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(make_settings(database_url)),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def owner(live_server: str) -> dict[str, str]:
    """A registered owner of an organization with one project and one task."""
    with httpx.Client(base_url=live_server) as client:
        email, password = "fuzz.owner@example.com", "Fuzzing is fun 🌈"
        client.post("/auth/register", json={"email": email, "password": password})
        token = client.post("/auth/token", data={"username": email, "password": password})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        org = client.post("/orgs", json={"name": "Fuzz"}, headers=headers).json()["id"]
        project = client.post(f"/orgs/{org}/projects", json={"name": "P"}, headers=headers).json()
        task = client.post(
            f"/orgs/{org}/tasks", json={"project_id": project["id"], "title": "T"}, headers=headers
        ).json()
        return {**headers, "org_id": org, "project_id": project["id"], "task_id": task["id"]}


# The schema of the app itself (no server needed to list the operations).
SCHEMA = schemathesis.openapi.from_dict(create_app(make_settings("sqlite+aiosqlite://")).openapi())
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}


@pytest.fixture(autouse=True)
def _keep_tables() -> None:
    """The fuzzed organization lives for the module; it is removed with the database."""


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_conforms_to_its_schema(
    label: str, live_server: str, owner: dict[str, str]
) -> None:
    ids = {k: owner[k] for k in ("org_id", "project_id", "task_id")}
    headers = {"Authorization": owner["Authorization"]}

    @given(case=OPERATIONS[label].as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Aim most calls at the real organization so the handlers run, not just the 404 path.
        for name in list(case.path_parameters or {}):
            if name in ids:
                case.path_parameters[name] = ids[name]
        case.call_and_validate(
            base_url=live_server, headers=headers, excluded_checks=[positive_data_acceptance]
        )

    check()
