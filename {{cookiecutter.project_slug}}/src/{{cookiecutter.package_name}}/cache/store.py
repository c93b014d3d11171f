"""Versioned read-through cache of single objects in Redis, behind a circuit breaker.

Reading: one script call (`_READ_LUA`) fetches the namespace epoch, the tenant generation,
the object version and the value, creating whichever token is missing. The value is served
only when it was written under those same three tokens; otherwise the loader reads the
database and the value is stored tagged with the tokens read *before* the database was — so
a reader racing a writer can only store a value that is already outdated (never served).

Writing happens around the commit (see backstop.py for the whole protocol): before COMMIT the
writer replaces the tokens of what it changes by *pending* markers (`~...`, short-lived); no
value is ever tagged with one, so nothing cached before is served and nobody fills the cache
for those objects meanwhile. After COMMIT fresh tokens replace the markers. If the writer dies
in between, the markers expire and the next reader starts from a fresh token. Tokens are
random, not counters, so a token evicted or expired can never come back with an old value
still matching it.

When Redis cannot be told (the breaker is open or the call fails) and no pending marker covers
the change, the invalidation is lost for this process, so it stops trusting the cache: it reads
straight from the database until it has replaced the namespace epoch, which invalidates every
value written before. An open breaker alone does not: what other processes could not tell
Redis meanwhile, they replay from the database backstop (backstop.py), and replacing the
epoch would empty the cache of every process whenever one of them lost sight of Redis.

Why not cashews: its values are pickled (the issue wants orjson; pickle from a shared store
runs code), its tag invalidation deletes through Redis, which is the very call that may not
get through, and its suppress mode still waits for the socket timeout on every call. The
commands needed here (GET, SET, two short scripts) are redis-py's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import orjson
import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from {{ cookiecutter.package_name }}.cache.breaker import BreakerState, CircuitBreaker
from {{ cookiecutter.package_name }}.cache.keys import CacheKeys, ObjectRef
from {{ cookiecutter.package_name }}.observability.metrics import (
    CACHE_BREAKER_STATE,
    CACHE_BREAKER_TRANSITIONS,
    CACHE_DECODE_ERRORS,
    CACHE_INVALIDATIONS,
    CACHE_REDIS_CALLS,
    CACHE_REQUESTS,
    CACHE_RESYNCS,
)

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
# The loader is told whether its result will be cached: then it must not read a lagging replica.
Loader = Callable[[bool], Awaitable[M | None]]
# What a write invalidates: one object, or a whole tenant (its organization id).
Target = ObjectRef | uuid.UUID

TOKEN_TTL_SECONDS = 24 * 3600  # epoch and tenant tokens; their expiry only costs misses
DEFAULT_TTL_SECONDS = 60
# A pending marker outlives the commit it announces; if the writer dies, it just expires.
PENDING_TTL_SECONDS = 30
PENDING = "~"
# Token writes, atomic per key. A pending marker `~<n>:<random>` counts the writes in flight.
# mark: one more (refreshing the marker's life); settle: one fewer, and the last one leaves a
# fresh token; replace: a fresh token, unless writes are in flight: their markers already
# keep old values unserved, and they settle after their own commit, which follows this one.
_TOKENS_LUA = """
local op, pending_ttl = ARGV[1], ARGV[2]
for i, key in ipairs(KEYS) do
  local fresh, ttl = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local current = redis.call('GET', key)
  local writers = 0
  if current and string.sub(current, 1, 1) == '~' then
    writers = tonumber(string.match(current, '^~(%d+):')) or 1
  end
  if op == 'mark' then
    redis.call('SET', key, '~' .. (writers + 1) .. ':' .. fresh, 'EX', pending_ttl)
  elseif op == 'settle' and writers > 1 then
    redis.call('SET', key, '~' .. (writers - 1) .. ':' .. fresh, 'KEEPTTL')
  elseif op == 'settle' or writers == 0 then
    redis.call('SET', key, fresh, 'EX', ttl)
  end
end
"""
# A read: the three tokens (each created if missing: epoch and generation with ARGV[2] seconds
# to live, the version with ARGV[3]) and the value, in one round trip. A created token is the
# call's random seed and the key's position, so it is new and matches no stored value. As an
# MGET plus, for an object never read, a pipeline of SET NX and MGET, a first read took two
# round trips before the fill instead of one.
_READ_LUA = """
local found = {}
for i = 1, 3 do
  local token = redis.call('GET', KEYS[i])
  if not token then
    token = ARGV[1] .. ':' .. i
    redis.call('SET', KEYS[i], token, 'EX', i < 3 and ARGV[2] or ARGV[3])
  end
  found[i] = token
