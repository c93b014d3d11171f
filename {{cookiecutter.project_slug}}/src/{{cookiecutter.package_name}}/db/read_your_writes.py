"""Read-your-writes: after a client writes, its reads go to the primary for a short window.

The client carries the proof of its last write: a signed timestamp returned in the
`X-Consistency-Token` header and a cookie of the same value. Any API process can check it
without shared state; a forged or expired token simply reads from the replica.
"""

from __future__ import annotations

import hashlib
import time

from itsdangerous import BadSignature, Signer

COOKIE_NAME = "consistency_token"
HEADER_NAME = "x-consistency-token"
_CLOCK_SKEW_MS = 1000


class ConsistencyTokens:
    """Issue and check signed last-write timestamps."""

    def __init__(self, secret: str, window_seconds: float) -> None:
        self._signer = Signer(secret, salt="read-your-writes", digest_method=hashlib.sha256)
        self.window_seconds = window_seconds

    def issue(self, now: float | None = None) -> str:
        """A token saying "this client wrote at `now`"."""
        millis = int((time.time() if now is None else now) * 1000)
        return self._signer.sign(str(millis)).decode()

    def wants_primary(self, token: str | None, now: float | None = None) -> bool:
        """True while a valid token is younger than the window."""
        if not token or self.window_seconds <= 0:
            return False
        try:
            written_ms = int(self._signer.unsign(token))
        except (BadSignature, ValueError):
            return False
        age_ms = int((time.time() if now is None else now) * 1000) - written_ms
        return -_CLOCK_SKEW_MS <= age_ms < self.window_seconds * 1000

    def set_cookie_header(self, token: str) -> str:
        """The Set-Cookie value that carries the token for browser clients."""
        max_age = max(1, int(self.window_seconds))
        return f"{COOKIE_NAME}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax"
