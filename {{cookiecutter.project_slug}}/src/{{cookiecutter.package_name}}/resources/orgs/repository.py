"""Persistence of organizations and memberships."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.resources.orgs.model import Membership, Organization
from {{ cookiecutter.package_name }}.resources.users.model import User


class OrgRepository:
    """Queries on organizations and their members; flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str, owner_id: uuid.UUID, owner_role: str) -> Organization:
        """A new organization with `owner_id` as its member of role `owner_role`."""
        org = Organization(name=name)
        self.session.add(org)
        await self.session.flush()
        self.session.add(Membership(org_id=org.id, user_id=owner_id, role=owner_role))
        await self.session.flush()
        return org

    async def get(self, org_id: uuid.UUID) -> Organization | None:
        """The organization with this id."""
        return await self.session.get(Organization, org_id)

    async def for_user(self, user_id: uuid.UUID) -> list[tuple[Organization, str]]:
        """Every organization the user belongs to, with the user's role, oldest first."""
        rows = await self.session.execute(
            select(Organization, Membership.role)
            .join(Membership, Membership.org_id == Organization.id)
            .where(Membership.user_id == user_id)
            .order_by(Organization.created_at, Organization.id)
        )
        return [(org, role) for org, role in rows]

    async def members(self, org_id: uuid.UUID) -> list[tuple[Membership, User]]:
        """Members with their user rows, in one query."""
        rows = await self.session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.org_id == org_id)
            .order_by(Membership.created_at, Membership.user_id)
        )
        return [(membership, user) for membership, user in rows]

    async def membership(self, org_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
        """One membership."""
        return await self.session.get(Membership, (org_id, user_id))

    async def add_member(self, org_id: uuid.UUID, user_id: uuid.UUID, role: str) -> Membership:
        """Insert a membership."""
        membership = Membership(org_id=org_id, user_id=user_id, role=role)
        self.session.add(membership)
        await self.session.flush()
        return membership

    async def set_role(self, org_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
        """Change a member's role."""
        await self.session.execute(
            update(Membership)
            .where(Membership.org_id == org_id, Membership.user_id == user_id)
            .values(role=role)
        )

    async def remove_member(self, org_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Delete a membership."""
        await self.session.execute(
            delete(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
        )

    async def lock_role_holders(self, org_id: uuid.UUID, role: str) -> int:
        """Lock the memberships with `role` until the transaction ends, and count them.

        Two owners demoting each other at once would otherwise both count two owners and
        leave none: the second now waits, and counts again once the first has committed.
        (SQLite has no row locks; it runs one writer at a time anyway.)"""
        rows = await self.session.scalars(
            select(Membership.user_id)
            .where(Membership.org_id == org_id, Membership.role == role)
            .order_by(Membership.user_id)  # one lock order: concurrent callers cannot deadlock
            .with_for_update()
        )
        return len(rows.all())

    async def delete(self, org: Organization) -> None:
        """Delete the organization; its rows go with it (ON DELETE CASCADE)."""
        await self.session.delete(org)
        await self.session.flush()
