"""Login throttling with `limits`: per account and per client address.

Counters live in Redis when REDIS_URL is set, so every API process shares them; otherwise, or
while Redis does not answer, in process memory. Losing Redis weakens the limit to one process's
view for a while; it never blocks logins or raises.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

log = structlog.get_logger(__name__)

REDIS_TIMEOUT_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the caller may try now, and if not, for how long to wait."""

    allowed: bool
    retry_after: int = 0


class LoginThrottle:
    """Moving-window limits on login attempts, keyed by account and by client address."""

    def __init__(self, per_account: str, per_address: str, redis_url: str | None) -> None:
        self.per_account: RateLimitItem = parse(per_account)
        self.per_address: RateLimitItem = parse(per_address)
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis: MovingWindowRateLimiter | None = None
        self._storage: Storage | None = None
        if redis_url:
            self._storage = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1)
                if redis_url.startswith("redis://")
                else redis_url,
                implementation="redispy",
                key_prefix="login",
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            self._redis = MovingWindowRateLimiter(self._storage)
        self._degraded = False

    async def _call(self, method: str, item: RateLimitItem, key: str) -> object:
        if self._redis is not None:
            try:
                result = await asyncio.wait_for(
                    getattr(self._redis, method)(item, key), REDIS_TIMEOUT_SECONDS
                )
                if self._degraded:
                    self._degraded = False
                    log.info("login_throttle_redis_recovered")
                return result
            except Exception as exc:  # any Redis fault: fall back, never fail the login
                if not self._degraded:
                    self._degraded = True
                    log.warning("login_throttle_redis_unavailable", error=type(exc).__name__)
        return await getattr(self._memory, method)(item, key)

    async def check(self, account: str, address: str) -> Verdict:
        """May this account, from this address, attempt a login now?"""
        waits = []
        for item, key in ((self.per_account, account), (self.per_address, address)):
            if not await self._call("test", item, key):
                stats = await self._call("get_window_stats", item, key)
                reset = float(getattr(stats, "reset_time", time.time() + item.get_expiry()))
                waits.append(max(1, math.ceil(reset - time.time())))
        return Verdict(allowed=not waits, retry_after=max(waits, default=0))

    async def record_attempt(self, address: str) -> None:
        """Count an attempt from this address."""
        await self._call("hit", self.per_address, address)

    async def record_failure(self, account: str) -> None:
        """Count a failed attempt on this account."""
        await self._call("hit", self.per_account, account)

    async def close(self) -> None:
        """Release the Redis connection, if any."""
        # limits keeps the redis-py client on its bridge and offers no close of its own.
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()
