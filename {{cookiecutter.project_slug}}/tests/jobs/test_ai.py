"""AI summaries: pinned prompts with a lock, the local provider, and contract tests of the
OpenAI-compatible client against recorded responses (success, 429, 500, malformed, timeout)."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.jobs.ai.prompts import (
    LOCK_NAME,
    PromptError,
    load_prompt,
    lock_problems,
)
from {{ cookiecutter.package_name }}.jobs.ai.provider import OpenAICompatible
from {{ cookiecutter.package_name }}.jobs.errors import HttpStatusError, classify
from {{ cookiecutter.package_name }}.settings import DEFAULT_PROMPTS_DIR, get_settings

from ..api import Api, User
from ..conftest import make_settings, running
from .conftest import eventually
from .recorded_server import RecordedServer, recorded_server, recording

KEY = "sk-test-not-a-real-key"


def test_every_prompt_matches_the_lock() -> None:
    assert lock_problems(DEFAULT_PROMPTS_DIR) == [], (
        "a prompt changed without its lock: review it, then run `{{ cookiecutter.package_name }} prompts-lock`"
    )
    for path in DEFAULT_PROMPTS_DIR.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        # Jinja syntax would be eaten when the project template is rendered (spelt in pieces
        # here for the same reason).
        assert "{" + "{" not in text
        assert "{" + "%" not in text
        prompt = load_prompt(DEFAULT_PROMPTS_DIR, path.stem)
        assert prompt.model_version
        assert prompt.params
        assert prompt.version >= 1


def test_a_changed_prompt_is_refused_until_the_lock_is_regenerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, prompts)
    path = prompts / "project_summary.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("brief", "verbose"), encoding="utf-8")
    assert lock_problems(prompts) == [
        f"project_summary.yaml: changed since the lock (hash {_short(path)} != "
        f"{_locked(prompts)[:12]})"
    ]
    with pytest.raises(PromptError, match="does not match"):
        load_prompt(prompts, "project_summary")

    monkeypatch.setenv("{{ cookiecutter.package_name|upper }}_PROMPTS_DIR", str(prompts))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(cli.app, ["prompts-lock", "--check"]).exit_code == 1
        regenerated = runner.invoke(cli.app, ["prompts-lock"])
        assert regenerated.exit_code == 0, regenerated.output
        assert "changed since the lock" in regenerated.output
        assert runner.invoke(cli.app, ["prompts-lock", "--check"]).exit_code == 0
    finally:
        get_settings.cache_clear()
    assert load_prompt(prompts, "project_summary").sha256 == _locked(prompts)


def _locked(prompts: Path) -> str:
    hashes: dict[str, str] = json.loads((prompts / LOCK_NAME).read_text())["prompts"]
    return hashes["project_summary.yaml"]


def _short(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_rendering_fills_placeholders_and_refuses_missing_ones() -> None:
    prompt = load_prompt(DEFAULT_PROMPTS_DIR, "project_summary")
    messages = prompt.messages(
        project_name="Prøject ✨",
        project_description="$HOME stays literal",
        task_count=1,
        tasks="- a",
    )
    assert messages[0]["role"] == "system"
    assert "Prøject ✨" in messages[1]["content"]
    assert "$HOME stays literal" in messages[1]["content"]  # values are not re-expanded
    with pytest.raises(KeyError):
        prompt.messages(project_name="x")


async def _project_with_tasks(api: Api) -> tuple[User, str, str]:
    owner = await api.user()
    org = await api.org(owner)
    project = (await api.project(org, owner, name="Launch 🚀"))["id"]
    for title, status, due in (
        ("Ship it 🚀", "todo", "2024-02-29"),
        ("Write\nrelease notes", "done", None),
        ("Tell the world", "in_progress", None),
    ):
        body: dict[str, Any] = {"project_id": project, "title": title, "status": status}
        if due:
            body["due_date"] = due
        await api.task(org, owner, body)
    return owner, org, project


async def _summary(client: httpx.AsyncClient, user: User, org: str, project: str) -> dict[str, Any]:
    started = await client.post(f"/orgs/{org}/projects/{project}/summary", headers=user.headers)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "queued"
    url = f"/orgs/{org}/projects/{project}/summary/{started.json()['id']}"
    result: dict[str, Any] = {}

    async def finished() -> bool:
        response = await client.get(url, headers=user.headers)
        result.update(response.json())
        return result["status"] in ("done", "failed")

    await eventually(finished)
    return result


async def test_local_provider_summaries_are_deterministic_and_record_provenance(api: Api) -> None:
    owner, org, project = await _project_with_tasks(api)
    first = await _summary(api.client, owner, org, project)
    second = await _summary(api.client, owner, org, project)
    assert first["status"] == "done", first
    assert first["result"] == second["result"]
    assert first["result"].startswith("3 tasks (1 done, 1 in_progress, 1 todo).")
    assert "Write release notes" in first["result"]  # one line per task
    assert first["provider"] == "local"
    assert first["model"] == "local-deterministic"
    assert first["prompt_id"] == "project_summary@1"
    assert first["prompt_sha256"] == _locked(DEFAULT_PROMPTS_DIR)

    member = await api.member(org, owner, "member")
    denied = await api.client.post(
        f"/orgs/{org}/projects/{project}/summary", headers=member.headers
    )
    assert denied.status_code == 403
    viewer_can_read = await api.client.get(
        f"/orgs/{org}/projects/{project}/summary/{first['id']}", headers=member.headers
    )
    assert viewer_can_read.status_code == 200


@pytest.fixture
def provider() -> Iterator[RecordedServer]:
    with recorded_server() as server:
        yield server


@pytest.fixture
async def ai_client(
    database_url: str, provider: RecordedServer
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url,
        ai_provider="openai",
        ai_base_url=provider.url,
        ai_api_key=KEY,
        ai_timeout_seconds=0.3,
        job_max_tries=3,
    )
    async with running(create_app(settings)) as client:
        yield client


async def test_contract_success(ai_client: httpx.AsyncClient, provider: RecordedServer) -> None:
    api = Api(ai_client)
    owner, org, project = await _project_with_tasks(api)
    result = await _summary(ai_client, owner, org, project)
    assert result["status"] == "done", result
    expected = json.loads(recording("success")["body"])["choices"][0]["message"]["content"]
    assert result["result"] == expected
    assert result["model"] == "gpt-4o-mini-2024-07-18"
    assert result["provider"] == "openai"
    [request] = provider.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    sent = request["json"]
    assert sent["model"] == "gpt-4o-mini-2024-07-18"  # the pinned version, not an alias
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 400)
    assert "Launch 🚀" in sent["messages"][1]["content"]
    assert "- Ship it 🚀 [todo, due 2024-02-29]" in sent["messages"][1]["content"]


async def test_contract_429_honours_retry_after_then_succeeds(
    ai_client: httpx.AsyncClient, provider: RecordedServer
) -> None:
    async with httpx.AsyncClient() as http:
        client = OpenAICompatible(http, provider.url, KEY, 1.0)
        provider.script = [("rate_limited", 0.0)]
        with pytest.raises(HttpStatusError) as caught:
            await client.complete(model="m", messages=[{"role": "user", "content": "x"}], params={})
    verdict = classify(caught.value)
    assert verdict.retryable
    assert verdict.retry_after == 1.0

    provider.script = [("rate_limited", 0.0)]
    api = Api(ai_client)
    owner, org, project = await _project_with_tasks(api)
    result = await _summary(ai_client, owner, org, project)
    assert result["status"] == "done"
    assert [r["answered"] for r in provider.requests[1:]] == ["rate_limited", "success"]


@pytest.mark.parametrize(
    ("recorded", "delay", "error", "calls"),
    [
        ("server_error", 0.0, "HTTP 500", 3),  # retried up to max tries, then dead-lettered
        ("malformed", 0.0, "malformed response", 3),  # retried: providers truncate sometimes
        ("success", 1.0, "ReadTimeout", 3),  # slower than ai_timeout_seconds
        ("bad_request", 0.0, "HTTP 400", 1),  # a permanent error: dead-lettered at once
    ],
)
async def test_contract_failures_end_in_a_failed_summary_and_a_dead_letter(
    ai_client: httpx.AsyncClient,
    provider: RecordedServer,
    recorded: str,
    delay: float,
    error: str,
    calls: int,
) -> None:
    provider.default = (recorded, delay)
    api = Api(ai_client)
    owner, org, project = await _project_with_tasks(api)
    result = await _summary(ai_client, owner, org, project)
    assert result["status"] == "failed"
    assert error in result["error"]
    assert len(provider.requests) == calls
    [letter] = (await ai_client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)).json()
    assert letter["job_name"] == "ai.summarize_project"
    assert letter["attempts"] == calls


async def test_contract_one_malformed_answer_is_retried(
    ai_client: httpx.AsyncClient, provider: RecordedServer
) -> None:
    provider.script = [("malformed", 0.0), ("server_error", 0.0)]
    api = Api(ai_client)
    owner, org, project = await _project_with_tasks(api)
    result = await _summary(ai_client, owner, org, project)
    assert result["status"] == "done"
    assert [r["answered"] for r in provider.requests] == ["malformed", "server_error", "success"]
