"""Every organization route, called by every role, a non-member and an anonymous caller.

Generated from the app's route table and the policy: a new route is covered without a new test
(if it takes a body, add a sample to SAMPLE_BODIES). Expected statuses:
anonymous 401; non-member 404 (another tenant's org does not visibly exist); a member whose role
lacks the action 403; a member whose role has it 2xx. Ownership conditions of the policy are
exercised the same way: for every conditioned (role, action), each route of the action is called
on an object the condition refuses (403) and on ones it allows (2xx).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from {{ cookiecutter.package_name }}.app import api_routes, create_app, declared_actions
from {{ cookiecutter.package_name }}.security.rbac import ASSIGNEE_OR_UNASSIGNED, load_policy
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


FILES = "__files__"
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
    "POST /orgs/{org_id}/webhooks": lambda w: {"url": "http://127.0.0.1:9/hook"},
    # A multipart upload: the key names the form field, the value is the file.
    "POST /orgs/{org_id}/projects/{project_id}/imports": lambda w: {
        FILES: {"file": ("tasks.csv", b"external_key,title\nRM-CSV-1,From the matrix\n")}
    },
}
# Path parameters naming objects the world does not create: an allowed caller gets past
# authorisation and then finds nothing (404); what matters here is 401/403/404-as-outsider.
UNSEEDED = {"webhook_id", "export_id", "import_id", "summary_id", "letter_id"}


ROUTES = api_routes(APP)


def test_every_route_declares_an_action_of_the_policy() -> None:
    unguarded = set(ROUTES) - set(ROUTE_ACTIONS) - UNGUARDED
    assert not unguarded, f"routes without authorize(...): {sorted(unguarded)}"
    unknown = {k: a for k, a in ROUTE_ACTIONS.items() if a not in POLICY.actions}
    assert not unknown, f"routes declaring actions missing from policy/rbac.yaml: {unknown}"


def test_every_org_route_is_guarded() -> None:
    org_routes = {k for k in ROUTES if "{org_id}" in k}
    assert org_routes <= set(ROUTE_ACTIONS)


def test_every_policy_action_is_declared_by_a_route() -> None:
    # An action no route declares is a dead line of the policy: editing it changes nothing.
    dead = set(POLICY.actions) - set(ROUTE_ACTIONS.values())
    assert not dead, f"policy actions no route declares (use or drop them): {sorted(dead)}"


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


def _path(template: str, world: World, **overrides: str) -> str:
    values = {
        "org_id": world.org,
        "project_id": world.project,
        "task_id": world.task,
        "user_id": world.target.id,
        "external_key": "RM-1",
        **{name: str(uuid.uuid4()) for name in UNSEEDED},
        **overrides,
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            pytest.fail(f"add a value for the path parameter {name!r} to the route matrix")
        return values[name]

    return re.sub(r"\{(\w+)\}", fill, template)


def expected(action: str, caller: str, template: str) -> set[int]:
    if caller == "anonymous":
        return {401}
    if caller == "non-member":
        return {404}
    if not POLICY.allows(caller, action):
        return {403}
    allowed = {200, 201, 202, 204}
    if any("{" + name + "}" in template for name in UNSEEDED):
        allowed.add(404)
    return allowed


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
    files = body.pop(FILES) if body and FILES in body else None
    response = await client.request(
        method,
        _path(template, world),
        json=None if files else body,
        files=files,
        headers=headers,
    )
    assert response.status_code in expected(action, caller, template), (
        f"{caller} on {route_key} ({action}): {response.status_code} {response.text}"
    )


# --- Ownership conditions -------------------------------------------------------------------
CONDITIONED = sorted(
    (route_key, role)
    for route_key, action in ROUTE_ACTIONS.items()
    for role in POLICY.roles
    if POLICY.allows(role, action) and POLICY.condition(role, action) is not None
)


@pytest.mark.parametrize("holder", ["someone-else", "the-caller", "nobody"])
@pytest.mark.parametrize(("route_key", "role"), CONDITIONED)
async def test_ownership_conditions(
    api: Api,
    client: httpx.AsyncClient,
    world: World,
    route_key: str,
    role: str,
    holder: str,
) -> None:
    """A conditioned grant refuses the objects its condition excludes, and only those."""
    method, template = route_key.split(" ", 1)
    condition = POLICY.condition(role, ROUTE_ACTIONS[route_key])
    if condition != ASSIGNEE_OR_UNASSIGNED:
        pytest.fail(f"teach the route matrix to build objects for the condition {condition!r}")
    if "{task_id}" not in template and "{external_key}" not in template:
        pytest.fail(f"teach the route matrix which object {route_key} applies {condition} to")
    caller = world.users[role]
    assignee = {"someone-else": world.target.id, "the-caller": caller.id, "nobody": None}[holder]
    key = f"OWN-{uuid.uuid4().hex[:8]}"
    task = await api.task(
        world.org,
        world.users["owner"],
        {
            "project_id": world.project,
            "title": "Owned",
            "external_key": key,
            "assignee_id": assignee,
        },
    )
    body = SAMPLE_BODIES[route_key](world) if route_key in SAMPLE_BODIES else None
    response = await client.request(
        method,
        _path(template, world, task_id=task["id"], external_key=key),
        json=body,
        headers=caller.headers,
    )
    if holder == "someone-else":
        assert response.status_code == 403, f"{role} on {route_key}: {response.text}"
        still = await client.get(
            f"/orgs/{world.org}/tasks/{task['id']}", headers=world.users["owner"].headers
        )
        assert still.json() == task  # refused before anything changed
    else:
        assert response.status_code in {200, 201, 204}, f"{role} on {route_key}: {response.text}"


def test_the_policy_has_conditions_for_the_matrix_to_exercise() -> None:
    assert CONDITIONED, "no conditioned grant left: drop test_ownership_conditions knowingly"
