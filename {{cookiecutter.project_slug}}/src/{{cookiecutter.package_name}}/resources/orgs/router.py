"""Organizations and their members."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status

from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.dependencies import (
    CurrentPrincipal,
    MembershipsDep,
    PolicyDep,
    SessionDep,
    UnitOfWorkDep,
)
from {{ cookiecutter.package_name }}.errors import ConflictError, NotFoundError, ProblemError
from {{ cookiecutter.package_name }}.resources.orgs.repository import OrgRepository
from {{ cookiecutter.package_name }}.resources.orgs.schemas import (
    MemberAdd,
    MemberOut,
    MemberUpdate,
    OrgCreate,
    OrgOut,
    OrgUpdate,
)
from {{ cookiecutter.package_name }}.resources.users.repository import UserRepository
from {{ cookiecutter.package_name }}.security.membership_cache import MembershipCache
from {{ cookiecutter.package_name }}.security.rbac import Policy
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize, deny

router = APIRouter(prefix="/orgs", tags=["organizations"])


def _check_grant(policy: Policy, role: str, access: OrgAccess) -> None:
    """The policy's `grantable_by`: some roles only some roles may hand out or take away."""
    if not policy.may_grant(access.role, role):
        raise deny(
            access, reason=f"only {', '.join(sorted(policy.grantable_by[role]))} grant {role}"
        )


def _check_role(policy: Policy, role: str, access: OrgAccess) -> None:
    if role not in policy.roles:
        raise ProblemError(
            422, f"Unknown role '{role}'; one of: {', '.join(policy.roles)}.", type_="validation"
        )
    _check_grant(policy, role, access)


async def _keeps_an_owner(repo: OrgRepository, policy: Policy, org_id: uuid.UUID) -> None:
    """Refuse to take the owner role from the organization's last owner."""
    if await repo.lock_role_holders(org_id, policy.owner_role) <= 1:
        raise ConflictError(f"An organization must keep at least one {policy.owner_role}.")


def _forget_after_commit(
    uow: UnitOfWork, cache: MembershipCache, org_id: uuid.UUID, user_id: uuid.UUID | None = None
) -> None:
    """A role changed: stop trusting the cached one once the change is committed."""

    async def forget() -> None:
        cache.forget(org_id, user_id)

    uow.after_commit(forget)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_org(
    body: OrgCreate, principal: CurrentPrincipal, session: SessionDep, policy: PolicyDep
) -> OrgOut:
    """Create an organization; the caller becomes its owner (the policy's `owner_role`)."""
    org = await OrgRepository(session).create(body.name, principal.user_id, policy.owner_role)
    return OrgOut(id=org.id, name=org.name, role=policy.owner_role, created_at=org.created_at)


@router.get("")
async def list_my_orgs(principal: CurrentPrincipal, session: SessionDep) -> list[OrgOut]:
    """The organizations the caller belongs to."""
    rows = await OrgRepository(session).for_user(principal.user_id)
    return [OrgOut(id=o.id, name=o.name, role=role, created_at=o.created_at) for o, role in rows]


@router.get("/{org_id}")
async def get_org(
    access: Annotated[OrgAccess, authorize("orgs:read")], session: SessionDep
) -> OrgOut:
    """One organization."""
    org = await OrgRepository(session).get(access.org_id)
    if org is None:
        raise NotFoundError("Organization")
    return OrgOut(id=org.id, name=org.name, role=access.role, created_at=org.created_at)


@router.patch("/{org_id}")
async def update_org(
    body: OrgUpdate, access: Annotated[OrgAccess, authorize("orgs:update")], session: SessionDep
) -> OrgOut:
    """Rename the organization."""
    org = await OrgRepository(session).get(access.org_id)
    if org is None:
        raise NotFoundError("Organization")
    org.name = body.name
    await session.flush()
    return OrgOut(id=org.id, name=org.name, role=access.role, created_at=org.created_at)


