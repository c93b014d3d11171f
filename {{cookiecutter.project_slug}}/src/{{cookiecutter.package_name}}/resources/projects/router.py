"""CRUD for projects under /orgs/{org_id}/projects."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status

from {{ cookiecutter.package_name }}.dependencies import (
    CacheDep,
    CachedReadsDep,
    CursorsDep,
    OutboxDep,
    PageQuery,
    SessionDep,
    UnitOfWorkDep,
)
from {{ cookiecutter.package_name }}.errors import NotFoundError
from {{ cookiecutter.package_name }}.jobs.webhooks.events import emit
from {{ cookiecutter.package_name }}.pagination import Page
from {{ cookiecutter.package_name }}.resources.projects.reads import invalidate_project_after_commit, read_project
from {{ cookiecutter.package_name }}.resources.projects.repository import ProjectRepository
from {{ cookiecutter.package_name }}.resources.projects.schemas import (
    ProjectCreate,
    ProjectOut,
    ProjectUpdate,
)
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize

router = APIRouter(prefix="/orgs/{org_id}/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_project(
    body: ProjectCreate,
    access: Annotated[OrgAccess, authorize("projects:create")],
    session: SessionDep,
    outbox: OutboxDep,
) -> ProjectOut:
    """Create a project."""
    project = await ProjectRepository(session, access.org_id).add(**body.model_dump())
    created = ProjectOut.model_validate(project)
    await emit(outbox, "project.created", access.org_id, created)
    return created


@router.get("")
async def list_projects(
    access: Annotated[OrgAccess, authorize("projects:list")],
    session: SessionDep,
    page: PageQuery,
    cursors: CursorsDep,
) -> Page[ProjectOut]:
    """Projects, newest first, by cursor."""
    listing = f"projects:{access.org_id}"
    request = page.resolve(cursors, listing)
    rows, more = await ProjectRepository(session, access.org_id).page(request)
    return Page[ProjectOut](
        items=[ProjectOut.model_validate(p) for p in rows],
        next_cursor=page.next_cursor(cursors, listing, rows, more),
    )


@router.get("/{project_id}")
async def get_project(
    project_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("projects:read")],
    reads: CachedReadsDep,
) -> ProjectOut:
    """One project (served from the cache when it holds a current copy)."""
    project = await read_project(reads, access.org_id, project_id)
    if project is None:
        raise NotFoundError("Project")
    return project


@router.patch("/{project_id}")
async def update_project(
    project_id: uuid.UUID,
    body: ProjectUpdate,
    access: Annotated[OrgAccess, authorize("projects:update")],
    session: SessionDep,
    uow: UnitOfWorkDep,
    cache: CacheDep,
    outbox: OutboxDep,
) -> ProjectOut:
    """Change the fields sent."""
    repo = ProjectRepository(session, access.org_id)
    project = await repo.get(project_id)
    if project is None:
        raise NotFoundError("Project")
    invalidate_project_after_commit(uow, cache, access.org_id)
    project = await repo.update(project, body.model_dump(exclude_unset=True))
    updated = ProjectOut.model_validate(project)
    await emit(outbox, "project.updated", access.org_id, updated)
    return updated


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(
    project_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("projects:delete")],
    session: SessionDep,
    uow: UnitOfWorkDep,
    cache: CacheDep,
    outbox: OutboxDep,
) -> Response:
    """Delete the project and its tasks."""
    repo = ProjectRepository(session, access.org_id)
    project = await repo.get(project_id)
    if project is None:
        raise NotFoundError("Project")
    invalidate_project_after_commit(uow, cache, access.org_id)
    await repo.delete(project)
    await emit(outbox, "project.deleted", access.org_id, {"id": str(project.id)})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
