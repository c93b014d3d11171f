"""Who is calling: the bearer token, verified without touching the database.

With an identity provider's tokens (RS256, no private key here), the caller's local user is
found, or created on first use, before any route sees the principal: the user whose id derives
from the token's subject; else an account registered here earlier with the same email, if the
provider has verified it; else a new user with the token's email.
"""

from __future__ import annotations

import uuid

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.exc import IntegrityError

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.errors import ConflictError, ProblemError
from {{ cookiecutter.package_name }}.resources.users.repository import UserRepository
from {{ cookiecutter.package_name }}.schemas import normalise_email, storable_text
from {{ cookiecutter.package_name }}.security.tokens import (
    ExternalIdentity,
    InvalidTokenError,
    Principal,
    Tokens,
)

# auto_error=False: a missing token becomes our problem-details 401, not FastAPI's default.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)

# The password hash of users the identity provider created: argon2 verifies no password
# against it, so they have no local login.
NO_LOCAL_PASSWORD = "!identity-provider"  # noqa: S105 - a marker, not a password
FULL_NAME_MAX_LENGTH = 200


class NotAuthenticatedError(ProblemError):
    """No token, or a token that is not valid."""

    def __init__(
        self, detail: str = "Log in to get an access token, then send it as a Bearer token."
    ) -> None:
        super().__init__(
            401, detail, type_="unauthenticated", headers={"WWW-Authenticate": "Bearer"}
        )


async def current_principal(
    request: Request, token: str | None = Depends(oauth2_scheme)
) -> Principal:
    """The caller proven by the Authorization header; 401 otherwise."""
    if not token:
        raise NotAuthenticatedError()
    tokens: Tokens = request.state.tokens
    try:
        principal = await tokens.verify_async(token)
    except InvalidTokenError:
        raise NotAuthenticatedError(
            "The access token is invalid or expired; log in again."
        ) from None
    if principal.identity is None:
        return principal
    db: Database = request.state.db
    return Principal(user_id=await _local_user_id(db, principal.user_id, principal.identity))


def _email_claim(identity: ExternalIdentity) -> str:
    try:
        return normalise_email(storable_text(identity.email or ""))
    except ValueError:
        raise ProblemError(
            403,
            "The identity provider's token has no valid `email` claim; configure the provider "
            "to include it (the email scope).",
            type_="identity-provider-claims",
        ) from None


def _full_name(identity: ExternalIdentity) -> str | None:
    name = (identity.name or "").strip()[:FULL_NAME_MAX_LENGTH]
    try:
        return storable_text(name) or None
    except ValueError:
        return None


async def _local_user_id(
    db: Database, derived_id: uuid.UUID, identity: ExternalIdentity, *, retry: bool = True
) -> uuid.UUID:
    """The local user of an identity-provider caller, linked or created on first use.

    Always on the primary and in its own transaction: the user must exist before the request's
    own writes (an organization's membership) refer to it, even on a GET."""
    async with db.writer() as session:
        users = UserRepository(session)
        if (user := await users.get(derived_id)) is not None:
            return user.id
        email = _email_claim(identity)
        existing = await users.by_email(email)
        if existing is not None:
            if existing.id == derived_id:  # created a moment ago by a concurrent first request
                return existing.id
            # Link only a password account registered here, and only on the provider's word
            # that the address is the caller's: an unverified claim would take it over.
            if identity.email_verified and existing.password_hash != NO_LOCAL_PASSWORD:
                return existing.id
            raise ConflictError(
                "An account with this email exists here; sign in with a provider account "
                "whose email is verified, or ask an administrator to link them."
            )
        try:
            created = await users.add(
                email, NO_LOCAL_PASSWORD, _full_name(identity), user_id=derived_id
            )
            await session.commit()
        except IntegrityError:
            # A concurrent first request of the same caller (or a registration of the same
            # email) won the race: look again, once.
            await session.rollback()
            if not retry:
                raise
        else:
            return created.id
    return await _local_user_id(db, derived_id, identity, retry=False)
