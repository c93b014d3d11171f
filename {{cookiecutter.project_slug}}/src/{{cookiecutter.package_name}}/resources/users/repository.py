"""Persistence of users."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.db.base import new_id
from {{ cookiecutter.package_name }}.resources.users.model import User
from {{ cookiecutter.package_name }}.schemas import email_key


class UserRepository:
    """Queries on users; flushes, never commits (the unit of work does)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID) -> User | None:
        """The user with this id."""
        return await self.session.get(User, user_id)

    async def by_email(self, email: str) -> User | None:
        """The user with this email, compared case-insensitively."""
        return await self.session.scalar(select(User).where(User.email_key == email_key(email)))

    async def add(
        self,
        email: str,
        password_hash: str,
        full_name: str | None,
        *,
        user_id: uuid.UUID | None = None,
    ) -> User:
        """Insert a user; the unique email_key rejects a duplicate."""
        user = User(
            id=user_id or new_id(),
            email=email,
            email_key=email_key(email),
            password_hash=password_hash,
            full_name=full_name,
        )
        self.session.add(user)
        await self.session.flush()
        return user
