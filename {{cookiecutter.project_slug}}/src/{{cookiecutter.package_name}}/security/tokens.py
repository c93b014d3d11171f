"""JWT access tokens: issuer, audience and expiry always checked, with a clock-skew leeway.

- HS256 (default, dev): minted and verified with the service secret.
- RS256 (production identity providers): verified with a configured public key or the keys of
  a JWKS URL (fetched and cached by PyJWT); minted here only when a private key is configured.
  Without one, the tokens are the identity provider's: their `sub` is its subject, not one of
  our user ids, and security/auth.py finds or creates the local user on first use.

Only the configured algorithm is accepted, so an HS256 token signed with a public key (the
classic algorithm-confusion attack) is refused.

A client sends the same token with every request, and PyJWT spends about 40 us verifying it
(a third of a cached GET's budget), so a verified token is remembered for at most
`VERIFIED_SECONDS`, and never past its own expiry.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio.to_thread
import jwt
from cachetools import TTLCache

from {{ cookiecutter.package_name }}.db.base import utcnow
from {{ cookiecutter.package_name }}.settings import Settings


class InvalidTokenError(Exception):
    """The token is malformed, expired, or not ours."""


class MintingDisabledError(Exception):
    """RS256 without a private key: tokens come from the identity provider, not from here."""


# Local user ids of identity-provider subjects are uuid5(this, "issuer|sub"): the same person
# always maps to the same id, with no mapping table (a fixed, arbitrary namespace).
IDP_USER_NAMESPACE = uuid.UUID("6f1d3a52-8d0b-4c47-9a4e-2b7f3c1e9d85")
MAX_SUBJECT_LENGTH = 255
# Verified tokens kept per process (a few hundred bytes each), and for how long at most: a
# JWKS key the identity provider withdraws stops being trusted within that bound.
VERIFIED_TOKENS = 4096
VERIFIED_SECONDS = 60


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who the identity provider's token says the caller is."""

    subject: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, as proven by the token (no database round trip).

    For identity-provider tokens `identity` is set and `user_id` is the id derived from the
    subject; `current_principal` swaps in the local user's id before a route sees it."""

    user_id: uuid.UUID
    identity: ExternalIdentity | None = None


class Tokens:
    """Mint and verify access tokens."""

    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._ttl = timedelta(minutes=settings.access_token_minutes)
        self.ttl_seconds = int(self._ttl.total_seconds())
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        # token -> (principal, expiry as a Unix time, leeway included)
        self._verified: TTLCache[str, tuple[Principal, float]] = TTLCache(
            maxsize=VERIFIED_TOKENS, ttl=VERIFIED_SECONDS
        )
        self._signing_key: Any
        self._verify_key: Any
        if self.algorithm == "HS256":
            self._signing_key = self._verify_key = settings.secret_key.get_secret_value()
        else:
            private = settings.jwt_private_key
            self._signing_key = private.get_secret_value() if private else None
            self._verify_key = settings.jwt_public_key

    @property
    def can_mint(self) -> bool:
        """False when an external identity provider issues the tokens."""
        return self._signing_key is not None

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject = claims["sub"]
        if self.can_mint:  # our own token: the subject is a user id
            return Principal(user_id=uuid.UUID(str(subject)))
        if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_LENGTH:
            raise InvalidTokenError("the token's subject is not a usable identifier")
        email, name = claims.get("email"), claims.get("name")
        return Principal(
            user_id=uuid.uuid5(IDP_USER_NAMESPACE, f"{self._issuer}|{subject}"),
            identity=ExternalIdentity(
                subject=subject,
                email=email if isinstance(email, str) else None,
                email_verified=claims.get("email_verified") is True,
                name=name if isinstance(name, str) else None,
            ),
        )

    def mint(self, user_id: uuid.UUID) -> str:
        """A signed access token for `user_id`."""
        if self._signing_key is None:
            raise MintingDisabledError
        now = utcnow()
        claims = {
            "sub": str(user_id),
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm)

    def _remembered(self, token: str) -> Principal | None:
        """The principal of a token verified lately, while the token has not expired."""
        found = self._verified.get(token)
        if found is None:
            return None
        principal, expires = found
        if time.time() < expires:
            return principal
        self._verified.pop(token, None)
        return None

    def _decode(self, token: str, key: Any) -> Principal:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["sub", "exp", "iat", "iss", "aud"]},
            )
            principal = self._principal(claims)
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidTokenError(str(exc)) from exc
        self._verified[token] = (principal, float(claims["exp"]) + self._leeway)
        return principal

    def verify(self, token: str) -> Principal:
        """The principal of a valid token (local key); InvalidTokenError otherwise."""
        if self._jwks is not None and self._verify_key is None:
            raise InvalidTokenError("JWKS verification is asynchronous; use verify_async")
        return self._remembered(token) or self._decode(token, self._verify_key)

    async def verify_async(self, token: str) -> Principal:
        """As `verify`, fetching the signing key from the JWKS URL when one is configured."""
        if self._jwks is None or self._verify_key is not None:
            return self.verify(token)
        remembered = self._remembered(token)
        if remembered is not None:
            return remembered
        jwks = self._jwks
        try:
            signing_key = await anyio.to_thread.run_sync(jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        return self._decode(token, signing_key.key)
