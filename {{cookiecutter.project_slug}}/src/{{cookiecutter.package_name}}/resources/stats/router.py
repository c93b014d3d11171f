"""GET /orgs/{org_id}/stats: counts for dashboards, labelled exact or approximate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from {{ cookiecutter.package_name }}.dependencies import SessionDep, SettingsDep
from {{ cookiecutter.package_name }}.resources.stats.repository import StatsRepository
from {{ cookiecutter.package_name }}.resources.stats.schemas import OrgStats
from {{ cookiecutter.package_name }}.resources.tasks.model import TaskStatus
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize

router = APIRouter(prefix="/orgs/{org_id}/stats", tags=["organizations"])


@router.get("")
async def org_stats(
    access: Annotated[OrgAccess, authorize("orgs:stats")],
    session: SessionDep,
    settings: SettingsDep,
) -> OrgStats:
    """Member, project and task counts; large ones are planner estimates (`approximate`)."""
    repo = StatsRepository(session, access.org_id, settings.stats_exact_count_limit)
    return OrgStats(
        org_id=access.org_id,
        members=await repo.members(),
        projects=await repo.projects(),
        tasks=await repo.tasks(),
        tasks_by_status={status: await repo.tasks(status) for status in TaskStatus},
        exact_limit=settings.stats_exact_count_limit,
    )
