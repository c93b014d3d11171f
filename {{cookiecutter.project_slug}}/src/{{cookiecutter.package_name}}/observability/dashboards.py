"""One Grafana dashboard per domain of slo.yaml (identity, tasks...), not one per service.

A domain's panels read the same metrics the SLOs do, narrowed to its routes and its RBAC
resources, so an on-call engineer sees "tasks are slow" rather than "the API is slow". A domain
marked `jobs: true` (background jobs and webhooks) also gets the job panels: attempts by
outcome, the dead-letter ratio the worker canary is judged on, retries, timeouts and lost tries,
dead letters waiting, and the outbox relay.
"""

from __future__ import annotations

import json
from typing import Any

from {{ cookiecutter.package_name }}.observability.slo import (
    P95_RECORD,
    SLI_RECORD,
    SLOFile,
    route_regex,
    selector,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own label-based legend: label templates need doubled braces, which the template
# this file comes from reserves for itself.
AUTO = "__auto"


def _panel(
    panel_id: int, title: str, exprs: list[tuple[str, str]], *, unit: str, x: int, y: int
) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (legend, expr) in enumerate(exprs)
        ],
    }


def _job_panels(first_id: int, y: int) -> list[dict[str, Any]]:
    """Panels of the background jobs (webhook deliveries, exports, imports, AI calls).

    Each process (API pods, worker pods) exposes its own series: sums add them up, and the
    dead-letter depth, counted in the database by whichever process runs the housekeeping,
    is read with max()."""
    attempts = "sum(rate(app_jobs_total[5m]))"
    dead = "sum(rate(app_jobs_total" + selector({"outcome": "dead_letter"}) + "[5m]))"
    specs: list[tuple[str, list[tuple[str, str]], str]] = [
        (
            "Job attempts by job and outcome",
            [(AUTO, "sum by (job, outcome) (rate(app_jobs_total[5m]))")],
            "ops",
        ),
        (
            "Dead-letter ratio of job attempts (what the worker canary is judged on)",
            [("dead letters / attempts", f"{dead} / {attempts}")],
            "percentunit",
        ),
        (
            "Retries, time-limit cancellations and lost tries, by job",
            [
                (AUTO, "sum by (job) (rate(app_job_retries_total[5m]))"),
                (AUTO, "sum by (job) (rate(app_job_timeouts_total[5m]))"),
                (AUTO, "sum by (job) (rate(app_job_lost_tries_total[5m]))"),
            ],
            "ops",
        ),
        (
            "Dead letters waiting for a replay",
            [
                ("not replayed", "max(app_dead_letters_depth)"),
                (AUTO, "sum by (job) (increase(app_dead_letters_total[1h]))"),
            ],
            "short",
        ),
        (
            "Outbox relay: dispatched, queue down, already queued",
            [
                ("dispatched", "sum(rate(app_outbox_dispatched_total[5m]))"),
                ("queue unreachable", "sum(rate(app_outbox_dispatch_failures_total[5m]))"),
                ("already queued", "sum(rate(app_outbox_already_queued_total[5m]))"),
            ],
            "ops",
        ),
    ]
    return [
        _panel(first_id + i, title, exprs, unit=unit, x=12 * (i % 2), y=y + 8 * (i // 2))
        for i, (title, exprs, unit) in enumerate(specs)
    ]


def domain_dashboard(spec: SLOFile, name: str) -> dict[str, Any]:
    """The Grafana dashboard model of one domain."""
    domain = spec.domains[name]
    routes = selector({"route": route_regex(domain.routes)}, regex=("route",))
    errors = selector(
        {"route": route_regex(domain.routes), "status_class": "5xx"}, regex=("route",)
    )
    resources = "|".join(domain.resources) or "none"
    denials = selector({"action": f"({resources}):.*"}, regex=("action",))
    slos = [slo.name for slo in spec.slos if slo.domain in (name, None)]
    slo_selector = selector({"slo": "|".join(slos)}, regex=("slo",))
    domain_p95 = P95_RECORD + selector({"domain": name})
    long_window = spec.alert_windows[0].long
    panels = [
        _panel(
            1,
            "Requests per second by route",
            [(AUTO, f"sum by (route, method) (rate(app_http_requests_total{routes}[5m]))")],
            unit="reqps",
            x=0,
            y=0,
        ),
        _panel(
            2,
            "Responses by status class",
            [(AUTO, f"sum by (status_class) (rate(app_http_requests_total{routes}[5m]))")],
            unit="reqps",
            x=12,
            y=0,
        ),
        _panel(
            3,
            "p95 latency by route",
            [
                (
                    AUTO,
                    "histogram_quantile(0.95, sum by (le, route) "
                    f"(rate(app_http_request_duration_seconds_bucket{routes}[5m])))",
                ),
                ("domain p95", domain_p95),
            ],
            unit="s",
            x=0,
            y=8,
        ),
        _panel(
            4,
            "Server error ratio (5xx)",
            [
                (
                    "5xx ratio",
                    f"sum(rate(app_http_requests_total{errors}[5m])) / "
                    f"sum(rate(app_http_requests_total{routes}[5m]))",
                )
            ],
            unit="percentunit",
            x=12,
            y=8,
        ),
        _panel(
            5,
            "Permission denials by action and role",
            [
                (
                    AUTO,
                    f"sum by (action, role) (rate(app_permission_denials_total{denials}[5m]))",
                )
            ],
            unit="reqps",
            x=0,
            y=16,
        ),
        _panel(
            6,
            f"SLO error ratio over {long_window} (budget burn)",
            [(AUTO, f"{SLI_RECORD}{long_window}{slo_selector}")],
            unit="percentunit",
            x=12,
            y=16,
        ),
        _panel(
            7,
            "Database connections in use (shared by every domain)",
            [
                (f"{role} {what}", f"sum({metric}{selector({'role': role})})")
                for role in ("primary", "primary_reads", "replica")
                for what, metric in (
                    ("in use", "app_db_pool_checked_out"),
                    ("size", "app_db_pool_size"),
                )
            ],
            unit="short",
            x=0,
            y=24,
        ),
    ]
    if domain.jobs:
        panels += _job_panels(len(panels) + 1, y=32)
    return {
        "uid": f"{{ cookiecutter.project_slug }}-{name}",
        "title": f"{{ cookiecutter.project_name }} / {domain.title}",
        "tags": ["{{ cookiecutter.project_slug }}", "domain", name],
        "timezone": "utc",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def render_dashboards(spec: SLOFile) -> dict[str, str]:
    """`{"<domain>-domain.json": JSON text}` for every domain."""
    return {
        f"{name}-domain.json": json.dumps(domain_dashboard(spec, name), indent=2) + "\n"
        for name in spec.domains
    }
