"""Every organization route, called by every role, a non-member and an anonymous caller.

Generated from the app's route table and the policy: a new route is covered without a new test
(if it takes a body, add a sample to SAMPLE_BODIES). Expected statuses:
anonymous 401; non-member 404 (another tenant's org does not visibly exist); a member whose role
lacks the action 403; a member whose role has it 2xx.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from {{ cookiecutter.package_name }}.app import api_routes, create_app, declared_actions
from {{ cookiecutter.package_name }}.security.rbac import load_policy
from {{ cookiecutter.package_name }}.settings import DEFAULT_POLICY_PATH

from ..api import Api, User
from ..conftest import make_settings

POLICY = load_policy(DEFAULT_POLICY_PATH)
APP = create_app(make_settings("sqlite+aiosqlite://"))  # routes only; nothing is opened
ROUTE_ACTIONS = declared_actions(APP)
CALLERS = (*POLICY.roles, "non-member", "anonymous")
# Routes anyone may call, or any authenticated user: everything else must declare an action.
UNGUARDED = {
    "GET /health/live",
    "GET /health/ready",
    "POST /auth/register",
    "POST /auth/token",
    "GET /users/me",
    "POST /orgs",
    "GET /orgs",
}


@dataclass
class World:
    """One organization with a user per role, a spare registered user, a project and a task."""

    org: str
    users: dict[str, User]
    outsider: User
    invitee: User
    target: User
    project: str
    task: str


SAMPLE_BODIES: dict[str, Callable[[World], dict[str, Any]]] = {
    "PATCH /orgs/{org_id}": lambda w: {"name": "Renamed"},
    "POST /orgs/{org_id}/members": lambda w: {"email": w.invitee.email, "role": "viewer"},
    "PATCH /orgs/{org_id}/members/{user_id}": lambda w: {"role": "viewer"},
    "POST /orgs/{org_id}/projects": lambda w: {"name": "New project"},
    "PATCH /orgs/{org_id}/projects/{project_id}": lambda w: {"description": "changed"},
    "POST /orgs/{org_id}/tasks": lambda w: {"project_id": w.project, "title": "New"},
    "PATCH /orgs/{org_id}/tasks/{task_id}": lambda w: {"status": "done"},
    "PUT /orgs/{org_id}/tasks/by-key/{external_key}": lambda w: {
        "project_id": w.project,
        "title": "By key",
    },
}


ROUTES = api_routes(APP)


def test_every_route_declares_an_action_of_the_policy() -> None:
    unguarded = set(ROUTES) - set(ROUTE_ACTIONS) - UNGUARDED
    assert not unguarded, f"routes without authorize(...): {sorted(unguarded)}"
    unknown = {k: a for k, a in ROUTE_ACTIONS.items() if a not in POLICY.actions}
    assert not unknown, f"routes declaring actions missing from policy/rbac.yaml: {unknown}"


def test_every_org_route_is_guarded() -> None:
    org_routes = {k for k in ROUTES if "{org_id}" in k}
    assert org_routes <= set(ROUTE_ACTIONS)


@pytest.fixture
async def world(api: Api) -> World:
    owner = await api.user()
    org = await api.org(owner)
    users = {"owner": owner}
    for role in POLICY.roles:
        if role != "owner":
            users[role] = await api.member(org, owner, role)
    project = await api.project(org, owner)
    task = await api.task(org, owner, {"project_id": project["id"], "title": "Unassigned"})
    return World(
        org=org,
        users=users,
        outsider=await api.user(),
        invitee=await api.user(),
        target=await api.member(org, owner, "member"),
        project=project["id"],
        task=task["id"],
    )


def _path(template: str, world: World) -> str:
    values = {
        "org_id": world.org,
        "project_id": world.project,
        "task_id": world.task,
        "user_id": world.target.id,
        "external_key": "RM-1",
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            pytest.fail(f"add a value for the path parameter {name!r} to the route matrix")
        return values[name]

    return re.sub(r"\{(\w+)\}", fill, template)


def expected(action: str, caller: str) -> set[int]:
    if caller == "anonymous":
        return {401}
    if caller == "non-member":
        return {404}
    if not POLICY.allows(caller, action):
        return {403}
    return {200, 201, 204}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route_key", sorted(ROUTE_ACTIONS))
async def test_route_matrix(
    client: httpx.AsyncClient, world: World, route_key: str, caller: str
) -> None:
    method, template = route_key.split(" ", 1)
    action = ROUTE_ACTIONS[route_key]
    route = ROUTES[route_key]
    body: dict[str, Any] | None = None
    if route.body_field is not None:
        if route_key not in SAMPLE_BODIES:
            pytest.fail(f"add a sample body for {route_key} to SAMPLE_BODIES")
        body = SAMPLE_BODIES[route_key](world)
    headers: dict[str, str] = {}
    if caller == "non-member":
        headers = world.outsider.headers
    elif caller != "anonymous":
        headers = world.users[caller].headers
    response = await client.request(method, _path(template, world), json=body, headers=headers)
    assert response.status_code in expected(action, caller), (
        f"{caller} on {route_key} ({action}): {response.status_code} {response.text}"
    )
