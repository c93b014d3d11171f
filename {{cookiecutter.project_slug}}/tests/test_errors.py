"""Every error leaves as RFC 9457 problem details; bad input never leaves a partial write."""

from __future__ import annotations

import httpx
import pytest

from .api import PASSWORD, Api

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/no/such/route"), 404)


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/health/live"), 405)


async def test_validation_error_lists_each_field(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    org = await api.org(owner)
    response = await client.post(
        f"/orgs/{org}/tasks",
        json={"project_id": "not-a-uuid", "title": "", "status": "someday"},
        headers=owner.headers,
    )
    body = assert_problem(response, 422)
    locations = {e["location"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert {"body.project_id", "body.title", "body.status"} <= locations


async def test_malformed_json_is_a_422_problem(api: Api, client: httpx.AsyncClient) -> None:
    owner = await api.user()
    response = await client.post(
        "/orgs", content=b'{"name": ', headers={**owner.headers, "content-type": "application/json"}
    )
    assert_problem(response, 422)


@pytest.mark.parametrize("path", ["/orgs/not-a-uuid", "/orgs/not-a-uuid/tasks"])
async def test_bad_path_parameter_is_a_422_problem(
    api: Api, client: httpx.AsyncClient, path: str
) -> None:
    owner = await api.user()
    assert_problem(await client.get(path, headers=owner.headers), 422)


@pytest.mark.parametrize("name", ["nul\x00byte", "lone \ud800 surrogate"])
async def test_text_a_database_cannot_store_is_a_422(
    api: Api, client: httpx.AsyncClient, name: str
) -> None:
    """Found by schemathesis: NUL and unpaired surrogates used to reach PostgreSQL (500)."""
    owner = await api.user()
    body = '{"name": "' + name.encode("unicode_escape").decode().replace("\\x00", "\\u0000") + '"}'
    response = await client.post(
        "/orgs",
        content=body.encode(),
        headers={**owner.headers, "content-type": "application/json"},
    )
    assert_problem(response, 422)


async def test_a_blank_title_is_a_422_not_a_constraint_error(
    api: Api, client: httpx.AsyncClient
) -> None:
    """Whitespace is stripped before the length is checked."""
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    response = await client.post(
        f"/orgs/{org}/tasks",
        json={"project_id": project["id"], "title": "   "},
        headers=owner.headers,
    )
    assert_problem(response, 422)


# 62 + 1 + 57 + 4 = 124 characters, all valid; case-folded, each "ΐ" becomes three characters,
# and the unique key (362 characters) no longer fits users.email_key (320).
LONG_WHEN_FOLDED = "ΐ" * 62 + "@" + "ΐ" * 57 + ".com"


async def test_an_email_too_long_once_case_folded_is_a_422(
    api: Api, client: httpx.AsyncClient
) -> None:
    register = await client.post(
        "/auth/register", json={"email": LONG_WHEN_FOLDED, "password": PASSWORD}
    )
    body = assert_problem(register, 422)
    assert "too long" in str(body["detail"])
    owner = await api.user()
    org = await api.org(owner)
    invite = await client.post(
        f"/orgs/{org}/members", json={"email": LONG_WHEN_FOLDED}, headers=owner.headers
    )
    assert_problem(invite, 422)
    login = await client.post("/auth/token", data={"username": LONG_WHEN_FOLDED, "password": "x"})
    assert_problem(login, 401)
