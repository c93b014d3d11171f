"""Organizations and memberships: the tenancy boundary."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, TimestampMixin, utcnow
from {{ cookiecutter.package_name }}.resources.users.model import User


class Organization(IdMixin, TimestampMixin, Base):
    """A tenant: every resource row carries its organization's id."""

    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200))


class Membership(Base):
    """A user's role in an organization; the role names come from policy/rbac.yaml."""

    __tablename__ = "memberships"

    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(lazy="raise")
    organization: Mapped[Organization] = relationship(lazy="raise")
