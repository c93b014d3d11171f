"""One Grafana dashboard per domain of slo.yaml (identity, tasks...), not one per service.

A domain's panels read the same metrics the SLOs do, narrowed to its routes and its RBAC
resources, so an on-call engineer sees "tasks are slow" rather than "the API is slow".
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
                for role in ("primary", "replica")
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