end
found[4] = redis.call('GET', KEYS[4])
return found
"""
_STATE_INDEX = {BreakerState.closed: 0, BreakerState.half_open: 1, BreakerState.open: 2}


class CacheUnavailable(Exception):  # noqa: N818 - a condition, not an error to report
    """The call was not attempted (breaker open) or failed; `attempted` tells which."""

    def __init__(self, attempted: bool) -> None:
        super().__init__("cache unavailable")
        self.attempted = attempted


def _token() -> str:
    return secrets.token_hex(8)


def _pending(tags: Iterable[str]) -> bool:
    return any(t.startswith(PENDING) for t in tags)


class VersionedCache:
    """Read-through cache of pydantic models keyed by tenant, resource and id."""

    def __init__(
        self,
        redis: Redis | None,
        keys: CacheKeys,
        breaker: CircuitBreaker,
        *,
        timeout_seconds: float,
        ttls: Mapping[str, int] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.breaker = breaker
        self.timeout_seconds = timeout_seconds
        self.ttls = dict(ttls or {})
        self.resync_needed = False
        self._tokens_script = redis.register_script(_TOKENS_LUA) if redis is not None else None
        self._read_script = redis.register_script(_READ_LUA) if redis is not None else None
        breaker.subscribe(self._breaker_changed)
        CACHE_BREAKER_STATE.set(_STATE_INDEX[breaker.state])

    @property
    def enabled(self) -> bool:
        """False without Redis: every read goes to the loader."""
        return self.redis is not None

    async def close(self) -> None:
        """Close the Redis connections."""
        if self.redis is not None:
            await self.redis.aclose()

    # -- reads --------------------------------------------------------------------------------

    async def get_or_load(self, ref: ObjectRef, model: type[M], load: Loader[M]) -> M | None:
        """The cached object, or the loader's answer (stored when the cache is usable)."""
        if self.redis is None:
            return await load(False)
        if not await self._trusted():
            CACHE_REQUESTS.labels(ref.resource, "bypass").inc()
            return await load(False)
        names = [
            self.keys.epoch(),
            self.keys.generation(ref.org_id),
            self.keys.version(ref),
            self.keys.value(ref),
        ]
        ttl = self.ttls.get(ref.resource, DEFAULT_TTL_SECONDS)
        try:
            tags, raw = await self._call(lambda r: self._read(r, names, ttl))
        except CacheUnavailable as exc:
            CACHE_REQUESTS.labels(ref.resource, "error" if exc.attempted else "bypass").inc()
            return await load(False)
        if _pending(tags):  # a write is committing: read around the cache, fill nothing
            CACHE_REQUESTS.labels(ref.resource, "bypass").inc()
            return await load(False)
        if raw is not None:
            hit = await self._decode(raw, tags, model, names[3])
            if hit is not None:
                CACHE_REQUESTS.labels(ref.resource, "hit").inc()
                return hit
        CACHE_REQUESTS.labels(ref.resource, "miss").inc()
        value = await load(True)
        if value is not None and not self.resync_needed:
            blob = orjson.dumps([*tags, value.model_dump(mode="json")])
            # A failed fill is counted by _call; the answer is already in hand.
            with contextlib.suppress(CacheUnavailable):
                await self._call(lambda r: r.set(names[3], blob, ex=ttl))
        return value

    async def _decode(self, raw: bytes, tags: list[str], model: type[M], key: str) -> M | None:
        """The value if it carries these tags; None if outdated; undecodable ones are dropped."""
        try:
            stored = orjson.loads(raw)
            if not isinstance(stored, list) or len(stored) != 4:
                raise ValueError("not a tagged value")
            if stored[:3] != tags:
                return None  # written under older tokens: outdated, overwritten by the refill
            return model.model_validate(stored[3])
        except (ValueError, ValidationError) as exc:  # orjson.JSONDecodeError is a ValueError
            CACHE_DECODE_ERRORS.inc()
            log.warning("cache_value_undecodable", key=key, error=type(exc).__name__)
            with contextlib.suppress(CacheUnavailable):
                await self._call(lambda r: r.delete(key))
            return None

    async def _read(
        self, redis: Redis, names: list[str], ttl: int
    ) -> tuple[list[str], bytes | None]:
        """The three tokens (missing ones created) and the value: `_READ_LUA`, one round trip."""
        script = self._read_script
        if script is None:  # only without Redis, which get_or_load never calls this with
            raise CacheUnavailable(attempted=False)
        found = await script(keys=names, args=[_token(), TOKEN_TTL_SECONDS, ttl], client=redis)
        return [t.decode() for t in found[:3]], found[3]

    # -- invalidation -------------------------------------------------------------------------

    async def invalidate(self, targets: Iterable[Target]) -> None:
        """Replace the tokens of objects (or whole tenants) that changed (call after commit)."""
        await self._invalidate(list(targets))

    async def invalidate_tenant(self, org_id: uuid.UUID) -> None:
        """Replace the tenant's generation token: every cached object of the tenant is dropped."""
        await self._invalidate([org_id])

    async def mark_pending(self, targets: Sequence[Target]) -> bool:
        """Before commit: pending markers replace the targets' tokens. True if Redis took them."""
        if self.redis is None or not targets:
            return True
        try:
            await self._write_tokens("mark", targets)
        except CacheUnavailable:
            return False
        return True

    async def settle(self, targets: Sequence[Target], *, marked_at: float) -> None:
        """After commit (or rollback): withdraw the pending markers set at `marked_at`.

        If Redis cannot be told, the markers expire by themselves; only a commit slower than
        their life leaves nothing covering the change (then it is a lost invalidation)."""
        alive = time.monotonic() - marked_at < PENDING_TTL_SECONDS / 2
        await self._invalidate(targets, op="settle", covered=alive)

    async def replace_tokens(self, targets: Sequence[Target]) -> None:
        """Fresh tokens for the targets; raises CacheUnavailable (the backstop's replay)."""
        if self.redis is not None and targets:
            await self._write_tokens("replace", targets)

    async def _write_tokens(self, op: str, targets: Sequence[Target]) -> None:
        """One script call: every target's token key, atomically, per `_TOKENS_LUA`."""
        keys: list[str] = []
        args: list[str | int] = [op, PENDING_TTL_SECONDS]
        for target in targets:
            if isinstance(target, uuid.UUID):
                keys.append(self.keys.generation(target))
                args += [_token(), TOKEN_TTL_SECONDS]
            else:
                keys.append(self.keys.version(target))
                args += [_token(), self.ttls.get(target.resource, DEFAULT_TTL_SECONDS)]
        script = self._tokens_script
        if script is not None:
            await self._call(lambda r: script(keys=keys, args=args, client=r))

    async def _invalidate(
        self, targets: Sequence[Target], *, op: str = "replace", covered: bool = False
    ) -> None:
        if self.redis is None or not targets:
            return
        if self.resync_needed and op == "replace":
            # A resync drops everything, this change included; until it succeeds, no cache reads.
            outcome = "ok" if await self._trusted() else "lost"
            CACHE_INVALIDATIONS.labels(outcome).inc()
            return
        try:
            await self._write_tokens(op, targets)
        except CacheUnavailable:
            if covered:  # the pending markers still stand for this change and will expire
                CACHE_INVALIDATIONS.labels("deferred").inc()
                return
            CACHE_INVALIDATIONS.labels("lost").inc()
            self.distrust("invalidation_lost")
            return
        CACHE_INVALIDATIONS.labels("ok").inc()

    # -- trust and resync ---------------------------------------------------------------------

    def distrust(self, reason: str) -> None:
        """Serve nothing from the cache until the namespace epoch has been replaced."""
        if not self.resync_needed:
            self.resync_needed = True
            log.warning("cache_distrusted_until_resync", reason=reason)

    async def _trusted(self) -> bool:
        """True when values may be served; after a lost invalidation, resync first."""
        if not self.resync_needed:
            return True
        try:
            await self._call(lambda r: r.set(self.keys.epoch(), _token(), ex=TOKEN_TTL_SECONDS))
        except CacheUnavailable:
            return False
        self.resync_needed = False
        CACHE_RESYNCS.inc()
        log.warning("cache_resynced", detail="namespace epoch replaced; old values are dropped")
        return True

    def _breaker_changed(self, old: BreakerState, new: BreakerState, failures: int) -> None:
        CACHE_BREAKER_STATE.set(_STATE_INDEX[new])
        CACHE_BREAKER_TRANSITIONS.labels(new.value).inc()
        log.warning(
            "cache_breaker_state_changed",
            from_state=old.value,
            to_state=new.value,
            failures=failures,
        )

    # -- the one way to talk to Redis ---------------------------------------------------------

    async def _call(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        """Run one Redis operation through the breaker, bounded by the timeout."""
        redis = self.redis
        ticket = self.breaker.allow() if redis is not None else None
        if redis is None or ticket is None:
            raise CacheUnavailable(attempted=False)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                result = await op(redis)
        except (RedisError, OSError, TimeoutError) as exc:
            CACHE_REDIS_CALLS.labels("error").inc()
            self.breaker.record_failure(ticket)
            raise CacheUnavailable(attempted=True) from exc
        except BaseException:
            self.breaker.abandon(ticket)  # cancelled by the client: no verdict on Redis
            raise
        CACHE_REDIS_CALLS.labels("ok").inc()
        self.breaker.record_success(ticket)
        return result
