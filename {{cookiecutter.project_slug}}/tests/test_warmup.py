"""`{{ cookiecutter.package_name }} warmup`: in-process against the app, and as a command against real uvicorn."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.cli import app as cli
from {{ cookiecutter.package_name }}.warmup import WarmupError, warm

from .api import PASSWORD, Api
from .cache_helpers import cached_app, requests
from .conftest import REDIS_URL, make_settings, running
from .factories import TaskFactory, weird_email
from .redis_server import free_port
from .tcp_proxy import ThreadedProxy, primary_proxy

__all__ = ["primary_proxy"]  # a fixture


async def test_warm_expands_ids_and_fills_the_cache(database_url: str) -> None:
    app = (
        cached_app(database_url, REDIS_URL)[0]
        if REDIS_URL
        else create_app(make_settings(database_url))
    )
    async with running(app) as client:
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


async def test_warm_is_bounded_and_shares_the_bound_across_paths(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    for _ in range(4):
        await api.project(org, owner)
    for _ in range(5):
        await api.task(org, owner, TaskFactory.payload(project["id"]))
    report = await warm(client, token=owner.token, max_requests=10)
    sent = {r.template: r.requests for r in report.results}
    assert sum(sent.values()) == 10
    # One of each of the 7 templates, then the id templates take turns: the task ids are not
    # crowded out by the five project ids listed before them.
    assert min(sent.values()) == 1
    assert sent["/orgs/{org_id}/projects/{project_id}"] == 3
    assert sent["/orgs/{org_id}/tasks/{task_id}"] == 2


async def test_warm_refuses_an_unready_service_and_bad_input(
    api: Api, client: httpx.AsyncClient, primary_proxy: tuple[ThreadedProxy, str]
) -> None:
    owner = await api.user()
    with pytest.raises(WarmupError, match="login"):
        await warm(client, email=owner.email, password="wrong password!")
    with pytest.raises(WarmupError, match="unknown"):
        await warm(client, token=owner.token, paths=["/orgs/{org_id}/{nope}"])
    proxy, url = primary_proxy
    async with running(create_app(make_settings(url))) as down:
        proxy.stop()  # the database goes away: not ready
        try:
            with pytest.raises(WarmupError, match="not ready"):
                await warm(down, token=owner.token)
        finally:
            proxy.start()


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """Serve apps with uvicorn on 127.0.0.1 (threads of this process); gives their base URL."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        for _ in range(200):
            if server.started:
                break
            thread.join(0.05)
        assert server.started, "uvicorn did not start"
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_the_command_warms_a_running_service(
    database_url: str, serve: Callable[[FastAPI], str]
) -> None:
    base = serve(create_app(make_settings(database_url)))
    email = weird_email()
    with httpx.Client(base_url=base) as http:
        assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).is_success
        token = http.post("/auth/token", data={"username": email, "password": PASSWORD}).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        org = http.post("/orgs", json={"name": "Warm"}, headers=headers).json()["id"]
        project = http.post(f"/orgs/{org}/projects", json={"name": "P"}, headers=headers).json()
    result = CliRunner().invoke(
        cli,
        ["warmup", "--base-url", base, "--path", "/orgs/{org_id}/projects/{project_id}"],
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


def test_the_command_exits_non_zero_when_a_path_answers_5xx(
    database_url: str, serve: Callable[[FastAPI], str]
) -> None:
    app = create_app(make_settings(database_url))

    @app.get("/__test/broken")
    async def broken() -> None:
        raise RuntimeError("a bug on a critical read path")

    base = serve(app)
    result = CliRunner().invoke(
        cli, ["warmup", "--base-url", base, "--token", "x", "--path", "/__test/broken"]
    )
    assert result.exit_code == 1, result.output
    assert "500x1" in result.output
    assert "UNHEALTHY" in result.output


def test_the_command_exits_non_zero_when_unready_after_the_burst(
    primary_proxy: tuple[ThreadedProxy, str], serve: Callable[[FastAPI], str]
) -> None:
    proxy, url = primary_proxy
    app = create_app(make_settings(url))

    @app.get("/__test/database-goes-away")
    async def database_goes_away() -> dict[str, str]:
        proxy.stop()  # the service answered, then lost its database
        return {}

    base = serve(app)
    try:
        result = CliRunner().invoke(
            cli,
            ["warmup", "--base-url", base, "--token", "x", "--path", "/__test/database-goes-away"],
        )
    finally:
        proxy.start()
    assert result.exit_code == 1, result.output
    assert "200x1" in result.output  # every request succeeded...
    assert "UNHEALTHY" in result.output  # ...but readiness failed after the burst
