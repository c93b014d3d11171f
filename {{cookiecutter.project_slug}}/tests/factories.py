"""Test data that is valid but weird: Unicode emails, leap days, long and emoji titles.

Built with polyfactory on the API's own request schemas, so the data always satisfies them.
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import date
from typing import Any

from polyfactory import Use
from polyfactory.factories.pydantic_factory import ModelFactory

from {{ cookiecutter.package_name }}.resources.projects.schemas import ProjectCreate
from {{ cookiecutter.package_name }}.resources.tasks.schemas import TaskCreate

_counter = itertools.count()
_rng = random.Random(20240229)

WEIRD_EMAILS = [
    "ñandú.{n}@exämple.com",
    "用户{n}@例子.广告",
    "O'Brien+{n}@Example.ORG",
    "zoë.{n}@xn--bcher-kva.example",
    "Δοκιμή{n}@παράδειγμα.δοκιμή",
]
WEIRD_TITLES = [
    "Ship it 🚀🎉",
    "Ünïcödé ☃ and RTL עִבְרִית",
    "Quotes \" ' and a, comma",
    "x" * 500,  # the maximum length
    "Zero\u200bwidth joiner 👩‍💻",
    "Line\nbreak",
]
LEAP_DAYS = [date(2024, 2, 29), date(2028, 2, 29), date(2000, 2, 29), date(2400, 2, 29)]


def weird_email() -> str:
    """A valid, unique, decidedly non-ASCII email address."""
    n = next(_counter)
    return WEIRD_EMAILS[n % len(WEIRD_EMAILS)].format(n=n)


class ProjectFactory(ModelFactory[ProjectCreate]):
    """Project payloads with Unicode names."""

    __random__ = _rng
    name = Use(lambda: f"Prøject {next(_counter)} ✨")
    description = Use(lambda: _rng.choice([None, "", "Multi\nline\ndescription 📋"]))


class TaskFactory(ModelFactory[TaskCreate]):
    """Task payloads with emoji and maximum-length titles and leap-day due dates."""

    __random__ = _rng
    title = Use(lambda: _rng.choice(WEIRD_TITLES))
    due_date = Use(lambda: _rng.choice([None, *LEAP_DAYS]))
    external_key = None
    assignee_id = None

    @classmethod
    def payload(cls, project_id: uuid.UUID | str, **overrides: Any) -> dict[str, Any]:
        """A JSON-ready body for POST /tasks."""
        task = cls.build(project_id=uuid.UUID(str(project_id)), **overrides)
        return task.model_dump(mode="json", exclude_none=True)
