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
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.resources.projects.repository import ProjectRepository
from {{ cookiecutter.package_name }}.resources.projects.schemas import ProjectOut

RESOURCE = "project"


async def read_project(
    session: AsyncSession,
    db: Database,
    cache: VersionedCache,
    org_id: uuid.UUID,
    project_id: uuid.UUID,
) -> ProjectOut | None:
    """The project as the API shows it, from the cache or the database."""

    async def load(for_cache: bool) -> ProjectOut | None:
        if for_cache and session.info.get("db_role") == "replica":
            # A lagging replica must not seed the cache: the fill reads the primary.
            async with db.reader(prefer_primary=True) as primary:
                return await _fetch(primary, org_id, project_id)
        return await _fetch(session, org_id, project_id)

    return await cache.get_or_load(ObjectRef(org_id, RESOURCE, project_id), ProjectOut, load)


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
