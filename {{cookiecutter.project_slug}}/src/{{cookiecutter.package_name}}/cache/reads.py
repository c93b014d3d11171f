"""What a cached read needs: the cache, and a database session opened only on a miss.

A GET answered from the cache then costs no session and no pool checkout at all. On a miss the
loader reads the replica (or the primary, after this client's own write); a value about to be
cached is always read from the primary, so a lagging replica never seeds the cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.cache.keys import ObjectRef
from {{ cookiecutter.package_name }}.cache.store import VersionedCache
from {{ cookiecutter.package_name }}.db.engines import Database

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class CachedReads:
    """The request's read-through access to single objects."""

    cache: VersionedCache
    db: Database
    prefer_primary: bool  # read-your-writes: this client wrote a moment ago

    async def get_or_load(
        self, ref: ObjectRef, model: type[M], fetch: Callable[[AsyncSession], Awaitable[M | None]]
    ) -> M | None:
        """The cached object, or `fetch` on a session opened for the miss."""

        async def load(for_cache: bool) -> M | None:
            async with self.db.reader(prefer_primary=self.prefer_primary or for_cache) as session:
                return await fetch(session)

        return await self.cache.get_or_load(ref, model, load)
