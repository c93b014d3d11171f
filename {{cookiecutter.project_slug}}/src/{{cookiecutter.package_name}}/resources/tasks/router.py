"""CRUD for tasks under /orgs/{org_id}/tasks, plus upsert by external key."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.db.upsert import Outcome
from {{ cookiecutter.package_name }}.dependencies import (
    CacheDep,
    CachedReadsDep,
    CursorsDep,
    OutboxDep,
    PageQuery,
    PolicyDep,
    SessionDep,
    UnitOfWorkDep,
)
from {{ cookiecutter.package_name }}.errors import NotFoundError, ProblemError
from {{ cookiecutter.package_name }}.jobs.webhooks.events import emit
from {{ cookiecutter.package_name }}.pagination import Page, PageResponse
from {{ cookiecutter.package_name }}.resources.projects.repository import ProjectRepository
from {{ cookiecutter.package_name }}.resources.tasks.model import Task, TaskStatus
from {{ cookiecutter.package_name }}.resources.tasks.reads import invalidate_tasks_after_commit, read_task
from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository
from {{ cookiecutter.package_name }}.resources.tasks.schemas import (
    EXTERNAL_KEY_PATTERN,
    TaskCreate,
    TaskOut,
    TaskPut,
    TaskUpdate,
)
from {{ cookiecutter.package_name }}.security.rbac import ASSIGNEE_OR_UNASSIGNED
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize, deny, membership_role

router = APIRouter(prefix="/orgs/{org_id}/tasks", tags=["tasks"])


# The ownership conditions the routes below check: the policy may narrow their actions by these
# (start-up refuses any other condition on them; see security/rbac.py check_routes).
OWNED = {ASSIGNEE_OR_UNASSIGNED}


def _check_ownership(access: OrgAccess, task: Task) -> None:
    """The policy's ownership rule for this role and action, checked against the task."""
    if access.condition == ASSIGNEE_OR_UNASSIGNED and task.assignee_id not in (
        None,
        access.user_id,
    ):
        raise deny(access, reason="not the assignee")


async def _check_references(
    session: AsyncSession, access: OrgAccess, values: dict[str, Any]
) -> None:
    """The project and the assignee must belong to the caller's organization."""
    if "project_id" in values and (
        await ProjectRepository(session, access.org_id).get(values["project_id"]) is None
    ):
        raise ProblemError(
            422, "project_id does not name a project of this organization.", type_="validation"
        )
    assignee = values.get("assignee_id")
    if assignee is not None and await membership_role(session, access.org_id, assignee) is None:
        raise ProblemError(
            422, "assignee_id is not a member of this organization.", type_="validation"
        )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_task(
    body: TaskCreate,
    access: Annotated[OrgAccess, authorize("tasks:create")],
    session: SessionDep,
    outbox: OutboxDep,
) -> TaskOut:
    """Create a task in one of the organization's projects."""
    values = body.model_dump()
    await _check_references(session, access, values)
    repo = TaskRepository(session, access.org_id)
    if body.external_key is not None and await repo.by_key(body.external_key) is not None:
        raise ProblemError(
            409,
            "A task with this external_key exists; PUT /tasks/by-key/{key} updates it.",
            type_="conflict",
        )
    created = TaskOut.model_validate(await repo.add(**values))
    await emit(outbox, "task.created", access.org_id, created)
    return created


@router.get("", response_model=Page[TaskOut])
async def list_tasks(
    access: Annotated[OrgAccess, authorize("tasks:list")],
    session: SessionDep,
    page: PageQuery,
    cursors: CursorsDep,
    project_id: Annotated[uuid.UUID | None, Query(description="Only this project's tasks.")] = None,
    status_: Annotated[TaskStatus | None, Query(alias="status")] = None,
) -> PageResponse:
    """Tasks with their project, newest first, by cursor (one SQL statement per page)."""
    listing = f"tasks:{access.org_id}:{project_id or '*'}:{status_ or '*'}"
    request = page.resolve(cursors, listing)
    rows, more = await TaskRepository(session, access.org_id).page(
        request, project_id=project_id, status=status_
    )
    # The rows have TaskOut's fields and types: written out as they are, not made models first.
    return PageResponse(rows, page.next_cursor(cursors, listing, rows, more))


@router.get("/{task_id}")
async def get_task(
    task_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("tasks:read")],
    reads: CachedReadsDep,
) -> TaskOut:
    """One task (served from the cache when it holds a current copy)."""
    task = await read_task(reads, access.org_id, task_id)
    if task is None:
        raise NotFoundError("Task")
    return task


@router.patch("/{task_id}")
async def update_task(
    task_id: uuid.UUID,
    body: TaskUpdate,
    access: Annotated[OrgAccess, authorize("tasks:update", enforces=OWNED)],
    session: SessionDep,
    uow: UnitOfWorkDep,
    cache: CacheDep,
    outbox: OutboxDep,
) -> TaskOut:
    """Change the fields sent."""
    repo = TaskRepository(session, access.org_id)
    task = await repo.get(task_id)
    if task is None:
        raise NotFoundError("Task")
    _check_ownership(access, task)
    invalidate_tasks_after_commit(uow, cache, access.org_id, task.id)
    changes = body.model_dump(exclude_unset=True)
    await _check_references(session, access, changes)
    updated = TaskOut.model_validate(await repo.update(task, changes))
    await emit(outbox, "task.updated", access.org_id, updated)
    return updated


@router.put("/by-key/{external_key}")
async def put_task_by_key(
    external_key: Annotated[str, Path(pattern=EXTERNAL_KEY_PATTERN)],
    body: TaskPut,
    response: Response,
    access: Annotated[OrgAccess, authorize("tasks:update", enforces=OWNED)],
    session: SessionDep,
    policy: PolicyDep,
    uow: UnitOfWorkDep,
    cache: CacheDep,
    outbox: OutboxDep,
) -> TaskOut:
    """Create or replace the task with this external key; re-sending changes nothing.

    201 when created, 200 otherwise. Creating also needs the `tasks:create` grant."""
    repo = TaskRepository(session, access.org_id)
    existing = await repo.by_key(external_key)
    if existing is None and (
        not policy.allows(access.role, "tasks:create")
        # No task to hold a creation condition against: such a condition fails closed.
        or policy.condition(access.role, "tasks:create") is not None
    ):
        raise deny(OrgAccess(access.org_id, access.user_id, access.role, "tasks:create"))
    if existing is not None:
        _check_ownership(access, existing)
    values = body.model_dump()
    await _check_references(session, access, values)
    result = await repo.upsert_by_key(external_key, values)
    invalidate_tasks_after_commit(uow, cache, access.org_id, result.row.id)
    if result.outcome is Outcome.created:
        response.status_code = status.HTTP_201_CREATED
    written = TaskOut.model_validate(result.row)
    if result.outcome is not Outcome.unchanged:
        await emit(outbox, f"task.{result.outcome}", access.org_id, written)
    return written


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_task(
    task_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("tasks:delete", enforces=OWNED)],
    session: SessionDep,
    uow: UnitOfWorkDep,
    cache: CacheDep,
    outbox: OutboxDep,
) -> Response:
    """Delete the task."""
    repo = TaskRepository(session, access.org_id)
    task = await repo.get(task_id)
    if task is None:
        raise NotFoundError("Task")
    _check_ownership(access, task)
    invalidate_tasks_after_commit(uow, cache, access.org_id, task.id)
    await repo.delete(task)
    await emit(
        outbox,
        "task.deleted",
        access.org_id,
        {"id": str(task.id), "project_id": str(task.project_id)},
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
