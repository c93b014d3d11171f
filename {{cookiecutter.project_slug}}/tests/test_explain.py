"""`explain-check` on a seeded scratch database: the budgets hold, and every failure is caught.

The scratch database is a copy of the migrated template with 20,000 tasks in one organization
(large by the test budgets' `large_table_rows`), so the planner's choices are the real ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT
from {{ cookiecutter.package_name }}.db.explain import SCENARIOS, Subject, explain_check, render
from {{ cookiecutter.package_name }}.db.seed import seed

from .conftest import _admin_dsn, async_url, migrated_copy

BUDGETS = PROJECT_ROOT / "perf" / "budgets.yaml"
TASKS = 20_000


@pytest.fixture(scope="module")
def scratch_database(run_uid: str, worker_id: str) -> Iterator[str]:
    """A migrated database of this run for this module alone (its indexes get dropped)."""
    with migrated_copy(run_uid, f"{worker_id}_explain") as name:
        yield name


@pytest.fixture(scope="module")
async def seeded(scratch_database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the scratch database, seeded with TASKS tasks and analysed."""
    engine = create_async_engine(async_url(scratch_database))
    unused = "not-used"  # pragma: allowlist secret - nobody logs in to this organization
    await seed(engine, tasks=TASKS, projects=20, password_hash=unused)
    yield engine
    await engine.dispose()


def _budgets(tmp_path: Path, **changes: Any) -> Path:
    """perf/budgets.yaml with a smaller large-table threshold, and `changes` to its budgets."""
    data = yaml.safe_load(BUDGETS.read_text(encoding="utf-8"))
    data["explain"]["large_table_rows"] = TASKS // 4
    for name, budget in changes.items():
        data["explain"]["queries"][name] = {"max_cost": budget}
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def test_the_critical_queries_meet_their_budgets(seeded: AsyncEngine, tmp_path: Path) -> None:
    outcomes = await explain_check(seeded, _budgets(tmp_path))
    assert [o.name for o in outcomes] == list(SCENARIOS)
    assert all(o.ok for o in outcomes), render(outcomes)
    assert all(o.queries >= 1 and o.cost > 0 for o in outcomes), render(outcomes)


def test_a_cost_over_budget_fails_the_command(
    scratch_database: str, seeded: AsyncEngine, tmp_path: Path
) -> None:
    """The CLI prints the table and exits 1 when a query costs more than its budget."""
    budgets = _budgets(tmp_path, **{"tasks.get": 0.5})
    env = {**os.environ, "{{ cookiecutter.package_name|upper }}_DATABASE_URL": async_url(scratch_database)}
    result = subprocess.run(  # noqa: S603 - the project's own command
        [
            str(Path(sys.executable).with_name("{{ cookiecutter.package_name }}")),
            "explain-check",
            "--budgets",
            str(budgets),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert lines["tasks.get"].endswith("OVER BUDGET"), result.stdout
    assert lines["tasks.first_page"].endswith("ok"), result.stdout


async def test_a_sequential_scan_on_a_large_table_fails(
    scratch_database: str, seeded: AsyncEngine, tmp_path: Path
) -> None:
    """Without the index the org's task list is read by a sequential scan: caught."""
    dsn = _admin_dsn(scratch_database)
    with psycopg.connect(dsn, autocommit=True) as conn:
        definition = conn.execute(
            "SELECT pg_get_indexdef('ix_tasks_org_created'::regclass)"
        ).fetchone()
        assert definition is not None
        conn.execute("DROP INDEX ix_tasks_org_created")
    try:
        outcomes = {o.name: o for o in await explain_check(seeded, _budgets(tmp_path))}
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(definition[0])
    first_page = outcomes["tasks.first_page"]
    assert not first_page.ok
    assert first_page.problem == "SEQ SCAN on tasks", render(list(outcomes.values()))


async def test_a_scenario_that_sends_no_query_fails(seeded: AsyncEngine, tmp_path: Path) -> None:
    """A cost of 0 is not a pass: a scenario answered without SQL checked nothing."""

    async def from_a_cache(_session: AsyncSession, _subject: Subject) -> None:
        return None

    scenarios = {"tasks.get": SCENARIOS["tasks.get"], "cached.get": from_a_cache}
    outcomes = await explain_check(
        seeded, _budgets(tmp_path, **{"cached.get": 50}), scenarios=scenarios
    )
    verdicts = {o.name: o.problem for o in outcomes}
    assert verdicts == {"tasks.get": None, "cached.get": "NO QUERY"}
    assert "NO QUERY" in render(outcomes)
