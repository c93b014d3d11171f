"""Persistence of organizations and memberships."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.resources.orgs.model import Membership, Organization
from {{ cookiecutter.package_name }}.resources.users.model import User

OWNER = "owner"


class OrgRepository:
    """Queries on organizations and their members; flushes, never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str, owner_id: uuid.UUID) -> Organization:
        """A new organization with `owner_id` as its owner."""
        org = Organization(name=name)
        self.session.add(org)
        await self.session.flush()
        self.session.add(Membership(org_id=org.id, user_id=owner_id, role=OWNER))
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

    async def owner_count(self, org_id: uuid.UUID) -> int:
        """How many owners the organization has (small: a handful of rows per org)."""
        count = await self.session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.org_id == org_id, Membership.role == OWNER)
        )
        return int(count or 0)

    async def delete(self, org: Organization) -> None:
        """Delete the organization; its rows go with it (ON DELETE CASCADE)."""
        await self.session.delete(org)
        await self.session.flush()
