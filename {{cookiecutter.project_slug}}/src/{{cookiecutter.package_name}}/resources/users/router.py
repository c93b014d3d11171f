"""Registration, login (OAuth2 password flow) and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from {{ cookiecutter.package_name }}.dependencies import (
    CurrentPrincipal,
    PasswordsDep,
    SessionDep,
    SettingsDep,
    TokensDep,
)
from {{ cookiecutter.package_name }}.errors import ConflictError, NotFoundError, ProblemError
from {{ cookiecutter.package_name }}.resources.users.repository import UserRepository
from {{ cookiecutter.package_name }}.resources.users.schemas import TokenOut, UserCreate, UserOut
from {{ cookiecutter.package_name }}.schemas import normalise_email

router = APIRouter(tags=["auth"])


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: UserCreate, session: SessionDep, passwords: PasswordsDep, settings: SettingsDep
) -> UserOut:
    """Create an account. Emails are unique case-insensitively."""
    if len(body.password) < settings.password_min_length:
        raise ProblemError(
            422,
            f"The password must be at least {settings.password_min_length} characters long.",
            type_="validation",
        )
    users = UserRepository(session)
    if await users.by_email(body.email) is not None:
        raise ConflictError("An account with this email already exists.")
    user = await users.add(body.email, await passwords.hash(body.password), body.full_name)
    return UserOut.model_validate(user)


@router.post("/auth/token")
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    passwords: PasswordsDep,
    tokens: TokensDep,
) -> TokenOut:
    """OAuth2 password flow: `username` is the email address."""
    try:
        email = normalise_email(form.username)
    except ValueError:
        email = form.username
    user = await UserRepository(session).by_email(email)
    if not await passwords.verify(user.password_hash if user else None, form.password) or not user:
        raise ProblemError(
            401,
            "Incorrect email or password.",
            type_="invalid-credentials",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return TokenOut(access_token=tokens.mint(user.id), expires_in=tokens.ttl_seconds)


@router.get("/users/me")
async def me(principal: CurrentPrincipal, session: SessionDep) -> UserOut:
    """The authenticated user."""
    user = await UserRepository(session).get(principal.user_id)
    if user is None:
        raise NotFoundError("User")
    return UserOut.model_validate(user)
