"""Operator actions behind `{{ cookiecutter.package_name }} dlq ...`: run against DATABASE_URL (and REDIS_URL)."""

from __future__ import annotations

import uuid

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs import dead_letters
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.settings import Settings, get_settings


async def list_dead_letters(
    *, include_replayed: bool = False, limit: int = 50, settings: Settings | None = None
) -> list[str]:
    """One line per dead letter, newest first."""
    db = Database(settings or get_settings())
    try:
        async with db.reader(prefer_primary=True) as session:
            rows = await dead_letters.pending(
                session, include_replayed=include_replayed, limit=limit
            )
    finally:
        await db.dispose()
    lines = []
    for row in rows:
        state = f"replayed {row.replayed_at:%Y-%m-%dT%H:%M:%SZ}" if row.replayed_at else "pending"
        error = row.last_error.splitlines()[0][:120] if row.last_error else ""
        lines.append(
            f"{row.id}  {row.job_name}  attempts={row.attempts}  "
            f"{row.created_at:%Y-%m-%dT%H:%M:%SZ}  {state}  {error}"
        )
    return lines or ["no dead letters"]


async def replay_dead_letters(letter_id: str | None, *, settings: Settings | None = None) -> int:
    """Replay one dead letter (by id) or, with None, all pending ones; returns the count.

    The replays are outbox rows; with Redis configured they are relayed to arq right away,
    otherwise the service's in-process relay picks them up on its next poll."""
    settings = settings or get_settings()
    db = Database(settings)
    try:
        async with db.writer() as session, session.begin():
            if letter_id is None:
                count = await dead_letters.replay_all(session)
            else:
                try:
                    key = uuid.UUID(letter_id)
                except ValueError:
                    raise LookupError(f"{letter_id!r} is not a dead letter id") from None
                letter = await dead_letters.get(session, key)
                if letter is None:
                    raise LookupError(f"no dead letter {letter_id}")
                count = 1 if dead_letters.replay(session, letter) is not None else 0
        if count and settings.redis_url:
            runtime = JobsRuntime(settings, db)
            try:
                await runtime.relay.nudge()
            finally:
                await runtime.close()
    finally:
        await db.dispose()
    return count
