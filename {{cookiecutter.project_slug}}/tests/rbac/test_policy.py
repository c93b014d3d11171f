"""The policy file: inheritance resolved at load, malformed policies refused with the line, and
conditions that no route would enforce refused at start-up."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager

from {{ cookiecutter.package_name }}.app import create_app, declared_guards
from {{ cookiecutter.package_name }}.security.rbac import PolicyError, RouteGuard, check_routes, load_policy
from {{ cookiecutter.package_name }}.settings import DEFAULT_POLICY_PATH

from ..conftest import make_settings

APP = create_app(make_settings("sqlite+aiosqlite://"))  # routes only; nothing is opened

GOOD = """\
version: 1
roles:
  viewer: {}
  member:
    inherits: [viewer]
  admin:
    inherits: [member]
actions:
  tasks: [read, update, delete]
grants:
  viewer: [tasks:read]
  member: [tasks:update]
  admin: [tasks:delete]
conditions:
  member:
    tasks:update: assignee_or_unassigned
owner_role: admin
grantable_by:
  admin: [admin]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rbac.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_inheritance_is_resolved(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.allowed["admin"] == {"tasks:read", "tasks:update", "tasks:delete"}
    assert policy.allowed["viewer"] == {"tasks:read"}


def test_conditions_are_inherited_until_a_role_holds_the_grant_itself(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.condition("member", "tasks:update") == "assignee_or_unassigned"
    # admin inherits member's tasks:update and so its condition: it was not granted directly.
    assert policy.condition("admin", "tasks:update") == "assignee_or_unassigned"
    granted = GOOD.replace("admin: [tasks:delete]", "admin: [tasks:delete, tasks:update]")
    assert load_policy(write(tmp_path, granted)).condition("admin", "tasks:update") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("member: [tasks:update]", "member: [tasks:fly]"),
            r"rbac.yaml:12: unknown action 'tasks:fly'",
        ),
        (
            ("inherits: [viewer]", "inherits: [ghost]"),
            r"rbac.yaml:5: role member inherits unknown role 'ghost'",
        ),
        (
            ("  viewer: {}", "  viewer:\n    inherits: [admin]"),
            r"inheritance cycle: viewer -> admin -> member -> viewer",
        ),
        (
            ("  admin: [tasks:delete]", "  emperor: [tasks:delete]"),
            r"rbac.yaml:13: grants for unknown role 'emperor'",
        ),
        (
            ("tasks:update: assignee_or_unassigned", "tasks:update: full_moon"),
            r"rbac.yaml:16: unknown condition",
        ),
        (("version: 1\n", "version: 1\n: [\n"), r"not valid YAML"),
        (("owner_role: admin", "owner_role: emperor"), r"rbac.yaml:17: owner_role must name"),
        (("owner_role: admin\n", ""), r"missing section 'owner_role'"),
        (("  admin: [admin]", "  admin: [ghost]"), r"rbac.yaml:19: grantable_by names unknown"),
    ],
    ids=[
        "unknown-action",
        "unknown-parent",
        "cycle",
        "unknown-role",
        "unknown-condition",
        "yaml",
        "unknown-owner-role",
        "no-owner-role",
        "unknown-granter",
    ],
)
def test_a_malformed_policy_names_the_bad_line(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(PolicyError, match=message):
        load_policy(write(tmp_path, GOOD.replace(old, new)))


def test_the_shipped_policy_loads() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert policy.roles == ("viewer", "member", "admin", "owner")
    assert policy.owner_role == "owner"
    assert policy.may_grant("owner", "owner")
    assert not policy.may_grant("admin", "owner")
    assert policy.may_grant("admin", "member")


def _narrow_projects_update(tmp_path: Path) -> Path:
    """The shipped policy, with a condition on an action whose routes check no ownership."""
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    marker = "conditions:\n"
    assert marker in text
    text = text.replace(marker, marker + "  admin:\n    projects:update: assignee_or_unassigned\n")
    path = tmp_path / "rbac.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_condition_no_route_enforces_is_refused(tmp_path: Path) -> None:
    policy = load_policy(_narrow_projects_update(tmp_path))
    with pytest.raises(PolicyError) as refused:
        check_routes(policy, declared_guards(APP))
    message = str(refused.value)
    assert "rbac.yaml:" in message
    assert "admin's projects:update is narrowed by 'assignee_or_unassigned'" in message
    assert "PATCH /orgs/{org_id}/projects/{project_id} does not enforce it" in message


async def test_the_service_refuses_to_start_with_such_a_condition(tmp_path: Path) -> None:
    app = create_app(
        make_settings("sqlite+aiosqlite://", rbac_policy_path=_narrow_projects_update(tmp_path))
    )
    with pytest.raises(PolicyError, match="does not enforce it"):
        async with LifespanManager(app):
            pass


def test_the_shipped_routes_enforce_every_condition_of_the_shipped_policy() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert policy.conditions  # otherwise this test proves nothing
    check_routes(policy, declared_guards(APP))


def test_routes_may_only_declare_known_actions_and_conditions() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    guards = {
        "GET /x": RouteGuard("tasks:fly"),
        "PATCH /y": RouteGuard("tasks:update", frozenset({"full_moon"})),
    }
    with pytest.raises(PolicyError) as refused:
        check_routes(policy, guards)
    assert "GET /x declares 'tasks:fly'" in str(refused.value)
    assert "PATCH /y enforces unknown condition 'full_moon'" in str(refused.value)
