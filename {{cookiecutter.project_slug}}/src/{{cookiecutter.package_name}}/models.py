"""Every ORM model, imported once so that `Base.metadata` is complete (alembic, tests)."""

from {{ cookiecutter.package_name }}.cache.backstop import CacheInvalidation
from {{ cookiecutter.package_name }}.db.base import Base
from {{ cookiecutter.package_name }}.idempotency import IdempotencyRecord
from {{ cookiecutter.package_name }}.jobs.models import JOB_MODELS  # noqa: F401 - the jobs package's tables
from {{ cookiecutter.package_name }}.resources.orgs.model import Membership, Organization
from {{ cookiecutter.package_name }}.resources.projects.model import Project
from {{ cookiecutter.package_name }}.resources.tasks.model import Task
from {{ cookiecutter.package_name }}.resources.users.model import User

__all__ = [
    "Base",
    "CacheInvalidation",
    "IdempotencyRecord",
    "Membership",
    "Organization",
    "Project",
    "Task",
    "User",
]
