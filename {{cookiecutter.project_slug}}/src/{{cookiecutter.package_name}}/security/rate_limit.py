"""Login throttling with `limits`: failed attempts per account and per client address.

Every attempt takes a slot in both counters *before* the password is checked (one atomic
INCR each) and gives it back once the password proves right. So a burst of concurrent guesses
never gets more than the limit past the check, and only failures use up the budget: a whole
office behind one address can still log in all morning. Each counter is a fixed window that
starts with its first failure ("10 per 15 minutes"), so at worst twice the limit fits around a
window's end.

Counters live in Redis when REDIS_URL is set, so every API process shares them; otherwise, or
while Redis does not answer, in process memory. Losing Redis weakens the limit to one process's
view for a while; it never blocks logins or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage

log = structlog.get_logger(__name__)

REDIS_TIMEOUT_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Attempt:
    """One login attempt's verdict, and the slots it holds until it succeeds."""

    allowed: bool
    retry_after: int = 0
    held: tuple[tuple[Storage, str, int], ...] = ()


class LoginThrottle:
    """Limits on failed logins, keyed by account and by client address."""

    def __init__(self, per_account: str, per_address: str, redis_url: str | None) -> None:
        self.per_account: RateLimitItem = parse(per_account)
        self.per_address: RateLimitItem = parse(per_address)
        self._memory: Storage = MemoryStorage()
        self._redis: Storage | None = None
        if redis_url:
            self._redis = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1)
                if redis_url.startswith("redis://")
                else redis_url,
                implementation="redispy",
                key_prefix="login",
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
        self._degraded = False

    async def _incr(self, key: str, expiry: int, amount: int) -> tuple[Storage, int]:
        """INCRBY on Redis, or on process memory when Redis fails; which storage counted it."""
        if self._redis is not None:
            try:
                count = await asyncio.wait_for(
                    self._redis.incr(key, expiry, amount), REDIS_TIMEOUT_SECONDS
                )
                if self._degraded:
                    self._degraded = False
                    log.info("login_throttle_redis_recovered")
                return self._redis, count
            except Exception as exc:  # any Redis fault: fall back, never fail the login
                if not self._degraded:
                    self._degraded = True
                    log.warning("login_throttle_redis_unavailable", error=type(exc).__name__)
        return self._memory, await self._memory.incr(key, expiry, amount)

    async def _give_back(self, held: tuple[tuple[Storage, str, int], ...]) -> None:
        for storage, key, expiry in held:
            # A lost give-back only makes the limit stricter for one window.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(storage.incr(key, expiry, -1), REDIS_TIMEOUT_SECONDS)

    async def begin(self, account: str, address: str) -> Attempt:
        """Take a failure slot per address, then per account; refused when either is full."""
        held: list[tuple[Storage, str, int]] = []
        # The address first: attempts from a throttled address never count against an account.
        for item, scope, value in (
            (self.per_address, "address", address),
            (self.per_account, "account", account),
        ):
            key, expiry = item.key_for(scope, value), item.get_expiry()
            storage, count = await self._incr(key, expiry, 1)
            held.append((storage, key, expiry))
            if count > item.amount:
                # Refused before any password was checked: not a failure, so nothing is kept.
                await self._give_back(tuple(held))
                return Attempt(allowed=False, retry_after=await _seconds_left(storage, key))
        return Attempt(allowed=True, held=tuple(held))

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the attempt's slots go back, it was no failure."""
        await self._give_back(attempt.held)

    async def close(self) -> None:
        """Release the Redis connection, if any."""
        # limits keeps the redis-py client on its bridge and offers no close of its own.
        client = getattr(getattr(self._redis, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()


async def _seconds_left(storage: Storage, key: str) -> int:
    """Whole seconds until the window of `key` ends (at least 1, for Retry-After)."""
    try:
        reset = await asyncio.wait_for(storage.get_expiry(key), REDIS_TIMEOUT_SECONDS)
    except Exception:  # the storage just answered; if not now, a minute is a fair guess
        reset = time.time() + 60
    return max(1, math.ceil(reset - time.time()))
