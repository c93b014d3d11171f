"""Owner-only dead-letter endpoints: list an organization's failed jobs and replay them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from {{ cookiecutter.package_name }}.dependencies import OutboxDep, SessionDep
from {{ cookiecutter.package_name }}.errors import ConflictError, NotFoundError
from {{ cookiecutter.package_name }}.jobs import dead_letters
from {{ cookiecutter.package_name }}.schemas import Schema
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize

router = APIRouter(prefix="/orgs/{org_id}/dead-letters", tags=["dead letters"])


class DeadLetterOut(Schema):
    """A job that failed for good."""

    id: uuid.UUID
    job_name: str
    args: dict[str, Any]
    trace_context: dict[str, str] | None
    last_error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None
    replay_outbox_id: uuid.UUID | None


class ReplayOut(Schema):
    """How many dead letters were queued again."""

    replayed: int


@router.get("")
async def list_dead_letters(
    access: Annotated[OrgAccess, authorize("dlq:list")],
    session: SessionDep,
    include_replayed: Annotated[bool, Query(description="Also show replayed ones.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeadLetterOut]:
    """The organization's dead letters, newest first."""
    rows = await dead_letters.pending(
        session, org_id=access.org_id, include_replayed=include_replayed, limit=limit
    )
    return [DeadLetterOut.model_validate(r) for r in rows]


@router.post("/{letter_id}/replay", status_code=status.HTTP_202_ACCEPTED)
async def replay_dead_letter(
    letter_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("dlq:replay")],
    session: SessionDep,
    outbox: OutboxDep,
) -> DeadLetterOut:
    """Queue the job again with its original arguments (through the outbox)."""
    letter = await dead_letters.get(session, letter_id, org_id=access.org_id)
    if letter is None:
        raise NotFoundError("Dead letter")
    if dead_letters.replay(session, letter) is None:
        raise ConflictError("This dead letter was already replayed.")
    outbox.nudge_after_commit()
    await session.flush()
    return DeadLetterOut.model_validate(letter)


@router.post("/replay", status_code=status.HTTP_202_ACCEPTED)
async def replay_all_dead_letters(
    access: Annotated[OrgAccess, authorize("dlq:replay")],
    session: SessionDep,
    outbox: OutboxDep,
) -> ReplayOut:
    """Queue every pending dead letter of the organization again."""
    count = await dead_letters.replay_all(session, org_id=access.org_id)
    if count:
        outbox.nudge_after_commit()
    return ReplayOut(replayed=count)
