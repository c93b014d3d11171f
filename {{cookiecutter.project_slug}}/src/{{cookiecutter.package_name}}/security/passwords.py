"""argon2id password hashing, off the event loop (hashing takes tens of milliseconds by design)."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from {{ cookiecutter.package_name }}.settings import Settings


class Passwords:
    """Hash and verify passwords with the cost from settings."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
        )
        # Verifying against this keeps "unknown email" as slow as "wrong password".
        self._dummy_hash = self._hasher.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        """The argon2id hash of `password`."""
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; always spends the hashing time."""
        try:
            return (
                await anyio.to_thread.run_sync(
                    self._hasher.verify, password_hash or self._dummy_hash, password
                )
                and password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False
