"""Request and response bodies for organizations and members."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from {{ cookiecutter.package_name }}.schemas import Email, Name, Schema, Text

Role = Annotated[Text, Field(min_length=1, max_length=50, examples=["member"])]


class OrgCreate(Schema):
    """A new organization; the caller becomes its owner."""

    name: Name


class OrgUpdate(Schema):
    """Rename an organization."""

    name: Name


class OrgOut(Schema):
    """An organization and the caller's role in it."""

    id: uuid.UUID
    name: str
    role: str
    created_at: datetime


class MemberAdd(Schema):
    """Add a registered user to the organization."""

    email: Email
    role: Role = "member"


class MemberUpdate(Schema):
    """Change a member's role."""

    role: Role


class MemberOut(Schema):
    """A member of the organization."""

    user_id: uuid.UUID
    email: str
    full_name: str | None
    role: str
    created_at: datetime
