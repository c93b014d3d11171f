"""The RBAC policy (policy/rbac.yaml): loaded and checked once at start-up, queried per request.

A malformed policy stops the service with a message that names the file and line, because a
policy that half-loads is a security bug. So does a policy that narrows an action with an
ownership condition that one of the action's routes does not enforce (`check_routes`): such a
condition would fail open. Lookups are set membership: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Ownership rules a policy may attach to a (role, action) grant. A route checks them with the
# object in hand and says so: `authorize("tasks:update", enforces={ASSIGNEE_OR_UNASSIGNED})`
# (see resources/tasks/router.py).
ASSIGNEE_OR_UNASSIGNED = "assignee_or_unassigned"
CONDITIONS = frozenset({ASSIGNEE_OR_UNASSIGNED})


class PolicyError(ValueError):
    """The policy file is malformed; the message names the line."""


@dataclass(frozen=True, slots=True)
class RouteGuard:
    """What a route declares: the action it performs and the ownership conditions it checks."""

    action: str
    enforces: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policy:
    """Resolved roles x actions: `allowed[role]` is every action the role may perform."""

    roles: tuple[str, ...]
    actions: tuple[str, ...]
    allowed: Mapping[str, frozenset[str]]
    conditions: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # Where each condition is written ("policy/rbac.yaml:67"), for start-up errors.
    condition_sources: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # The role an organization's creator gets; an organization always keeps one member with it.
    owner_role: str = "owner"
    # Roles that only the listed roles may grant, change or take away.
    grantable_by: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, role: str, action: str) -> bool:
        """May `role` perform `action` at all (conditions aside)?"""
        return action in self.allowed.get(role, frozenset())

    def condition(self, role: str, action: str) -> str | None:
        """The ownership rule that narrows `role`'s grant of `action`, if any."""
        return self.conditions.get((role, action))

    def may_grant(self, granter: str, role: str) -> bool:
        """May a member with role `granter` give `role` to someone, or take it away?"""
        return granter in self.grantable_by.get(role, frozenset(self.roles))

    def matrix(self) -> dict[str, dict[str, str]]:
        """`{action: {role: "allow" | "deny" | "allow if <condition>"}}` in policy order."""
        table: dict[str, dict[str, str]] = {}
        for action in self.actions:
            row: dict[str, str] = {}
            for role in self.roles:
                if not self.allows(role, action):
                    row[role] = "deny"
                elif cond := self.condition(role, action):
                    row[role] = f"allow if {cond}"
                else:
                    row[role] = "allow"
            table[action] = row
        return table


class _Source:
    """Keeps the YAML nodes so that errors can point at a line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(root, yaml.MappingNode):
            raise PolicyError(f"{path}:1: the policy must be a mapping")
        self.root = root

    def fail(self, node: yaml.Node, message: str) -> PolicyError:
        return PolicyError(f"{self.path}:{node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "null", "~"):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        pairs: list[tuple[yaml.ScalarNode, yaml.Node]] = []
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"{what}: keys must be plain names")
            pairs.append((key, value))
        return pairs

    def names(self, node: yaml.Node, what: str) -> list[yaml.ScalarNode]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        items: list[yaml.ScalarNode] = []
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode) or not item.value:
                raise self.fail(item, f"{what}: each entry must be a name")
            items.append(item)
        return items

    def section(self, name: str) -> yaml.Node:
        for key, value in self.mapping(self.root, "the policy"):
            if key.value == name:
                return value
        raise PolicyError(f"{self.path}: missing section {name!r}")


def _resolve(role: str, parents: Mapping[str, list[str]], stack: tuple[str, ...]) -> list[str]:
    """`role` and every role it inherits from, depth first; raises on a cycle."""
    if role in stack:
        cycle = " -> ".join((*stack[stack.index(role) :], role))
        raise ValueError(f"inheritance cycle: {cycle}")
    order = [role]
    for parent in parents[role]:
        order += [r for r in _resolve(parent, parents, (*stack, role)) if r not in order]
    return order


def _actions(src: _Source) -> list[str]:
    actions: list[str] = []
    for resource, verbs in src.mapping(src.section("actions"), "actions"):
        for verb in src.names(verbs, f"actions of {resource.value}"):
            actions.append(f"{resource.value}:{verb.value}")
    return actions


def _roles(src: _Source) -> tuple[dict[str, list[str]], dict[str, yaml.Node]]:
    """Each role's direct parents, and its node (for error lines)."""
    specs = src.mapping(src.section("roles"), "roles")
    parents: dict[str, list[str]] = {}
    nodes: dict[str, yaml.Node] = {}
    for name_node, spec in specs:
        nodes[name_node.value] = name_node
        parents[name_node.value] = []
        for key, value in src.mapping(spec, f"role {name_node.value}"):
            if key.value != "inherits":
                raise src.fail(key, f"role {name_node.value}: unknown key {key.value!r}")
            parents[name_node.value] = [n.value for n in src.names(value, "inherits")]
    for name_node, spec in specs:
        for _key, value in src.mapping(spec, f"role {name_node.value}"):
            for parent in src.names(value, "inherits"):
                if parent.value not in parents:
                    raise src.fail(
                        parent, f"role {name_node.value} inherits unknown role {parent.value!r}"
                    )
    return parents, nodes


