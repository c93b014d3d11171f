"""Response body of the organization stats."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from {{ cookiecutter.package_name }}.resources.tasks.model import TaskStatus
from {{ cookiecutter.package_name }}.schemas import Schema

Method = Literal["exact", "planner_estimate"]


class Count(Schema):
    """A row count and how it was obtained."""

    value: int = Field(ge=0)
    approximate: bool = Field(description="True when the value is a planner estimate.")
    method: Method


class OrgStats(Schema):
    """Counts for an organization's dashboard."""

    org_id: uuid.UUID
    members: Count
    projects: Count
    tasks: Count
    tasks_by_status: dict[TaskStatus, Count]
    exact_limit: int = Field(
        description="Counts up to this many rows are exact; larger ones are estimates."
    )
