"""Request and response bodies for tasks."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from {{ cookiecutter.package_name }}.resources.tasks.model import TaskStatus
from {{ cookiecutter.package_name }}.schemas import Schema, Text

EXTERNAL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
Title = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
ExternalKey = Annotated[
    str,
    Field(
        pattern=EXTERNAL_KEY_PATTERN,
        description="The client's own id for the task: letters, digits and . _ : - (max 100).",
    ),
]


class TaskCreate(Schema):
    """A new task."""

    project_id: uuid.UUID
    title: Title
    status: TaskStatus = TaskStatus.todo
    due_date: date | None = None
    external_key: ExternalKey | None = None
    assignee_id: uuid.UUID | None = None


class TaskPut(Schema):
    """The full state of a task, written by external key (create or replace)."""

    project_id: uuid.UUID
    title: Title
    status: TaskStatus = TaskStatus.todo
    due_date: date | None = None
    assignee_id: uuid.UUID | None = None


class TaskUpdate(Schema):
    """A partial update: only the fields sent change."""

    project_id: uuid.UUID | None = None
    title: Title | None = None
    status: TaskStatus | None = None
    due_date: date | None = None
    assignee_id: uuid.UUID | None = None

    @field_validator("project_id", "title", "status")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value


class ProjectRef(Schema):
    """The project a task belongs to, embedded so lists need no second request."""

    id: uuid.UUID
    name: str


class TaskOut(Schema):
    """A task with its project."""

    id: uuid.UUID
    project: ProjectRef
    title: str
    status: TaskStatus
    due_date: date | None
    external_key: str | None
    assignee_id: uuid.UUID | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
