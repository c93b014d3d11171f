"""Dead letters from the outside: owner-only API, and the `dlq` CLI."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.testing import CliRunner

from {{ cookiecutter.package_name }} import cli
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs import dead_letters
from {{ cookiecutter.package_name }}.jobs.outbox import OutboxMessage, OutboxStatus
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.observability.metrics import DEAD_LETTER_DEPTH
from {{ cookiecutter.package_name }}.settings import Settings, get_settings

from ..api import Api
from . import probe_jobs
from .conftest import eventually


async def _dead(settings: Settings, org_id: str | None, key: str) -> uuid.UUID:
    db = Database(settings)
    try:
        meta = {
            "org_id": org_id,
            "trace_context": {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        }
        return await dead_letters.record(db, "test.flaky", {"key": key}, meta, "HTTP 500: boom", 3)
    finally:
        await db.dispose()


async def test_owner_lists_and_replays_dead_letters_of_the_org(
    api: Api, job_settings: Settings, admin_engine: AsyncEngine
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    admin = await api.member(org, owner, "admin")
    other_owner = await api.user()
    other_org = await api.org(other_owner)
    key = uuid.uuid4().hex
    letter_id = await _dead(job_settings, org, key)
    await _dead(job_settings, other_org, uuid.uuid4().hex)

    listed = await api.client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()
    assert item["id"] == str(letter_id)
    assert item["args"] == {"key": key}
    assert item["attempts"] == 3
    assert item["trace_context"]["traceparent"].startswith("00-aaaa")

    denied = await api.client.get(f"/orgs/{org}/dead-letters", headers=admin.headers)
    assert denied.status_code == 403
    assert denied.json()["action"] == "dlq:list"
    foreign = await api.client.post(
        f"/orgs/{other_org}/dead-letters/{letter_id}/replay", headers=other_owner.headers
    )
    assert foreign.status_code == 404  # another org's dead letter does not visibly exist

    replayed = await api.client.post(
        f"/orgs/{org}/dead-letters/{letter_id}/replay", headers=owner.headers
    )
    assert replayed.status_code == 202, replayed.text
    outbox_id = uuid.UUID(replayed.json()["replay_outbox_id"])

    async def done() -> bool:
        async with AsyncSession(admin_engine) as session:
            row = await session.get(OutboxMessage, outbox_id)
            return row is not None and row.status == OutboxStatus.done

    await eventually(done)
    assert probe_jobs.ATTEMPTS[key] == 1
    again = await api.client.post(
        f"/orgs/{org}/dead-letters/{letter_id}/replay", headers=owner.headers
    )
    assert again.status_code == 409
    assert (await api.client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)).json() == []
    history = await api.client.get(
        f"/orgs/{org}/dead-letters", params={"include_replayed": "true"}, headers=owner.headers
    )
    assert [x["id"] for x in history.json()] == [str(letter_id)]

    everything = await api.client.post(
        f"/orgs/{other_org}/dead-letters/replay", headers=other_owner.headers
    )
    assert everything.json() == {"replayed": 1}


def test_cli_lists_and_replays(
    job_settings: Settings, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    key = uuid.uuid4().hex
    letter_id = asyncio.run(_dead(job_settings, None, key))
    monkeypatch.setenv("{{ cookiecutter.package_name|upper }}_DATABASE_URL", database_url)
    monkeypatch.setenv("{{ cookiecutter.package_name|upper }}_REDIS_URL", "")
    monkeypatch.setenv("REDIS_URL", "")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(cli.app, ["dlq", "list"])
        assert listed.exit_code == 0, listed.output
        assert str(letter_id) in listed.output
        assert "test.flaky" in listed.output
        assert "HTTP 500: boom" in listed.output

        assert runner.invoke(cli.app, ["dlq", "replay"]).exit_code == 2  # neither id nor --all
        assert runner.invoke(cli.app, ["dlq", "replay", "nope"]).exit_code == 1
        one = runner.invoke(cli.app, ["dlq", "replay", str(letter_id)])
        assert one.exit_code == 0, one.output
        assert "replayed 1" in one.output
        rest = runner.invoke(cli.app, ["dlq", "replay", "--all"])
        assert "replayed 0" in rest.output
        assert "pending" not in runner.invoke(cli.app, ["dlq", "list", "--all"]).output
    finally:
        get_settings.cache_clear()


async def test_the_depth_gauge_is_counted_in_the_database_never_below_zero(
    api: Api, job_settings: Settings, runtime: JobsRuntime
) -> None:
    """An API process replays letters a worker recorded: its gauge must not go to -1."""
    owner = await api.user()
    org = await api.org(owner)
    letter_id = await _dead(job_settings, org, uuid.uuid4().hex)
    await _dead(job_settings, org, uuid.uuid4().hex)
    DEAD_LETTER_DEPTH.set(0)  # a fresh API process: it recorded none of them
    replayed = await api.client.post(
        f"/orgs/{org}/dead-letters/{letter_id}/replay", headers=owner.headers
    )
    assert replayed.status_code == 202
    assert DEAD_LETTER_DEPTH._value.get() == 0  # not moved by the replay
    await runtime.relay.housekeeping()  # the worker's cron (or the in-process poller)
    assert DEAD_LETTER_DEPTH._value.get() == 1  # what the table holds: one not replayed
