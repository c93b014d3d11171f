"""JWT access tokens: HS256 signed with the service secret; issuer, audience and expiry checked."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import jwt

from {{ cookiecutter.package_name }}.db.base import utcnow
from {{ cookiecutter.package_name }}.settings import Settings

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30


class InvalidTokenError(Exception):
    """The token is malformed, expired, or not ours."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, as proven by the token (no database round trip)."""

    user_id: uuid.UUID


class Tokens:
    """Mint and verify access tokens."""

    def __init__(self, settings: Settings) -> None:
        self._key = settings.secret_key.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = timedelta(minutes=settings.access_token_minutes)
        self.ttl_seconds = int(self._ttl.total_seconds())

    def mint(self, user_id: uuid.UUID) -> str:
        """A signed access token for `user_id`."""
        now = utcnow()
        claims = {
            "sub": str(user_id),
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; InvalidTokenError otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp", "iat", "iss", "aud"]},
            )
            return Principal(user_id=uuid.UUID(claims["sub"]))
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidTokenError(str(exc)) from exc