def _grants(src: _Source, roles: Mapping[str, object], actions: list[str]) -> dict[str, set[str]]:
    direct: dict[str, set[str]] = {role: set() for role in roles}
    for role_node, granted in src.mapping(src.section("grants"), "grants"):
        if role_node.value not in roles:
            raise src.fail(role_node, f"grants for unknown role {role_node.value!r}")
        for action in src.names(granted, f"grants of {role_node.value}"):
            if action.value not in actions:
                raise src.fail(
                    action, f"unknown action {action.value!r} (declare it under actions)"
                )
            direct[role_node.value].add(action.value)
    return direct


def _own_conditions(
    src: _Source, allowed: Mapping[str, frozenset[str]]
) -> dict[tuple[str, str], tuple[str, str]]:
    """`{(role, action): (condition, "file:line")}` as written, before inheritance."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    section = _optional(src, "conditions")
    if section is None:
        return found
    for role_node, rules in src.mapping(section, "conditions"):
        role = role_node.value
        if role not in allowed:
            raise src.fail(role_node, f"conditions for unknown role {role!r}")
        for action_node, rule in src.mapping(rules, f"conditions of {role}"):
            if action_node.value not in allowed[role]:
                raise src.fail(
                    action_node, f"{role} has no grant of {action_node.value!r} to narrow"
                )
            if not isinstance(rule, yaml.ScalarNode) or rule.value not in CONDITIONS:
                known = ", ".join(sorted(CONDITIONS))
                raise src.fail(rule, f"unknown condition; known: {known}")
            found[(role, action_node.value)] = (
                rule.value,
                f"{src.path}:{rule.start_mark.line + 1}",
            )
    return found


def _optional(src: _Source, name: str) -> yaml.Node | None:
    return next((v for k, v in src.mapping(src.root, "the policy") if k.value == name), None)


def _owner_role(src: _Source, roles: Collection[str]) -> str:
    """The `owner_role:` line: the routes rely on it, so it must name a declared role."""
    node = src.section("owner_role")
    if not isinstance(node, yaml.ScalarNode) or node.value not in roles:
        raise src.fail(node, f"owner_role must name one of the roles: {', '.join(roles)}")
    return str(node.value)


def _grantable_by(src: _Source, roles: Collection[str]) -> dict[str, frozenset[str]]:
    """`grantable_by: {role: [granting roles]}`; roles not listed may be granted by any
    member allowed to manage members."""
    node = _optional(src, "grantable_by")
    rules: dict[str, frozenset[str]] = {}
    if node is None:
        return rules
    for role_node, granters in src.mapping(node, "grantable_by"):
        if role_node.value not in roles:
            raise src.fail(role_node, f"grantable_by names unknown role {role_node.value!r}")
        names = src.names(granters, f"grantable_by of {role_node.value}")
        for granter in names:
            if granter.value not in roles:
                raise src.fail(granter, f"grantable_by names unknown role {granter.value!r}")
        rules[role_node.value] = frozenset(n.value for n in names)
    return rules


def load_policy(path: Path) -> Policy:
    """Parse, validate and resolve the policy file."""
    src = _Source(path)
    actions = _actions(src)
    parents, nodes = _roles(src)
    direct = _grants(src, parents, actions)

    allowed: dict[str, frozenset[str]] = {}
    lineage: dict[str, list[str]] = {}
    for role in parents:
        try:
            lineage[role] = _resolve(role, parents, ())
        except ValueError as exc:
            raise src.fail(nodes[role], str(exc)) from None
        allowed[role] = frozenset().union(*(direct[r] for r in lineage[role]))

    own = _own_conditions(src, allowed)
    # A role takes the nearest ancestor's condition, unless a nearer one holds the plain grant.
    conditions: dict[tuple[str, str], str] = {}
    sources: dict[tuple[str, str], str] = {}
    for role, ancestry in lineage.items():
        for action in allowed[role]:
            for ancestor in ancestry:
                if (ancestor, action) in own:
                    conditions[(role, action)], sources[(role, action)] = own[(ancestor, action)]
                    break
                if action in direct[ancestor]:
                    break

    return Policy(
        roles=tuple(parents),
        actions=tuple(actions),
        allowed=allowed,
        conditions=conditions,
        condition_sources=sources,
        owner_role=_owner_role(src, parents),
        grantable_by=_grantable_by(src, parents),
    )


def check_routes(policy: Policy, guards: Mapping[str, RouteGuard]) -> None:
    """Refuse routes and policy that do not fit together (`guards`: {"METHOD /path": guard}).

    Every declared action must exist, and every route of an action that the policy narrows
    with a condition must enforce that condition: otherwise the condition would load, show in
    the matrix, and silently not apply."""
    problems: list[str] = []
    for route, guard in sorted(guards.items()):
        if guard.action not in policy.actions:
            problems.append(f"{route} declares {guard.action!r}, which the policy does not have")
        for unknown in sorted(guard.enforces - CONDITIONS):
            problems.append(f"{route} enforces unknown condition {unknown!r}")
    for (role, action), condition in sorted(policy.conditions.items()):
        for route, guard in sorted(guards.items()):
            if guard.action == action and condition not in guard.enforces:
                problems.append(
                    f"{policy.condition_sources.get((role, action), 'policy')}: {role}'s "
                    f"{action} is narrowed by {condition!r}, but {route} does not enforce it "
                    f"(declare authorize({action!r}, enforces=[{condition!r}]) and check it)"
                )
    if problems:
        raise PolicyError("routes and policy disagree:\n  " + "\n  ".join(dict.fromkeys(problems)))


def policy_as_dict(policy: Policy) -> dict[str, Any]:
    """The resolved matrix and the organization rules as plain data (JSON, snapshots)."""
    return {
        "roles": list(policy.roles),
        "matrix": policy.matrix(),
        "owner_role": policy.owner_role,
        "grantable_by": {role: sorted(by) for role, by in policy.grantable_by.items()},
    }


def render_markdown(policy: Policy) -> str:
    """The roles x actions table as Markdown, one row per action, in policy order."""
    matrix = policy.matrix()
    lines = [
        "| action | " + " | ".join(policy.roles) + " |",
        "|---|" + "---|" * len(policy.roles),
    ]
    for action, row in matrix.items():
        cells = [
            "✅"
            if v == "allow"
            else "❌"
            if v == "deny"
            else f"✅ if {v.removeprefix('allow if ')}"
            for v in (row[role] for role in policy.roles)
        ]
        lines.append(f"| `{action}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"An organization's creator becomes `{policy.owner_role}`; "
        "every organization keeps at least one.",
    ]
    for role, by in policy.grantable_by.items():
        granters = ", ".join(f"`{g}`" for g in policy.roles if g in by)
        lines.append(f"Only {granters} may grant, change or revoke `{role}`.")
    return "\n".join(lines) + "\n"


def render_json(policy: Policy) -> str:
    """The resolved matrix as stable, indented JSON."""
    return json.dumps(policy_as_dict(policy), indent=2, ensure_ascii=False) + "\n"
