"""Request and response bodies for users and login."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Form
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import Field

from {{ cookiecutter.package_name }}.schemas import EMAIL_MAX_LENGTH, Email, Schema, Text

PASSWORD_MAX_LENGTH = 1024  # argon2 hashes any length; a megabyte "password" only burns CPU


class UserCreate(Schema):
    """Registration form."""

    email: Email
    password: Annotated[Text, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
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


class LoginForm(OAuth2PasswordRequestForm):
    """The OAuth2 password form, with lengths capped: the username is an email address."""

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[str, Form(min_length=1, max_length=EMAIL_MAX_LENGTH)],
        password: Annotated[str, Form(min_length=1, max_length=PASSWORD_MAX_LENGTH)],
        scope: Annotated[str, Form(max_length=1000)] = "",
        client_id: Annotated[str | None, Form(max_length=200)] = None,
        client_secret: Annotated[str | None, Form(max_length=200)] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )
