"""The verdict of the load benchmark (perf/run.py `judge`) on made-up figures: a target missed
or not measured fails the gate, never passes silently. The benchmark itself is `make perf`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

PERF = Path(__file__).resolve().parents[1] / "perf"


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("perf_run", PERF / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["perf_run"] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


run = _runner()
ALL_BUDGETS: dict[str, Any] = yaml.safe_load((PERF / "budgets.yaml").read_text())
BUDGETS: dict[str, Any] = ALL_BUDGETS["perf"]
GOALS: dict[str, Any] = ALL_BUDGETS["perf_goals"]
GET_ONE = "GET /orgs/{org_id}/tasks/{task_id}"
LIST = "GET /orgs/{org_id}/tasks"


def _row(name: str, group: str | None, rate: float, p95: float, ratio: float | None) -> Any:
    return run.Row(name, group, rate, p95 / 2, p95, p95 * 1.2, errors=0, ratio=ratio)


def _passing() -> tuple[list[Any], Any]:
    """Figures that meet every budget of perf/budgets.yaml with room to spare."""
    p95 = {group: limit / 2 for group, limit in BUDGETS["p95_ms"].items()}
    ratio = {name: minimum * 1.5 for name, minimum in BUDGETS["min_ratio"].items()}
    rows = [
        _row("GET task, cache hit", GET_ONE, 1000, p95[GET_ONE], ratio["GET task, cache hit"]),
        _row("  bare /cached/items/{id}, hit", None, 1200, 5, None),
        _row("GET task, cache miss", GET_ONE, 800, p95[GET_ONE], ratio["GET task, cache miss"]),
        _row("GET task, no Redis", GET_ONE, 800, p95[GET_ONE], 0.5),
        _row(
            "list 100 tasks, first page", LIST, 300, p95[LIST], ratio["list 100 tasks, first page"]
        ),
        _row("list 100 tasks, deep page", LIST, 290, p95[LIST], 0.6),
        *(
            _row(group, group, 200, limit, None)
            for group, limit in p95.items()
            if group not in (GET_ONE, LIST)
        ),
    ]
    facts = run.Facts(
        memory={"ours": (BUDGETS["max_peak_rss_mib"] - 20, BUDGETS["max_rss_mib"] - 30)},
        cold_import_s=BUDGETS["max_cold_import_s"] / 2,
        loadgen_rate=1200 * BUDGETS["loadgen_min_headroom"] * 2,
        loadgen_cpu=BUDGETS["max_loadgen_cpu"] / 2,
        cache_hit_share={"GET task, cache hit": 1.0, "GET task, cache miss": 0.0},
        seed_s_per_million=BUDGETS["max_seed_s_per_million"] / 2,
    )
    return rows, facts


def test_figures_within_every_budget_pass() -> None:
    rows, facts = _passing()
    assert run.judge(rows, facts, BUDGETS) == []
    assert {r.verdict for r in rows if r.group is not None} == {"ok"}


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        *((name, f"not measured: ratio of {name!r}") for name in BUDGETS["min_ratio"]),
        ("list 100 tasks, deep page", "not measured: first or deep page"),
        ("POST /orgs/{org_id}/tasks", "not measured: route group 'POST /orgs/{org_id}/tasks'"),
    ],
)
def test_a_scenario_not_measured_is_a_miss(missing: str, expected: str) -> None:
    rows, facts = _passing()
    rows = [r for r in rows if r.scenario != missing]
    assert expected in run.judge(rows, facts, BUDGETS)


def test_a_ratio_not_measured_is_a_miss() -> None:
    rows, facts = _passing()
    rows[0].ratio = None  # e.g. the bare app's run failed
    assert "not measured: ratio of 'GET task, cache hit'" in run.judge(rows, facts, BUDGETS)
    assert rows[0].verdict == "MISS"


def test_a_route_group_over_its_p95_budget_fails_its_rows() -> None:
    rows, facts = _passing()
    deep = next(r for r in rows if r.scenario == "list 100 tasks, deep page")
    deep.p95 = BUDGETS["p95_ms"][LIST] + 1
    misses = run.judge(rows, facts, BUDGETS)
    assert any(f"({LIST})" in m and "deep page" in m for m in misses)
    assert deep.verdict == "MISS"


def test_a_deep_page_slower_than_the_first_fails() -> None:
    rows, facts = _passing()
    first = next(r for r in rows if r.scenario == "list 100 tasks, first page")
    deep = next(r for r in rows if r.scenario == "list 100 tasks, deep page")
    deep.p95 = first.p95 * BUDGETS["deep_page_p95_factor"] * 1.01
    assert any(m.startswith("deep page p95") for m in run.judge(rows, facts, BUDGETS))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("memory", {"ours": (BUDGETS["max_peak_rss_mib"] + 1, 100)}, "ours: peak memory"),
        ("memory", {"nocache": (100, BUDGETS["max_rss_mib"] + 1)}, "nocache: memory after"),
        ("cold_import_s", BUDGETS["max_cold_import_s"] + 0.1, "cold import"),
        ("loadgen_rate", 1500.0, "load generator"),
        ("loadgen_rate", None, "not measured: load generator"),
        ("loadgen_cpu", 0.99, "load generator: wrk used"),
        ("cache_hit_share", {"GET task, cache hit": 0.5, "GET task, cache miss": 0.0}, "hit only"),
        ("cache_hit_share", {"GET task, cache hit": 1.0, "GET task, cache miss": 0.5}, "miss scen"),
        ("cache_hit_share", {}, "not measured: cache hit shares"),
        ("seed_s_per_million", BUDGETS["max_seed_s_per_million"] + 1, "seed:"),
    ],
)
def test_each_process_and_generator_check_can_fail(field: str, value: Any, expected: str) -> None:
    rows, facts = _passing()
    setattr(facts, field, value)
    misses = run.judge(rows, facts, BUDGETS)
    assert any(expected in m for m in misses), misses


def test_errors_and_empty_runs_fail() -> None:
    rows, facts = _passing()
    rows[1].errors = 3  # a bare row: its errors spoil the ratio too
    rows[2].rate = 0.0
    misses = run.judge(rows, facts, BUDGETS)
    assert any(m.startswith("errors during the load: bare") for m in misses)
    assert any("no request of 'GET task, cache miss' completed" in m for m in misses)


def _meeting_goals() -> tuple[list[Any], Any]:
    """The passing figures, raised to meet every goal as well."""
    rows, facts = _passing()
    for row in rows:
        if row.scenario in GOALS["min_ratio"]:
            row.ratio = GOALS["min_ratio"][row.scenario] * 1.5
    facts.cold_import_s = min(BUDGETS["max_cold_import_s"], GOALS["max_cold_import_s"]) / 2
    return rows, facts


def test_goals_are_reported_apart_from_the_gate() -> None:
    rows, facts = _meeting_goals()
    assert run.unmet_goals(rows, facts, BUDGETS, GOALS) == []
    hit = next(r for r in rows if r.scenario == "GET task, cache hit")
    gate, goal = BUDGETS["min_ratio"][hit.scenario], GOALS["min_ratio"][hit.scenario]
    hit.ratio = (gate + goal) / 2  # passes the gate, short of the goal
    assert run.judge(rows, facts, BUDGETS) == []
    unmet = run.unmet_goals(rows, facts, BUDGETS, GOALS)
    assert unmet == [f"GET task, cache hit: {hit.ratio:.2f}x the bare app < {goal}x"]
    assert hit.verdict == "ok"  # a goal does not mark the row


def test_the_fastapi_floor_is_read_per_scenario_and_judged_by_nothing() -> None:
    rows, facts = _passing()
    hit = rows.index(next(r for r in rows if r.scenario == "GET task, cache hit"))
    floor = _row("  FastAPI floor /cached/items/{id}, hit", None, 600, 9, 0.01)
    rows.insert(hit + 2, floor)  # after the scenario's bare row, as table_rows puts it
    rows[hit].floor_ratio = floor.ratio  # and on the scenario's row, as table_rows sets it
    facts.memory["floor"] = (BUDGETS["max_peak_rss_mib"] * 2, BUDGETS["max_rss_mib"] * 2)
    assert run.floor_ratios(rows) == {"GET task, cache hit": (rows[hit].ratio, 0.01)}
    # A reference, like the bare app: its ratio, memory and missing group fail no budget.
    assert run.judge(rows, facts, BUDGETS) == []
    assert floor.verdict == ""