@router.delete("/{org_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_org(
    access: Annotated[OrgAccess, authorize("orgs:delete")],
    session: SessionDep,
    uow: UnitOfWorkDep,
    memberships: MembershipsDep,
) -> Response:
    """Delete the organization and everything in it."""
    repo = OrgRepository(session)
    org = await repo.get(access.org_id)
    if org is None:
        raise NotFoundError("Organization")
    await repo.delete(org)
    _forget_after_commit(uow, memberships, access.org_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{org_id}/members")
async def list_members(
    access: Annotated[OrgAccess, authorize("members:list")], session: SessionDep
) -> list[MemberOut]:
    """Members of the organization (a bounded list: no pagination needed)."""
    rows = await OrgRepository(session).members(access.org_id)
    return [
        MemberOut(
            user_id=m.user_id,
            email=u.email,
            full_name=u.full_name,
            role=m.role,
            created_at=m.created_at,
        )
        for m, u in rows
    ]


@router.post("/{org_id}/members", status_code=status.HTTP_201_CREATED)
async def add_member(
    body: MemberAdd,
    access: Annotated[OrgAccess, authorize("members:create")],
    session: SessionDep,
    policy: PolicyDep,
    uow: UnitOfWorkDep,
    memberships: MembershipsDep,
) -> MemberOut:
    """Add a registered user to the organization with a role."""
    _check_role(policy, body.role, access)
    user = await UserRepository(session).by_email(body.email)
    if user is None:
        raise ProblemError(
            422, "No registered user has this email; ask them to sign up first.", type_="validation"
        )
    repo = OrgRepository(session)
    if await repo.membership(access.org_id, user.id) is not None:
        raise ConflictError("This user is already a member; change their role instead.")
    membership = await repo.add_member(access.org_id, user.id, body.role)
    _forget_after_commit(uow, memberships, access.org_id, user.id)
    return MemberOut(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=membership.role,
        created_at=membership.created_at,
    )


async def _existing_member(repo: OrgRepository, access: OrgAccess, user_id: uuid.UUID) -> str:
    membership = await repo.membership(access.org_id, user_id)
    if membership is None:
        raise NotFoundError("Member")
    return membership.role


@router.patch("/{org_id}/members/{user_id}")
async def update_member(
    user_id: uuid.UUID,
    body: MemberUpdate,
    access: Annotated[OrgAccess, authorize("members:update")],
    session: SessionDep,
    policy: PolicyDep,
    uow: UnitOfWorkDep,
    memberships: MembershipsDep,
) -> MemberOut:
    """Change a member's role; the last owner cannot be demoted."""
    _check_role(policy, body.role, access)
    repo = OrgRepository(session)
    current = await _existing_member(repo, access, user_id)
    _check_grant(policy, current, access)  # changing a role takes the current one away
    if current == policy.owner_role and body.role != policy.owner_role:
        await _keeps_an_owner(repo, policy, access.org_id)
    await repo.set_role(access.org_id, user_id, body.role)
    _forget_after_commit(uow, memberships, access.org_id, user_id)
    rows = {m.user_id: (m, u) for m, u in await repo.members(access.org_id)}
    membership, user = rows[user_id]
    return MemberOut(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=membership.role,
        created_at=membership.created_at,
    )


@router.delete("/{org_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(
    user_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("members:delete")],
    session: SessionDep,
    policy: PolicyDep,
    uow: UnitOfWorkDep,
    memberships: MembershipsDep,
) -> Response:
    """Remove a member; the last owner cannot be removed."""
    repo = OrgRepository(session)
    current = await _existing_member(repo, access, user_id)
    _check_grant(policy, current, access)
    if current == policy.owner_role:
        await _keeps_an_owner(repo, policy, access.org_id)
    await repo.remove_member(access.org_id, user_id)
    _forget_after_commit(uow, memberships, access.org_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
