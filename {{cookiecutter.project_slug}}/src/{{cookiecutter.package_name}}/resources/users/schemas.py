"""Request and response bodies for users and login."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from {{ cookiecutter.package_name }}.schemas import Email, Schema, Text


class UserCreate(Schema):
    """Registration form."""

    email: Email
    password: Annotated[Text, Field(min_length=1, max_length=1024)]
    full_name: Annotated[Text | None, Field(max_length=200)] = None


class UserOut(Schema):
    """A user as the API shows it (never the password hash)."""

    id: uuid.UUID
    email: str
    full_name: str | None
    created_at: datetime


class TokenOut(Schema):
    """OAuth2 token response."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
