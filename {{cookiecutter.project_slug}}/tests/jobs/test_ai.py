"""AI summaries: pinned prompts with a lock, the local provider, the feature flag that gates
them, and no second call for a summary already done. The OpenAI-compatible client's contract
tests (recorded responses) are in tests/contract/test_ai_provider.py."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.testing import CliRunner

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.ai.prompts import (
    LOCK_NAME,
    PromptError,
    load_prompt,
    lock_problems,
)
from {{ cookiecutter.package_name }}.jobs.ai.summary import SUMMARY_JOB, AiSummary
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.settings import DEFAULT_PROMPTS_DIR, get_settings

from ..api import Api
from ..conftest import FLAGS_ON, make_settings, running
from ..contract.stand_in import serve
from .conftest import LogLines, put_in_outbox
from .summaries import project_with_tasks, summary


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


async def test_local_provider_summaries_are_deterministic_and_record_provenance(api: Api) -> None:
    owner, org, project = await project_with_tasks(api)
    first = await summary(api.client, owner, org, project)
    second = await summary(api.client, owner, org, project)
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


async def test_the_ai_summary_flag_gates_the_request(database_url: str, tmp_path: Path) -> None:
    """Off (the default): 404 feature-disabled, nothing queued; on: 202; summaries made while
    it was on stay readable after it is switched off."""
    on = make_settings(database_url, flags_file=FLAGS_ON)
    async with running(create_app(on)) as client:
        api = Api(client)
        owner, org, project = await project_with_tasks(api)
        done = await summary(client, owner, org, project)
        assert done["status"] == "done"

    off_file = tmp_path / "flags.yaml"
    off_file.write_text("ai-summary: false\n", encoding="utf-8")
    for off in (make_settings(database_url), make_settings(database_url, flags_file=off_file)):
        async with running(create_app(off)) as client:
            refused = await client.post(
                f"/orgs/{org}/projects/{project}/summary", headers=owner.headers
            )
            assert refused.status_code == 404, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            body = refused.json()
            assert body["type"].endswith("/feature-disabled")
            assert body["flag"] == "ai-summary"
            assert "not enabled" in body["detail"]
            kept = await client.get(
                f"/orgs/{org}/projects/{project}/summary/{done['id']}", headers=owner.headers
            )
            assert kept.json()["result"] == done["result"]


async def test_a_redelivered_summary_job_does_not_call_the_provider_again(
    database_url: str, admin_engine: AsyncEngine
) -> None:
    with serve() as provider:
        settings = make_settings(
            database_url,
            ai_provider="openai",
            ai_base_url=provider.url,
            ai_api_key="sk-test-not-a-real-key",  # pragma: allowlist secret
            flags_file=FLAGS_ON,
        )
        async with running(create_app(settings)) as client:
            owner, org, project = await project_with_tasks(Api(client))
            done = await summary(client, owner, org, project)
            assert done["status"] == "done"
            assert len(provider.received) == 1
            # At-least-once: the same job arrives again (a relay redispatch, a replay).
            runtime = JobsRuntime(settings, Database(settings), redis_url="")
            try:
                await put_in_outbox(runtime.db, SUMMARY_JOB, {"summary_id": done["id"]})
                await runtime.drain()
            finally:
                await runtime.close()
                await runtime.db.dispose()
        assert len(provider.received) == 1, "a finished summary is not paid for twice"
    async with AsyncSession(admin_engine) as session:
        record = await session.get(AiSummary, uuid.UUID(done["id"]))
    assert record is not None
    assert (record.status, record.result) == ("done", done["result"])


async def test_ai_job_log_lines_carry_the_prompt_job_org_and_trace_ids(
    database_url: str, log_lines: LogLines
) -> None:
    settings = make_settings(database_url, flags_file=FLAGS_ON, log_level="INFO")
    async with running(create_app(settings)) as client:
        owner, org, project = await project_with_tasks(Api(client))
        started = await client.post(
            f"/orgs/{org}/projects/{project}/summary", headers=owner.headers
        )
        assert started.status_code == 202
        await JobsRuntime.settle_all()
    lines = log_lines()
    calls = [line for line in lines if line["event"] in ("ai_call", "ai_call_done")]
    assert [line["event"] for line in calls] == ["ai_call", "ai_call_done"]
    [done] = [line for line in lines if line["event"] == "job_done"]
    for line in (*calls, done):
        assert line["job"] == "ai.summarize_project"
        assert line["org_id"] == org
        assert line["trace_id"] == started.headers["x-trace-id"]  # the request's trace
        assert len(line["span_id"]) == 16
        assert line["job_id"] == done["job_id"]
    assert all(line["prompt_id"] == "project_summary@1" for line in calls)
    assert "prompt_id" not in done  # bound around the AI call only
