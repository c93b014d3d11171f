"""Tenancy + RBAC enforcement: one dependency, `authorize("resource:action")`, on every org route.

It resolves the caller's membership in the path's organization and checks the policy. The
membership is read from the primary, never a replica (reads may reuse a role cached from it
for at most `membership_cache_seconds`, see membership_cache.py).
Non-members get 404 (another tenant's organization does not visibly exist); members without
the grant get 403. Every denial is counted and logged with user, org, action and role.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from opentelemetry import trace
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.unit_of_work import SAFE_METHODS, UnitOfWork
from {{ cookiecutter.package_name }}.errors import NotFoundError, ProblemError
from {{ cookiecutter.package_name }}.observability.metrics import PERMISSION_DENIALS
from {{ cookiecutter.package_name }}.resources.orgs.model import Membership
from {{ cookiecutter.package_name }}.security.auth import current_principal
from {{ cookiecutter.package_name }}.security.membership_cache import MembershipCache
from {{ cookiecutter.package_name }}.security.rbac import Policy, RouteGuard
from {{ cookiecutter.package_name }}.security.tokens import Principal

log = structlog.get_logger(__name__)

RBAC_GUARD_ATTR = "__rbac_guard__"


@dataclass(frozen=True, slots=True)
class OrgAccess:
    """The caller's standing in the path's organization, after the policy allowed the action."""

    org_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    action: str
    # An ownership rule still to check against the object (e.g. "assignee_or_unassigned").
    condition: str | None = None


class ForbiddenError(ProblemError):
    """A member of the organization whose role does not allow the action."""

    def __init__(self, action: str, role: str) -> None:
        super().__init__(
            403,
            f"Your role '{role}' does not allow '{action}' in this organization.",
            type_="forbidden",
            action=action,
        )


def deny(access: OrgAccess, reason: str = "role") -> ForbiddenError:
    """Count, log and build the 403 for a denial (also used by ownership checks)."""
    PERMISSION_DENIALS.labels(access.action, access.role).inc()
    log.info(
        "permission_denied",
        user_id=str(access.user_id),
        org_id=str(access.org_id),
        action=access.action,
        role=access.role,
        reason=reason,
    )
    return ForbiddenError(access.action, access.role)


async def membership_role(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> str | None:
    """The user's role in the organization, or None for a non-member."""
    role: str | None = await session.scalar(
        select(Membership.role).where(Membership.org_id == org_id, Membership.user_id == user_id)
    )
    return role


async def _current_role(
    request: Request, org_id: uuid.UUID, user_id: uuid.UUID, *, write: bool
) -> str | None:
    """The role as the primary knows it: a lagging replica would stretch a revoked grant's
    life past the membership cache's bound, by however far it lags. A write reads it in its
    own transaction; a read opens a primary session only now, on a membership-cache miss."""
    if write:
        uow: UnitOfWork = request.state.uow
        return await membership_role(uow.session, org_id, user_id)
    db: Database = request.state.db
    async with db.reader(prefer_primary=True) as primary:
        return await membership_role(primary, org_id, user_id)


def authorize(action: str, *, enforces: Collection[str] = ()) -> Any:
    """`Depends` that yields an OrgAccess for `action` or refuses with 404/403.

    `enforces` names the ownership conditions (security/rbac.py) the route checks against the
    object; start-up refuses a policy condition on an action whose route does not check it."""
    guard = RouteGuard(action, frozenset(enforces))

    async def check(
        org_id: uuid.UUID, request: Request, principal: Principal = Depends(current_principal)
    ) -> OrgAccess:
        policy: Policy = request.state.policy
        # Every later log line and the request's span say whose request this is.
        structlog.contextvars.bind_contextvars(org_id=str(org_id), user_id=str(principal.user_id))
        span = trace.get_current_span()
        span.set_attribute("app.org_id", str(org_id))
        span.set_attribute("enduser.id", str(principal.user_id))
        cache: MembershipCache = request.state.memberships
        # Reads trust a role cached for a few seconds; writes always ask the primary.
        cacheable = request.method in SAFE_METHODS
        role = cache.get(org_id, principal.user_id) if cacheable else None
        if role is None:
            role = await _current_role(request, org_id, principal.user_id, write=not cacheable)
            if role is not None and cacheable:
                cache.put(org_id, principal.user_id, role)
        if role is None:
            PERMISSION_DENIALS.labels(action, "non-member").inc()
            log.info(
                "permission_denied",
                user_id=str(principal.user_id),
                org_id=str(org_id),
                action=action,
                role="non-member",
            )
            raise NotFoundError("Organization")
        access = OrgAccess(org_id, principal.user_id, role, action, policy.condition(role, action))
        if not policy.allows(role, action):
            raise deny(access)
        if access.condition is not None and access.condition not in guard.enforces:
            # Unreachable after the start-up check; fail closed should a policy slip past it.
            raise deny(access, reason="condition not enforced by this route")
        return access

    setattr(check, RBAC_GUARD_ATTR, guard)
    check.__name__ = f"authorize_{action.replace(':', '_').replace('.', '_')}"
    dependency: DependsParam = Depends(check)
    return dependency
