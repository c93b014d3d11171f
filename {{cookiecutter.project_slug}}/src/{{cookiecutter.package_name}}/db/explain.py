"""EXPLAIN budgets: run the critical queries' real SQL through the planner on a seeded database.

Each scenario calls the repository code the API uses; the SQL it emits is captured and sent to
`EXPLAIN (FORMAT JSON)`. A scenario fails when the planner's total cost exceeds its budget in
perf/budgets.yaml, when its plan has a sequential scan on a large table, or when it sent no
query or got no plan back (a cost of 0 would pass any budget without checking anything).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.pagination import PageRequest, Position
from {{ cookiecutter.package_name }}.resources.orgs.model import Membership
from {{ cookiecutter.package_name }}.resources.projects.repository import ProjectRepository
from {{ cookiecutter.package_name }}.resources.tasks.model import Task, TaskStatus
from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository
from {{ cookiecutter.package_name }}.security.tenancy import membership_role

PAGE = 100


@dataclass(frozen=True, slots=True)
class Subject:
    """Real ids from the seeded database for the scenarios to look up."""

    org_id: uuid.UUID
    user_id: uuid.UUID
    project_id: uuid.UUID
    task_id: uuid.UUID
    external_key: str
    deep: Position


Scenario = Callable[[AsyncSession, Subject], Awaitable[Any]]

SCENARIOS: dict[str, Scenario] = {
    "tasks.first_page": lambda s, x: TaskRepository(s, x.org_id).page(PageRequest(None, PAGE)),
    "tasks.deep_page": lambda s, x: TaskRepository(s, x.org_id).page(PageRequest(x.deep, PAGE)),
    "tasks.project_page": lambda s, x: TaskRepository(s, x.org_id).page(
        PageRequest(None, PAGE), project_id=x.project_id
    ),
    "tasks.status_page": lambda s, x: TaskRepository(s, x.org_id).page(
        PageRequest(None, PAGE), status=TaskStatus.in_progress
    ),
    "tasks.get": lambda s, x: TaskRepository(s, x.org_id).read(x.task_id),
    "tasks.by_external_key": lambda s, x: TaskRepository(s, x.org_id).by_key(x.external_key),
    "projects.first_page": lambda s, x: ProjectRepository(s, x.org_id).page(
        PageRequest(None, PAGE)
    ),
    "membership.role": lambda s, x: membership_role(s, x.org_id, x.user_id),
}


@dataclass
class Outcome:
    """One scenario's verdict."""

    name: str
    cost: float
    budget: float
    seq_scans: list[str] = field(default_factory=list)
    queries: int = 0  # SELECTs the scenario sent
    plans: int = 0  # plans EXPLAIN returned for them

    @property
    def problem(self) -> str | None:
        """Why the scenario fails, or None when it passes."""
        if self.queries == 0:
            return "NO QUERY"
        if self.plans < self.queries:
            return "NO PLAN"
        if self.seq_scans:
            return "SEQ SCAN on " + ", ".join(self.seq_scans)
        if self.cost > self.budget:
            return "OVER BUDGET"
        return None

    @property
    def ok(self) -> bool:
        """Planned, within budget and no sequential scan on a large table."""
        return self.problem is None


def load_budgets(path: Path) -> tuple[dict[str, float], int]:
    """`({scenario: max_cost}, large_table_rows)` from perf/budgets.yaml."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))["explain"]
    budgets = {name: float(spec["max_cost"]) for name, spec in data["queries"].items()}
    return budgets, int(data["large_table_rows"])


async def _large_tables(session: AsyncSession, min_rows: int) -> set[str]:
    rows = await session.execute(
        text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples >= :n"
            " AND relnamespace = 'public'::regnamespace"
        ),
        {"n": min_rows},
    )
    return {name for (name,) in rows}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _subject(session: AsyncSession) -> Subject:
    """The organization with the most tasks, and a position 90% deep into its task list."""
    org_id = await session.scalar(
        select(Task.org_id).group_by(Task.org_id).order_by(text("count(*) DESC")).limit(1)
    )
    if org_id is None:
        raise LookupError("no tasks: seed the database first (PACKAGE seed --tasks 1000000)")
    total = await session.scalar(
        select(text("count(*)")).select_from(Task).where(Task.org_id == org_id)
    )
    deep = (
        await session.execute(
            select(Task.created_at, Task.id)
            .where(Task.org_id == org_id)
            .order_by(Task.created_at.desc(), Task.id.desc())
            .offset(int((total or 1) * 0.9))
            .limit(1)
        )
    ).one()
    task = (await session.scalars(select(Task).where(Task.org_id == org_id).limit(1))).one()
    user_id = await session.scalar(select(Membership.user_id).where(Membership.org_id == org_id))
    return Subject(
        org_id=org_id,
        user_id=user_id or uuid.uuid4(),
        project_id=task.project_id,
        task_id=task.id,
        external_key=task.external_key or "",
        deep=Position(deep.created_at, deep.id),
    )


async def explain_check(
    engine: AsyncEngine, budgets_path: Path, scenarios: Mapping[str, Scenario] = SCENARIOS
) -> list[Outcome]:
    """Run every scenario, EXPLAIN what it sent, and judge it against its budget."""
    budgets, large_table_rows = load_budgets(budgets_path)
    missing = set(scenarios) - set(budgets)
    if missing:
        raise KeyError(f"no EXPLAIN budget for {sorted(missing)} in {budgets_path}")
    async with AsyncSession(engine) as session:
        subject = await _subject(session)
        large_tables = await _large_tables(session, large_table_rows)
    outcomes: list[Outcome] = []
    for name, scenario in scenarios.items():
        captured: list[tuple[str, Any]] = []

        def capture(
            _c: Any, _cur: Any, statement: str, parameters: Any, *_: Any, sink: list[Any] = captured
        ) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                sink.append((statement, parameters))

        async with AsyncSession(engine) as session:
            event.listen(engine.sync_engine, "before_cursor_execute", capture)
            try:
                await scenario(session, subject)
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", capture)
            outcome = Outcome(name, 0.0, budgets[name], queries=len(captured))
            for statement, parameters in captured:
                result = await session.connection()
                raw = await result.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
                document = raw.scalar_one()
                parsed = document if isinstance(document, list) else yaml.safe_load(document)
                plan = parsed[0].get("Plan") if parsed else None
                if not plan or "Total Cost" not in plan:
                    continue
                outcome.plans += 1
                outcome.cost = max(outcome.cost, float(plan["Total Cost"]))
                outcome.seq_scans += [
                    node["Relation Name"]
                    for node in _nodes(plan)
                    if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in large_tables
                ]
        outcomes.append(outcome)
    return outcomes


def render(outcomes: list[Outcome]) -> str:
    """A plain table: query, cost, budget, verdict."""
    lines = [f"{'query':<24} {'cost':>10} {'budget':>10}  verdict"]
    for o in outcomes:
        lines.append(f"{o.name:<24} {o.cost:>10.1f} {o.budget:>10.1f}  {o.problem or 'ok'}")
    return "\n".join(lines)
