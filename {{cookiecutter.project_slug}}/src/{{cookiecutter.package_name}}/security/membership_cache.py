"""Who is a member with which role, cached in process for reads (the RBAC hot path).

A GET must not pay a database round trip to authorise. Roles are cached per (org, user) for
at most `membership_cache_seconds` (a short, configured bound on trusting a stale grant).
Cached roles are read from the primary (tenancy.py), so a lagging replica cannot stretch that
bound. Changes made through this process drop the entry after commit; other processes see
them within the bound. Writes always read the membership from the primary, in their
transaction. Non-membership is never cached, so a new member is never locked out by it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from cachetools import TTLCache


class MembershipCache:
    """A bounded TTL map of (org_id, user_id) -> role."""

    def __init__(
        self,
        ttl_seconds: float,
        maxsize: int = 100_000,
        timer: Callable[[], float] = time.monotonic,  # replaceable: tests move time by hand
    ) -> None:
        self.enabled = ttl_seconds > 0
        self._roles: TTLCache[tuple[uuid.UUID, uuid.UUID], str] = TTLCache(
            maxsize=maxsize, ttl=max(ttl_seconds, 0.001), timer=timer
        )

    def get(self, org_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
        """The cached role, or None (unknown: ask the database)."""
        return self._roles.get((org_id, user_id)) if self.enabled else None

    def put(self, org_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
        """Remember a role read from the database."""
        if self.enabled:
            self._roles[(org_id, user_id)] = role

    def forget(self, org_id: uuid.UUID, user_id: uuid.UUID | None = None) -> None:
        """Drop one member's entry, or every entry of the organization."""
        if user_id is not None:
            self._roles.pop((org_id, user_id), None)
            return
        for key in [k for k in list(self._roles) if k[0] == org_id]:
            self._roles.pop(key, None)
