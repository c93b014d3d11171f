"""The policy file: inheritance resolved at load, malformed policies refused with the line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.security.rbac import PolicyError, load_policy
from {{ cookiecutter.package_name }}.settings import DEFAULT_POLICY_PATH

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
    ],
    ids=["unknown-action", "unknown-parent", "cycle", "unknown-role", "unknown-condition", "yaml"],
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
