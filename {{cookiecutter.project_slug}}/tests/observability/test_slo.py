"""slo.yaml renders rules that promtool accepts and unit-tests; dashboards read real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.app import api_routes, create_app
from {{ cookiecutter.package_name }}.cli import DASHBOARDS_DIR, RULES_FILE, SLO_FILE, app
from {{ cookiecutter.package_name }}.observability.dashboards import render_dashboards
from {{ cookiecutter.package_name }}.observability.slo import (
    SLOError,
    dump_yaml,
    load_slos,
    render_rule_tests,
    render_rules,
    route_regex,
)

from ..conftest import make_settings, running

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian/Ubuntu: apt-get install prometheus)"
)
METRIC = re.compile(r"\b(app_[a-z0-9_]+|slo:[a-z0-9_:]+)")


needs_deploy = pytest.mark.skipif(
    not RULES_FILE.parent.parent.is_dir(), reason="deploy/ not generated (include_deploy=n)"
)


@needs_deploy
def test_committed_rules_are_what_slo_yaml_renders() -> None:
    spec = load_slos(SLO_FILE)
    assert RULES_FILE.read_text() == dump_yaml(render_rules(spec)), "run `make slo-rules`"
    tests = RULES_FILE.with_name("rules.test.yaml")
    assert tests.read_text() == dump_yaml(render_rule_tests(spec, "rules.yaml"))


@needs_deploy
def test_committed_dashboards_are_what_slo_yaml_renders() -> None:
    rendered = render_dashboards(load_slos(SLO_FILE))
    assert sorted(p.name for p in DASHBOARDS_DIR.glob("*.json")) == sorted(rendered)
    for name, text in rendered.items():
        assert (DASHBOARDS_DIR / name).read_text() == text, "run `make dashboards`"
        json.loads(text)


@needs_promtool
def test_promtool_checks_and_unit_tests_the_rendered_rules(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["slo-rules", "--output", str(tmp_path / "rules.yaml")])
    assert result.exit_code == 0, result.output
    for args in (["check", "rules", "rules.yaml"], ["test", "rules", "rules.test.yaml"]):
        done = subprocess.run(  # noqa: S603 - fixed arguments
            [str(PROMTOOL), *args], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_promtool_tests_fail_when_an_alert_cannot_fire(tmp_path: Path) -> None:
    """The generated unit tests are not vacuous: with alerts that never fire, they fail."""
    spec = load_slos(SLO_FILE)
    rules = render_rules(spec)
    for rule in rules["groups"][1]["rules"]:
        rule["expr"] = f"({rule['expr']}) and on() vector(0) > 1"
    (tmp_path / "rules.yaml").write_text(dump_yaml(rules))
    (tmp_path / "rules.test.yaml").write_text(dump_yaml(render_rule_tests(spec, "rules.yaml")))
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [str(PROMTOOL), "test", "rules", "rules.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "burning" in done.stdout + done.stderr


def test_rules_keep_the_names_the_canary_analysis_queries() -> None:
    text = dump_yaml(render_rules(load_slos(SLO_FILE)))
    assert 'app_http_requests_total{status_class="5xx",route!~"/health/.*"}' in text
    assert "app_http_request_duration_seconds_bucket{route=~" in text


def test_probes_are_not_service_traffic_for_the_slis() -> None:
    """Every all-route ratio leaves /health/* out (the promtool test proves it: its healthy
    case has a readiness probe failing every time, and must not page)."""
    rules = render_rules(load_slos(SLO_FILE))
    exprs = [r["expr"] for r in rules["groups"][0]["rules"] if "slo" in r.get("labels", {})]
    all_routes = [e for e in exprs if "route=~" not in e]
    assert all_routes
    for expr in all_routes:
        for selected in re.findall(r"app_http_requests_total(\S*?)\[", expr):
            assert 'route!~"/health/.*"' in selected, expr


def test_the_jobs_dashboard_shows_job_outcomes_dead_letters_and_the_outbox() -> None:
    dashboard = json.loads(render_dashboards(load_slos(SLO_FILE))["jobs-domain.json"])
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for metric in (
        "app_jobs_total",
        "app_job_retries_total",
        "app_job_timeouts_total",
        "app_job_lost_tries_total",
        "app_dead_letters_depth",
        "app_outbox_dispatch_failures_total",
    ):
        assert metric in exprs
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(titles) == len(set(titles))
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(titles)


def test_route_groups_match_route_templates_and_do_not_overlap() -> None:
    spec = load_slos(SLO_FILE)
    routes = {key.split(" ", 1)[1] for key in api_routes(create_app(make_settings("sqlite://")))}
    owners: dict[str, list[str]] = {}
    for name, domain in spec.domains.items():
        regex = re.compile(route_regex(domain.routes))
        for route in routes:
            if regex.fullmatch(route):  # PromQL regexes are anchored at both ends
                owners.setdefault(route, []).append(name)
    assert owners["/orgs/{org_id}/tasks/{task_id}"] == ["tasks"]
    assert owners["/orgs/{org_id}/members/{user_id}"] == ["identity"]
    assert owners["/auth/token"] == ["identity"]
    assert "/health/live" not in owners
    assert all(len(found) == 1 for found in owners.values()), owners


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objective": 0.5}, "can never be reached"),
        ({"domain": "billing"}, "unknown domain 'billing'"),
        ({"threshold_seconds": 0.3}, "must be a histogram bucket bound"),
        ({"sli": "happiness"}, "slos.1.sli"),
    ],
)
def test_a_bad_slo_file_is_refused_with_a_clear_message(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    raw = yaml.safe_load(SLO_FILE.read_text())
    raw["slos"][1].update(change)
    bad = tmp_path / "slo.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(SLOError, match=re.escape(message)):
        load_slos(bad)
    result = CliRunner().invoke(app, ["slo-rules", "--slo", str(bad), "--output", "-"])
    assert result.exit_code == 2
    assert message in result.output


def test_route_patterns_refuse_regex_syntax() -> None:
    with pytest.raises(SLOError, match="route pattern"):
        route_regex(["/orgs/(a|b)"])


async def _emitted_metric_names(database_url: str) -> set[str]:
    """Every sample name the service exposes, scraped after some traffic."""
    async with running(create_app(make_settings(database_url))) as client:
        await client.get("/health/live")
        response = await client.get("/metrics")
    names: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        names.add(family.name)
        names.update({f"{family.name}{s}" for s in ("_total", "_bucket", "_count", "_sum")})
    return names


async def test_dashboards_and_rules_reference_only_emitted_metrics(database_url: str) -> None:
    emitted = await _emitted_metric_names(database_url)
    spec = load_slos(SLO_FILE)
    rules = render_rules(spec)
    recorded = {
        rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule
    }
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(METRIC.findall(rule["expr"])) <= emitted | recorded, rule["expr"]
    for path, text in render_dashboards(spec).items():
        dashboard = json.loads(text)
        exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
        referenced = {name for expr in exprs for name in METRIC.findall(expr)}
        assert referenced, path
        assert referenced <= emitted | recorded, (path, referenced - emitted - recorded)
        assert {"app_http_requests_total", "app_permission_denials_total"} <= referenced
