"""`make migrations-lint`: squawk passes the project's migrations and fails a locking hazard."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT

HAZARD = '''"""A hazard: a plain CREATE INDEX on a table in use blocks its writes while it builds.

Revision ID: 9999
Revises: {head}
"""

from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_title", "tasks", ["title"])


def downgrade() -> None:
    op.drop_index("ix_tasks_title", table_name="tasks")
'''


def _linter() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "migrations_lint", PROJECT_ROOT / "scripts" / "migrations_lint.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migrations_pass_squawk(tmp_path: Path) -> None:
    result = _linter().lint(PROJECT_ROOT / "migrations", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    revisions = sorted(p.name for p in (PROJECT_ROOT / "migrations" / "versions").glob("*.py"))
    assert len(list(tmp_path.glob("*.sql"))) == len(revisions)  # every revision was linted


def test_a_blocking_index_build_fails_the_lint(tmp_path: Path) -> None:
    linter = _linter()
    migrations = tmp_path / "migrations"
    shutil.copytree(
        PROJECT_ROOT / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__")
    )
    head = sorted(p.name for p in (migrations / "versions").glob("*.py"))[-1].split("_")[1]
    (migrations / "versions" / "29991231_9999_hazard.py").write_text(HAZARD.format(head=head))
    result = linter.lint(migrations, tmp_path / "sql")
    assert result.returncode != 0
    assert "require-concurrent-index-creation" in result.stdout + result.stderr
