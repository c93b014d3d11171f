"""Who is calling: the bearer token, verified without touching the database."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from {{ cookiecutter.package_name }}.errors import ProblemError
from {{ cookiecutter.package_name }}.security.tokens import InvalidTokenError, Principal, Tokens

# auto_error=False: a missing token becomes our problem-details 401, not FastAPI's default.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


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
        return await tokens.verify_async(token)
    except InvalidTokenError:
        raise NotAuthenticatedError(
            "The access token is invalid or expired; log in again."
        ) from None
