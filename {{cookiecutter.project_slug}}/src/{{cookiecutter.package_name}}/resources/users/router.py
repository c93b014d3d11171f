"""Registration, login (OAuth2 password flow) and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from {{ cookiecutter.package_name }}.dependencies import (
    CurrentPrincipal,
    PasswordsDep,
    SessionDep,
    SettingsDep,
    ThrottleDep,
    TokensDep,
)
from {{ cookiecutter.package_name }}.errors import ConflictError, NotFoundError, ProblemError
from {{ cookiecutter.package_name }}.resources.users.repository import UserRepository
from {{ cookiecutter.package_name }}.resources.users.schemas import TokenOut, UserCreate, UserOut
from {{ cookiecutter.package_name }}.schemas import email_key, normalise_email
from {{ cookiecutter.package_name }}.security.passwords import password_problem

router = APIRouter(tags=["auth"])


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: UserCreate, session: SessionDep, passwords: PasswordsDep, settings: SettingsDep
) -> UserOut:
    """Create an account. Emails are unique case-insensitively."""
    problem = password_problem(body.password, body.email, settings.password_min_length)
    if problem:
        raise ProblemError(422, problem, type_="weak-password")
    users = UserRepository(session)
    if await users.by_email(body.email) is not None:
        raise ConflictError("An account with this email already exists.")
    user = await users.add(body.email, await passwords.hash(body.password), body.full_name)
    return UserOut.model_validate(user)


@router.post(
    "/auth/token",
    responses={429: {"description": "Too many attempts; see Retry-After."}},
)
async def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    passwords: PasswordsDep,
    tokens: TokensDep,
    throttle: ThrottleDep,
) -> TokenOut:
    """OAuth2 password flow: `username` is the email address. Throttled per account and address."""
    if not tokens.can_mint:
        raise ProblemError(
            403, "Local login is disabled; sign in with the identity provider.", type_="forbidden"
        )
    try:
        email = normalise_email(form.username)
    except ValueError:
        email = form.username
    account = email_key(email)
    address = request.client.host if request.client else "unknown"
    verdict = await throttle.check(account, address)
    if not verdict.allowed:
        raise ProblemError(
            429,
            f"Too many login attempts; try again in {verdict.retry_after} seconds.",
            type_="rate-limited",
            headers={"Retry-After": str(verdict.retry_after)},
        )
    await throttle.record_attempt(address)
    user = await UserRepository(session).by_email(email)
    if not await passwords.verify(user.password_hash if user else None, form.password) or not user:
        await throttle.record_failure(account)
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
