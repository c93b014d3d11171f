"""Every denial is counted (by action and role) and logged with user, org and action."""

from __future__ import annotations

import logging

import httpx
import pytest

from {{ cookiecutter.package_name }}.observability.metrics import PERMISSION_DENIALS

from ..api import Api


def _count(action: str, role: str) -> float:
    return PERMISSION_DENIALS.labels(action, role)._value.get()


async def test_a_denial_is_counted_and_logged(
    api: Api, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    viewer = await api.member(org, owner, "viewer")
    outsider = await api.user()
    before_viewer = _count("projects:create", "viewer")
    before_outsider = _count("projects:read", "non-member")
    with caplog.at_level(logging.INFO, logger="{{ cookiecutter.package_name }}.security.tenancy"):
        denied = await client.post(
            f"/orgs/{org}/projects", json={"name": "x"}, headers=viewer.headers
        )
        hidden = await client.get(f"/orgs/{org}/projects/{org}", headers=outsider.headers)
    assert denied.status_code == 403
    assert hidden.status_code == 404
    assert _count("projects:create", "viewer") == before_viewer + 1
    assert _count("projects:read", "non-member") == before_outsider + 1
    events = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    assert {
        "event": "permission_denied",
        "user_id": viewer.id,
        "org_id": org,
        "action": "projects:create",
        "role": "viewer",
    }.items() <= events[0].items()
    assert events[1]["user_id"] == outsider.id
    assert events[1]["role"] == "non-member"
