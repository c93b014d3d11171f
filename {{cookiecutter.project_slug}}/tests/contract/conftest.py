"""Contract tests: the service against recorded answers of the third-party HTTP APIs it calls.

Cassettes (vcrpy, through pytest-recording) live in `cassettes/<test module>/<test>.yaml`: one
per scenario, each the real HTTP exchanges of one test run. By default they are replayed and no
network is used (`--record-mode=none`); a request that matches no recorded one fails the test.
Requests match on method and path, plus a check per API (the pinned model and a bearer key for
the AI provider, the Standard Webhooks headers for receivers), so a change of what we send
shows up here.

Re-record with `make contract-record` (README, "Contract tests"): the tests then call
CONTRACT_AI_BASE_URL / CONTRACT_WEBHOOK_URL when set, else the local stand-ins of
stand_in.py, and the cassettes are rewritten with secrets and volatile headers removed.
Timeouts cannot be recorded: those tests use a local server that answers too late.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from vcr import VCR
from vcr.request import Request

from ..jobs.conftest import log_lines  # noqa: F401 - the fixture, for the Retry-After tests

# Headers kept in a cassette; everything else (keys, cookies, request ids...) is dropped.
KEPT_REQUEST_HEADERS = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")
KEPT_RESPONSE_HEADERS = ("content-type", "retry-after", "x-ratelimit-remaining-requests")
# The test client talks to the app in-process under this host: never taped.
UNTAPED_HOSTS = ["test"]


def recording(request: pytest.FixtureRequest) -> bool:
    """True when this run re-records cassettes (`--record-mode` other than none)."""
    return (request.config.getoption("--record-mode") or "none") != "none"


def _scrub_request(request: Request) -> Request:
    """Keep only KEPT_REQUEST_HEADERS, and the bearer scheme of a key without the key.

    vcrpy applies this to live requests too before matching, so matchers see the same shape."""
    bearer = str(request.headers.get("authorization", "")).startswith("Bearer ")
    request.headers = {
        k: v for k, v in request.headers.items() if k.lower() in KEPT_REQUEST_HEADERS
    }
    if bearer:
        request.headers["authorization"] = "Bearer [redacted]"
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {
        k: v for k, v in response["headers"].items() if k.lower() in KEPT_RESPONSE_HEADERS
    }
    return response


PINNED = ("model", "temperature", "max_tokens")


def same_ai_request(one: Request, other: Request) -> None:
    """A chat completion with the same pinned model and parameters, sent with a bearer key."""
    if not one.path.endswith("/chat/completions"):
        return
    assert all(r.headers.get("authorization") for r in (one, other)), "no API key sent"
    first, second = json.loads(one.body or b"{}"), json.loads(other.body or b"{}")
    assert [first.get(k) for k in PINNED] == [second.get(k) for k in PINNED], (
        "the pinned model or parameters changed: re-record the cassettes deliberately"
    )


SIGNATURE_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature"}


def same_webhook_request(one: Request, other: Request) -> None:
    """A signed Standard Webhooks delivery (both signed) of the same event type."""
    signed = [{k.lower() for k in r.headers} >= SIGNATURE_HEADERS for r in (one, other)]
    if not any(signed):
        return
    assert all(signed), "not signed per Standard Webhooks"
    assert json.loads(one.body or b"{}").get("type") == json.loads(other.body or b"{}").get("type")


def pytest_recording_configure(config: pytest.Config, vcr: VCR) -> None:
    """Register the per-API request checks (pytest-recording hook)."""
    vcr.register_matcher("same_ai_request", same_ai_request)
    vcr.register_matcher("same_webhook_request", same_webhook_request)


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """How cassettes are matched and what of an exchange is kept."""
    return {
        "match_on": ["method", "path", "same_ai_request", "same_webhook_request"],
        "ignore_hosts": UNTAPED_HOSTS,
        "before_record_request": _scrub_request,
        "before_record_response": _scrub_response,
        "decode_compressed_response": True,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """cassettes/<module name>/."""
    module = request.node.fspath.purebasename  # type: ignore[attr-defined]
    return os.path.join(os.path.dirname(__file__), "cassettes", module)
