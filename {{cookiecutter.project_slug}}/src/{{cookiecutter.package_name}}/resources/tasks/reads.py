"""Cached reads of tasks and their invalidation around the commit (router -> here -> cache)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.cache import ObjectRef, VersionedCache
from {{ cookiecutter.package_name }}.cache.backstop import invalidate_on_commit
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository
from {{ cookiecutter.package_name }}.resources.tasks.schemas import TaskOut

RESOURCE = "task"


def task_ref(org_id: uuid.UUID, task_id: uuid.UUID) -> ObjectRef:
    """The cache reference of one task."""
    return ObjectRef(org_id, RESOURCE, task_id)


async def read_task(
    session: AsyncSession,
    db: Database,
    cache: VersionedCache,
    org_id: uuid.UUID,
    task_id: uuid.UUID,
) -> TaskOut | None:
    """The task with its project, from the cache or the database."""

    async def load(for_cache: bool) -> TaskOut | None:
        if for_cache and session.info.get("db_role") == "replica":
            # A lagging replica must not seed the cache: the fill reads the primary.
            async with db.reader(prefer_primary=True) as primary:
                return await _fetch(primary, org_id, task_id)
        return await _fetch(session, org_id, task_id)

    return await cache.get_or_load(task_ref(org_id, task_id), TaskOut, load)


async def _fetch(session: AsyncSession, org_id: uuid.UUID, task_id: uuid.UUID) -> TaskOut | None:
    task = await TaskRepository(session, org_id).get(task_id)
    return None if task is None else TaskOut.model_validate(task)


def invalidate_tasks_after_commit(
    uow: UnitOfWork, cache: VersionedCache, org_id: uuid.UUID, *task_ids: uuid.UUID
) -> None:
    """Drop these tasks' cached values around the commit (cache/backstop.py)."""
    invalidate_on_commit(uow, cache, [task_ref(org_id, t) for t in task_ids])
