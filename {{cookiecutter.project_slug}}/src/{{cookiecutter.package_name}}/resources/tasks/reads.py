"""Cached reads of tasks and their invalidation around the commit (router -> here -> cache)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.cache import ObjectRef, VersionedCache
from {{ cookiecutter.package_name }}.cache.backstop import invalidate_on_commit
from {{ cookiecutter.package_name }}.cache.reads import CachedReads
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository
from {{ cookiecutter.package_name }}.resources.tasks.schemas import TaskOut

RESOURCE = "task"


def task_ref(org_id: uuid.UUID, task_id: uuid.UUID) -> ObjectRef:
    """The cache reference of one task."""
    return ObjectRef(org_id, RESOURCE, task_id)


async def read_task(reads: CachedReads, org_id: uuid.UUID, task_id: uuid.UUID) -> TaskOut | None:
    """The task with its project, from the cache or the database."""
    return await reads.get_or_load(
        task_ref(org_id, task_id), TaskOut, lambda session: _fetch(session, org_id, task_id)
    )


async def _fetch(session: AsyncSession, org_id: uuid.UUID, task_id: uuid.UUID) -> TaskOut | None:
    return await TaskRepository(session, org_id).read(task_id)


def invalidate_tasks_after_commit(
    uow: UnitOfWork, cache: VersionedCache, org_id: uuid.UUID, *task_ids: uuid.UUID
) -> None:
    """Drop these tasks' cached values around the commit (cache/backstop.py)."""
    invalidate_on_commit(uow, cache, [task_ref(org_id, t) for t in task_ids])
