"""Registration, login (OAuth2 password flow) and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

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
from {{ cookiecutter.package_name }}.resources.users.schemas import LoginForm, TokenOut, UserCreate, UserOut
from {{ cookiecutter.package_name }}.schemas import email_key, normalise_email, storable_text
from {{ cookiecutter.package_name }}.security.passwords import password_problem

router = APIRouter(tags=["auth"])


class IdentityProviderOnlyError(ProblemError):
    """RS256 without a private key: accounts and tokens come from the identity provider."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, detail, type_="identity-provider-only")


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: UserCreate,
    session: SessionDep,
    passwords: PasswordsDep,
    settings: SettingsDep,
    tokens: TokensDep,
) -> UserOut:
    """Create an account. Emails are unique case-insensitively."""
    if not tokens.can_mint:
        raise IdentityProviderOnlyError(
            "Accounts come from the identity provider: sign in there; your first request with "
            "its token creates your account here."
        )
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
    responses={429: {"description": "Too many failed attempts; see Retry-After."}},
)
async def login(
    request: Request,
    form: Annotated[LoginForm, Depends()],
    session: SessionDep,
    passwords: PasswordsDep,
    tokens: TokensDep,
    throttle: ThrottleDep,
) -> TokenOut:
    """OAuth2 password flow: `username` is the email address.

    Failed attempts are limited per account and per client address (behind a proxy, uvicorn
    takes the client address from X-Forwarded-For when FORWARDED_ALLOW_IPS trusts the proxy)."""
    if not tokens.can_mint:
        raise IdentityProviderOnlyError(
            "Local login is disabled; sign in with the identity provider."
        )
    try:
        email: str | None = normalise_email(storable_text(form.username))
    except ValueError:
        email = None  # not an address we could have registered: no lookup, same 401
    account = email_key(email or form.username)
    address = request.client.host if request.client else "unknown"
    # The slots are taken before the (slow) password check, so concurrent guesses cannot all
    # slip through while the first ones are still being verified.
    attempt = await throttle.begin(account, address)
    if not attempt.allowed:
        raise ProblemError(
            429,
            f"Too many failed login attempts; try again in {attempt.retry_after} seconds.",
            type_="rate-limited",
            headers={"Retry-After": str(attempt.retry_after)},
        )
    user = await UserRepository(session).by_email(email) if email else None
    if not await passwords.verify(user.password_hash if user else None, form.password) or not user:
        raise ProblemError(
            401,
            "Incorrect email or password.",
            type_="invalid-credentials",
            headers={"WWW-Authenticate": "Bearer"},
        )
    await throttle.succeeded(attempt)
    return TokenOut(access_token=tokens.mint(user.id), expires_in=tokens.ttl_seconds)


@router.get("/users/me")
async def me(principal: CurrentPrincipal, session: SessionDep) -> UserOut:
    """The authenticated user."""
    user = await UserRepository(session).get(principal.user_id)
    if user is None:
        raise NotFoundError("User")
    return UserOut.model_validate(user)
