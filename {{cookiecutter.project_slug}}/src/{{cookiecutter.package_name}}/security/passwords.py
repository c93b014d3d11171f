"""argon2id password hashing, off the event loop (hashing takes tens of milliseconds by design)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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


_COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The bundled list of the most common passwords, lower-cased."""
    lines = _COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def password_problem(password: str, email: str, min_length: int) -> str | None:
    """Why this password is refused at registration, or None when it is acceptable."""
    if len(password) < min_length:
        return f"The password must be at least {min_length} characters long."
    lowered = password.casefold()
    if lowered in common_passwords() or lowered.replace(" ", "") in common_passwords():
        return "This password is one of the most commonly used; choose another."
    if lowered == email.casefold().partition("@")[0]:
        return "The password must not be your email address."
    return None
