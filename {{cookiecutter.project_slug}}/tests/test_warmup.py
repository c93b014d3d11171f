"""`{{ cookiecutter.package_name }} warmup`: in-process against the app, and as a command against real uvicorn."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.cli import app as cli
from {{ cookiecutter.package_name }}.warmup import WarmupError, warm

from .api import PASSWORD, Api
from .cache_helpers import requests
from .conftest import REDIS_URL, make_settings, running
from .factories import TaskFactory, weird_email
from .redis_server import free_port


async def test_warm_expands_ids_and_fills_the_cache(database_url: str) -> None:
    settings = make_settings(database_url, redis_url=REDIS_URL, cache_namespace="warm-test")
    async with running(create_app(settings)) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = await api.project(org, owner)
        for _ in range(3):
            await api.task(org, owner, TaskFactory.payload(project["id"]))
        report = await warm(client, email=owner.email, password=PASSWORD, concurrency=4)
        by_path = {r.template: r for r in report.results}
        assert report.healthy
        assert by_path["/orgs/{org_id}/tasks/{task_id}"].statuses == {200: 3}
        assert by_path["/orgs/{org_id}/projects/{project_id}"].statuses == {200: 1}
        assert by_path["/orgs/{org_id}/stats"].statuses == {200: 1}
        if REDIS_URL:  # the burst filled the cache: the next read of a task is a hit
            hits = requests("task", "hit")
            task_id = (await client.get(f"/orgs/{org}/tasks", headers=owner.headers)).json()[
                "items"
            ][0]["id"]
            await client.get(f"/orgs/{org}/tasks/{task_id}", headers=owner.headers)
            assert requests("task", "hit") == hits + 1


async def test_warm_is_bounded(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    for _ in range(5):
        await api.task(org, owner, TaskFactory.payload(project["id"]))
    report = await warm(client, token=owner.token, max_requests=4)
    assert sum(r.requests for r in report.results) == 4


async def test_warm_refuses_an_unready_service_and_bad_input(
    database_url: str, api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user()
    with pytest.raises(WarmupError, match="login"):
        await warm(client, email=owner.email, password="wrong password!")
    with pytest.raises(WarmupError, match="unknown"):
        await warm(client, token=owner.token, paths=["/orgs/{org_id}/{nope}"])
    unready = create_app(make_settings(database_url, redis_url="redis://127.0.0.1:9/0"))
    async with running(unready) as down:
        with pytest.raises(WarmupError, match="not ready"):
            await warm(down, token=owner.token)


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 (a thread of this process)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(make_settings(database_url)), host="127.0.0.1", port=port, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        thread.join(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_command_warms_a_running_service(server: str) -> None:
    email = weird_email()
    with httpx.Client(base_url=server) as http:
        assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).is_success
        token = http.post("/auth/token", data={"username": email, "password": PASSWORD}).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        org = http.post("/orgs", json={"name": "Warm"}, headers=headers).json()["id"]
        project = http.post(f"/orgs/{org}/projects", json={"name": "P"}, headers=headers).json()
    result = CliRunner().invoke(
        cli,
        ["warmup", "--base-url", server, "--path", "/orgs/{org_id}/projects/{project_id}"],
        env={"{{ cookiecutter.package_name|upper }}_WARMUP_EMAIL": email, "{{ cookiecutter.package_name|upper }}_WARMUP_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    assert "200x1" in result.output
    assert "/orgs/{org_id}/projects/{project_id}" in result.output
    assert project["id"]


def test_the_command_exits_non_zero_when_the_service_is_down() -> None:
    result = CliRunner().invoke(
        cli, ["warmup", "--base-url", f"http://127.0.0.1:{free_port()}", "--token", "x"]
    )
    assert result.exit_code == 1
    assert "not ready" in result.output
