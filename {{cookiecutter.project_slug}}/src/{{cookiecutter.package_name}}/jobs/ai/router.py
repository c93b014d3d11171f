"""Project summaries over HTTP: request one (queued), then fetch it.

Requesting one is behind the `ai-summary` feature flag (flags.py): it calls a third-party
model. Off, the request answers 404 `feature-disabled` (the flow does not exist for this
organization yet); summaries made while it was on stay readable.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, status
from sqlalchemy import select

from {{ cookiecutter.package_name }}.dependencies import FlagsDep, OutboxDep, SessionDep
from {{ cookiecutter.package_name }}.errors import NotFoundError, ProblemError
from {{ cookiecutter.package_name }}.jobs.ai.summary import SUMMARY_JOB, AiSummary
from {{ cookiecutter.package_name }}.jobs.transfers.model import TransferStatus
from {{ cookiecutter.package_name }}.resources.projects.repository import ProjectRepository
from {{ cookiecutter.package_name }}.schemas import Schema
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize

router = APIRouter(prefix="/orgs/{org_id}/projects/{project_id}/summary", tags=["ai"])
FLAG = "ai-summary"


class SummaryOut(Schema):
    """A project summary and its provenance (prompt id and hash, model)."""

    id: uuid.UUID
    project_id: uuid.UUID
    status: TransferStatus
    provider: str | None
    prompt_id: str | None
    prompt_sha256: str | None
    model: str | None
    result: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def request_summary(
    project_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("projects:ai.summarize")],
    session: SessionDep,
    outbox: OutboxDep,
    flags: FlagsDep,
) -> SummaryOut:
    """Queue an AI summary of the project's tasks; fetch it by id when done.

    404 `feature-disabled` while the `ai-summary` flag is off for the organization."""
    if not flags.enabled(FLAG, org_id=str(access.org_id)):
        raise ProblemError(
            404,
            "AI summaries are not enabled for this organization (feature flag 'ai-summary').",
            type_="feature-disabled",
            flag=FLAG,
        )
    if await ProjectRepository(session, access.org_id).get(project_id) is None:
        raise NotFoundError("Project")
    record = AiSummary(
        org_id=access.org_id,
        project_id=project_id,
        requested_by=access.user_id,
        status=TransferStatus.queued,
    )
    session.add(record)
    await session.flush()
    outbox.add(SUMMARY_JOB, {"summary_id": str(record.id)}, org_id=access.org_id)
    return SummaryOut.model_validate(record)


@router.get("/{summary_id}")
async def get_summary(
    project_id: uuid.UUID,
    summary_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("projects:read")],
    session: SessionDep,
) -> SummaryOut:
    """One summary of the project."""
    record = await session.scalar(
        select(AiSummary).where(
            AiSummary.org_id == access.org_id,
            AiSummary.project_id == project_id,
            AiSummary.id == summary_id,
        )
    )
    if record is None:
        raise NotFoundError("Summary")
    return SummaryOut.model_validate(record)
