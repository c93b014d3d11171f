"""Contract with webhook receivers, on recorded receiver answers.

The real flow (a task write -> outbox -> in-process job -> signed POST) against each cassette:
2xx is delivered; 429 is retried no sooner than its Retry-After; 5xx is retried up to the max
tries, then dead-lettered; another 4xx (410 Gone) is dead-lettered at once. A receiver too slow
to answer cannot be recorded: tests/jobs/test_webhooks.py covers it with a local slow receiver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from vcr.cassette import Cassette

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime

from ..api import Api
from ..conftest import make_settings, running
from ..jobs.conftest import LogLines
from . import stand_in
from .conftest import recording
from .test_ai_provider import recording_run, script

REPLAY_URL = "https://receiver.example/hooks"


@pytest.fixture
def receiver_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The receiver: the replay URL, or, when re-recording, CONTRACT_WEBHOOK_URL (for the
    success case) or a stand-in playing the test's `script`."""
    answers: list[str] = getattr(request.function, "script", ["accepted"])
    real = os.environ.get("CONTRACT_WEBHOOK_URL")
    if not recording(request):
        yield REPLAY_URL
    elif real and answers == ["accepted"]:
        yield real
    else:
        with stand_in.serve("/hooks") as server:
            server.script, server.default = answers[:-1], answers[-1]
            yield server.url


async def _deliver(database_url: str, url: str, **overrides: Any) -> list[dict[str, Any]]:
    """Register `url`, create a task, let its delivery finish; returns the dead letters."""
    settings = make_settings(database_url, job_max_tries=3, **overrides)
    async with running(create_app(settings)) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        project = await api.project(org, owner)
        await api.webhook(org, owner, url, ["task.created"])
        await api.task(org, owner, {"project_id": project["id"], "title": "Contract ✓"})
        await JobsRuntime.settle_all()  # the delivery and all its retries
        response = await client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)
    letters: list[dict[str, Any]] = response.json()
    return letters


@pytest.mark.vcr
@script("accepted")
async def test_a_2xx_is_delivered_once(database_url: str, receiver_url: str, vcr: Cassette) -> None:
    assert await _deliver(database_url, receiver_url) == []
    assert 200 <= vcr.responses[0]["status"]["code"] < 300
    assert vcr.play_count == 1 or recording_run(vcr)


@pytest.mark.vcr
@script("receiver_busy", "accepted")
async def test_a_429_is_retried_no_sooner_than_its_retry_after(
    database_url: str, receiver_url: str, vcr: Cassette, log_lines: LogLines
) -> None:
    assert await _deliver(database_url, receiver_url, job_retry_max_seconds=5.0) == []
    retry_after = float(vcr.responses[0]["headers"]["retry-after"][0])
    [retry] = [line for line in log_lines() if line["event"] == "job_retry"]
    assert "HTTP 429" in retry["error"]
    assert retry["retry_in_s"] >= retry_after
    assert vcr.play_count == 2 or recording_run(vcr)


@pytest.mark.vcr
@script("receiver_error")
async def test_5xx_is_retried_up_to_max_tries_then_dead_lettered(
    database_url: str, receiver_url: str, vcr: Cassette
) -> None:
    [letter] = await _deliver(database_url, receiver_url)
    assert (letter["job_name"], letter["attempts"]) == ("webhooks.deliver", 3)
    assert "HTTP 500" in letter["last_error"]
    assert len(vcr) == 3
    assert vcr.all_played or recording_run(vcr)


@pytest.mark.vcr
@script("receiver_gone")
async def test_another_4xx_is_dead_lettered_at_once(
    database_url: str, receiver_url: str, vcr: Cassette
) -> None:
    [letter] = await _deliver(database_url, receiver_url)
    assert letter["attempts"] == 1
    assert "HTTP 410" in letter["last_error"]
    assert vcr.play_count == 1 or recording_run(vcr)
