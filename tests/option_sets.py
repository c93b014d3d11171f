"""The answer sets the template is baked with; each one is a row of the bake tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OptionSet:
    """Answers passed to cookiecutter, plus what the generated project should look like."""

    name: str
    extra_context: dict[str, str] = field(default_factory=dict)
    slug: str = "acme-service"
    package_name: str = "acme_service"
    license: str = "MIT"
    github_actions: bool = True
    deploy: bool = True
    # Run the generated project's own checks (uv sync, ruff, mypy, alembic, pytest)?
    full_checks: bool = True
    # Redis logical database for the generated project's tests; one per set so runs never mix.
    redis_db: int = 1


OPTION_SETS: tuple[OptionSet, ...] = (
    OptionSet(name="default"),
    OptionSet(
        name="alt",
        extra_context={
            "project_name": "Billing Core",
            "package_name": "billing_core",
            "license": "Apache-2.0",
            "include_github_actions": "n",
            "include_deploy": "n",
            "python_version": "3.12",
        },
        slug="billing-core",
        package_name="billing_core",
        license="Apache-2.0",
        github_actions=False,
        deploy=False,
        redis_db=2,
    ),
    # Structure only: a name that needs slugifying, the proprietary licence, CI without deploy.
    OptionSet(
        name="unicode-name",
        extra_context={
            "project_name": "Café Ledger API",
            "license": "Proprietary",
            "include_deploy": "n",
            "python_version": "3.13",
        },
        slug="cafe-ledger-api",
        package_name="cafe_ledger_api",
        license="Proprietary",
        github_actions=True,
        deploy=False,
        full_checks=False,
        redis_db=3,
    ),
)

FULL_CHECK_SETS: tuple[OptionSet, ...] = tuple(s for s in OPTION_SETS if s.full_checks)

# A line of each licence text, to check that the right one became LICENSE.
LICENSE_MARKERS: dict[str, str] = {
    "MIT": "MIT License",
    "Apache-2.0": "Apache License",
    "Proprietary": "All rights reserved.",
}
