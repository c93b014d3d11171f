"""Contract of the OpenAI-compatible chat-completions client, on recorded provider answers.

Each test runs the real flow (POST .../summary -> outbox -> in-process job -> provider) against
its cassette and checks the retry, dead-letter and error semantics: success stored with its
provenance; 429 retried no sooner than its Retry-After; 5xx retried, then dead-lettered; a
malformed body retried; a 400 dead-lettered at once. Timeouts cannot be recorded: that test
uses a local server that answers after the client's timeout.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from vcr.cassette import Cassette

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.jobs.ai.prompts import load_prompt
from {{ cookiecutter.package_name }}.settings import DEFAULT_PROMPTS_DIR

from ..api import Api, User
from ..conftest import FLAGS_ON, make_settings, running
from ..jobs.conftest import LogLines
from ..jobs.summaries import project_with_tasks, summary
from . import stand_in
from .conftest import recording

# Where replayed requests "go" (never reached: the cassette answers); matching ignores the host.
REPLAY_URL = "https://api.openai.com/v1"
KEY = os.environ.get("CONTRACT_AI_API_KEY", "sk-test-not-a-real-key")  # pragma: allowlist secret
# Scenarios a hosted provider produces on request; the others are recorded from the stand-in.
REAL_SCENARIOS = {"success", "bad_request"}


@pytest.fixture
def provider_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The provider's base URL: the replay URL, or, when re-recording, CONTRACT_AI_BASE_URL
    (for scenarios it can produce) or a stand-in playing the test's `script`."""
    script: list[str] = getattr(request.function, "script", ["success"])
    real = os.environ.get("CONTRACT_AI_BASE_URL")
    if not recording(request):
        yield REPLAY_URL
    elif real and set(script) <= REAL_SCENARIOS:
        yield real
    else:
        with stand_in.serve() as server:
            server.script, server.default = script[:-1], script[-1]
            yield server.url


def script(*answers: str) -> Any:
    """What the stand-in answers, in order (the last one forever), when re-recording."""

    def mark(fn: Any) -> Any:
        fn.script = list(answers)
        return fn

    return mark


@dataclass
class Outcome:
    """A summary's final state, and how to look further (dead letters) while the app runs."""

    summary: dict[str, Any]
    client: httpx.AsyncClient
    owner: User
    org: str

    async def dead_letters(self) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/orgs/{self.org}/dead-letters", headers=self.owner.headers
        )
        letters: list[dict[str, Any]] = response.json()
        return letters


@asynccontextmanager
async def summarized(database_url: str, base_url: str, **overrides: Any) -> AsyncIterator[Outcome]:
    """Run the app against `base_url`, request a summary and wait for its outcome."""
    settings = make_settings(
        database_url,
        ai_provider="openai",
        ai_base_url=base_url,
        ai_api_key=KEY,
        job_max_tries=3,
        flags_file=FLAGS_ON,
        **overrides,
    )
    async with running(create_app(settings)) as client:
        owner, org, project = await project_with_tasks(Api(client))
        yield Outcome(await summary(client, owner, org, project), client, owner, org)


def _answer(cassette: Cassette, index: int) -> dict[str, Any]:
    """The recorded response body of interaction `index`, as JSON."""
    parsed: dict[str, Any] = json.loads(cassette.responses[index]["body"]["string"])
    return parsed


@pytest.mark.vcr
@script("success")
async def test_success_is_stored_with_its_provenance(
    database_url: str, provider_url: str, vcr: Cassette
) -> None:
    async with summarized(database_url, provider_url) as outcome:
        result = outcome.summary
        assert await outcome.dead_letters() == []
    answer = _answer(vcr, 0)
    assert result["status"] == "done", result
    assert result["result"] == answer["choices"][0]["message"]["content"]
    assert result["model"] == answer["model"]  # as the provider reported it
    assert (result["provider"], result["prompt_id"]) == ("openai", "project_summary@1")
    assert vcr.play_count == 1 or recording_run(vcr)
    prompt = load_prompt(DEFAULT_PROMPTS_DIR, "project_summary")
    sent = json.loads(vcr.requests[0].body)
    assert sent["model"] == prompt.model_version  # the pinned version, not an alias
    assert {k: sent[k] for k in prompt.params} == prompt.params


@pytest.mark.vcr
@script("rate_limited", "success")
async def test_a_429_is_retried_no_sooner_than_its_retry_after(
    database_url: str, provider_url: str, vcr: Cassette, log_lines: LogLines
) -> None:
    # A retry cap above the provider's Retry-After, so the wait it asked for is honoured.
    async with summarized(database_url, provider_url, job_retry_max_seconds=5.0) as outcome:
        assert outcome.summary["status"] == "done", outcome.summary
        assert await outcome.dead_letters() == []
    retry_after = float(vcr.responses[0]["headers"]["retry-after"][0])
    assert vcr.responses[0]["status"]["code"] == 429
    [retry] = [line for line in log_lines() if line["event"] == "job_retry"]
    assert "HTTP 429" in retry["error"]
    assert retry["retry_in_s"] >= retry_after
    assert vcr.play_count == 2 or recording_run(vcr)


@pytest.mark.vcr
@script("server_error")
async def test_5xx_is_retried_up_to_max_tries_then_dead_lettered(
    database_url: str, provider_url: str, vcr: Cassette
) -> None:
    async with summarized(database_url, provider_url) as outcome:
        [letter] = await outcome.dead_letters()
    assert outcome.summary["status"] == "failed"
    assert "HTTP 500" in outcome.summary["error"]
    assert (letter["job_name"], letter["attempts"]) == ("ai.summarize_project", 3)
    assert len(vcr) == 3
    assert vcr.all_played or recording_run(vcr)


@pytest.mark.vcr
@script("malformed", "success")
async def test_a_malformed_answer_is_retried(
    database_url: str, provider_url: str, vcr: Cassette
) -> None:
    async with summarized(database_url, provider_url) as outcome:
        assert outcome.summary["status"] == "done", outcome.summary
        assert await outcome.dead_letters() == []
    with pytest.raises(json.JSONDecodeError):
        _answer(vcr, 0)  # the recording really is truncated
    assert vcr.play_count == 2 or recording_run(vcr)


@pytest.mark.vcr
@script("bad_request")
async def test_a_400_is_dead_lettered_at_once(
    database_url: str, provider_url: str, vcr: Cassette
) -> None:
    async with summarized(database_url, provider_url) as outcome:
        [letter] = await outcome.dead_letters()
    assert outcome.summary["status"] == "failed"
    assert "HTTP 400" in outcome.summary["error"]
    assert letter["attempts"] == 1
    assert _answer(vcr, 0)["error"]["type"] == "invalid_request_error"
    assert vcr.play_count == 1 or recording_run(vcr)


async def test_a_provider_slower_than_the_timeout_is_retried_then_dead_lettered(
    database_url: str,
) -> None:
    with stand_in.serve() as slow:
        slow.delay = 1.0  # answers, but after ai_timeout_seconds
        async with summarized(database_url, slow.url, ai_timeout_seconds=0.2) as outcome:
            [letter] = await outcome.dead_letters()
        assert len(slow.received) == 3
    assert outcome.summary["status"] == "failed"
    assert "ReadTimeout" in outcome.summary["error"]
    assert letter["attempts"] == 3


def recording_run(cassette: Cassette) -> bool:
    """A recording run writes the cassette instead of playing it."""
    return cassette.record_mode != "none"
