"""Cached reads of projects and their invalidation around the commit (router -> here -> cache).

A task's cached value embeds its project's name, so a change to a project (or its deletion,
which takes its tasks with it) replaces the tenant's generation: every cached object of the
organization is dropped at once. Projects change rarely; tasks, which change often, are
invalidated one by one (see resources/tasks/reads.py).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.cache import ObjectRef, VersionedCache
from {{ cookiecutter.package_name }}.cache.backstop import invalidate_on_commit
from {{ cookiecutter.package_name }}.cache.reads import CachedReads
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.resources.projects.repository import ProjectRepository
from {{ cookiecutter.package_name }}.resources.projects.schemas import ProjectOut

RESOURCE = "project"


async def read_project(
    reads: CachedReads, org_id: uuid.UUID, project_id: uuid.UUID
) -> ProjectOut | None:
    """The project as the API shows it, from the cache or the database."""
    return await reads.get_or_load(
        ObjectRef(org_id, RESOURCE, project_id),
        ProjectOut,
        lambda session: _fetch(session, org_id, project_id),
    )


async def _fetch(
    session: AsyncSession, org_id: uuid.UUID, project_id: uuid.UUID
) -> ProjectOut | None:
    project = await ProjectRepository(session, org_id).get(project_id)
    return None if project is None else ProjectOut.model_validate(project)


def invalidate_project_after_commit(
    uow: UnitOfWork, cache: VersionedCache, org_id: uuid.UUID
) -> None:
    """Drop the organization's cached objects (the project and its tasks) around the commit."""
    invalidate_on_commit(uow, cache, [org_id])
