"""The user account."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, TimestampMixin


class User(IdMixin, TimestampMixin, Base):
    """A person who can log in; belongs to organizations through memberships."""

    __tablename__ = "users"

    # As entered, normalised by email-validator (NFC, lower-cased IDNA domain): for display.
    email: Mapped[str] = mapped_column(String(320))
    # Case-folded `email`: unique, so "Ana@x.io" and "ana@X.IO" are one account.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(200))
