"""Request and response bodies for projects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator

from {{ cookiecutter.package_name }}.schemas import Name, Schema, Text

Description = Annotated[Text | None, Field(max_length=10_000)]


class ProjectCreate(Schema):
    """A new project."""

    name: Name
    description: Description = None


class ProjectUpdate(Schema):
    """A partial update: only the fields sent change."""

    name: Name | None = None
    description: Description = None

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name cannot be null; leave it out to keep the current name")
        return value


class ProjectOut(Schema):
    """A project."""

    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
