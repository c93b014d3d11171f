"""Persistence of projects; every query is scoped to one organization."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.pagination import PageRequest, keyset, keyset_params, split_page
from {{ cookiecutter.package_name }}.resources.projects.model import Project


class ProjectRepository:
    """Queries on one organization's projects; flushes, never commits."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, project_id: uuid.UUID) -> Project | None:
        """The project, if it belongs to this organization."""
        return await self.session.scalar(
            select(Project).where(Project.org_id == self.org_id, Project.id == project_id)
        )

    async def page(self, page: PageRequest) -> tuple[list[Project], bool]:
        """One keyset page, newest first, and whether more follow."""
        stmt = keyset(
            select(Project).where(Project.org_id == self.org_id),
            Project.created_at,
            Project.id,
            after=page.after is not None,
        )
        return split_page(list(await self.session.scalars(stmt, keyset_params(page))), page.limit)

    async def add(self, **values: Any) -> Project:
        """Insert a project."""
        project = Project(org_id=self.org_id, **values)
        self.session.add(project)
        await self.session.flush()
        return project

    async def update(self, project: Project, changes: dict[str, Any]) -> Project:
        """Apply `changes` and flush."""
        for name, value in changes.items():
            setattr(project, name, value)
        await self.session.flush()
        return project

    async def delete(self, project: Project) -> None:
        """Delete the project and its tasks."""
        await self.session.delete(project)
        await self.session.flush()
