"""slo.yaml -> Prometheus recording rules, multi-window multi-burn-rate alerts, promtool tests.

Every SLO becomes an error ratio (the share of "bad" events) recorded over each alert window
as `slo:sli_error:ratio_rate<window>{slo="..."}`; an alert pages when a long and a short window
both burn the error budget `burn_rate` times faster than the period allows. Latency SLOs read
the request-duration histogram of their domain's routes: a request slower than the threshold
is a bad event, so "95% within 500 ms" is "p95 below 500 ms". Probes (`/health/*`) are not
service traffic: the all-route ratios leave them out, so a flapping readiness check neither
burns nor hides the budget.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from prometheus_client.utils import floatToGoString
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from {{ cookiecutter.package_name }}.observability.metrics import HTTP_DURATION_BUCKETS

DURATION = r"^[1-9][0-9]*[smhdw]$"
ALERT_NAME = "ErrorBudgetBurn"
SLI_RECORD = "slo:sli_error:ratio_rate"
P95_RECORD = "slo:http_request_duration_seconds:p95_rate5m"
RUNBOOK = "README.md, section 'SLOs and alerts'"
# Route templates of the probes, left out of the all-route SLIs.
PROBE_ROUTES = "/health/.*"


def go_float(value: float) -> str:
    """A float as prometheus_client writes it in an `le` label ("0.5", "1.0", "+Inf")."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class SLOError(ValueError):
    """slo.yaml is missing or invalid; the message says where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AlertWindow(_Strict):
    """A long/short window pair and the burn rate that pages over it."""

    long: str = Field(pattern=DURATION)
    short: str = Field(pattern=DURATION)
    burn_rate: float = Field(gt=1)
    for_: str = Field(alias="for", pattern=DURATION)
    severity: str = Field(pattern=r"^[a-z]+$")


class Domain(_Strict):
    """A group of routes (and RBAC resources) that a dashboard and latency SLOs are about;
    `jobs: true` adds the background-job panels (outcomes, dead letters, outbox) to it."""

    title: str
    routes: list[str] = Field(min_length=1)
    resources: list[str] = []
    jobs: bool = False


class SLO(_Strict):
    """One objective: an SLI, the share of good events to keep, and its scope."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str
    sli: Literal["error_rate", "latency", "permission_denial_rate"]
    objective: float = Field(gt=0, lt=1)
    domain: str | None = None
    threshold_seconds: float | None = None


class SLOFile(_Strict):
    """The whole of slo.yaml."""

    version: Literal[1]
    period: str = Field(pattern=DURATION)
    alert_windows: list[AlertWindow] = Field(min_length=1)
    domains: dict[str, Domain]
    slos: list[SLO] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [slo.name for slo in self.slos]
        if len(set(names)) != len(names):
            raise ValueError(f"SLO names must be unique: {names}")
        for slo in self.slos:
            if slo.domain is not None and slo.domain not in self.domains:
                raise ValueError(f"SLO {slo.name}: unknown domain {slo.domain!r}")
            if slo.sli == "latency":
                if slo.domain is None or slo.threshold_seconds is None:
                    raise ValueError(f"SLO {slo.name}: latency needs domain and threshold_seconds")
                if slo.threshold_seconds not in HTTP_DURATION_BUCKETS:
                    raise ValueError(
                        f"SLO {slo.name}: threshold_seconds must be a histogram bucket bound, "
                        f"one of {list(HTTP_DURATION_BUCKETS)}"
                    )
            for window in self.alert_windows:
                if window.burn_rate * (1 - slo.objective) >= 1:
                    raise ValueError(
                        f"SLO {slo.name}: burn rate {window.burn_rate} over a budget of "
                        f"{1 - slo.objective:.4g} can never be reached; lower one of them"
                    )
        return self


def load_slos(path: Path) -> SLOFile:
    """Read and validate slo.yaml."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return SLOFile.model_validate(raw)
    except OSError as exc:
        raise SLOError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SLOError(f"{path}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SLOError(f"{path}: {problems}") from None


def route_regex(patterns: list[str]) -> str:
    """A PromQL (RE2, fully anchored) regex matching route templates against `*` patterns.

    Braces and dots become character classes, so the regex needs no backslashes inside the
    PromQL string."""
    alternatives = []
    for pattern in patterns:
        if not re.fullmatch(r"[A-Za-z0-9_/{}.*-]+", pattern):
            raise SLOError(f"route pattern {pattern!r}: use route template characters and '*'")
        out = ""
        for char in pattern:
            out += {"*": ".*", "{": "[{]", "}": "[}]", ".": "[.]"}.get(char, char)
        alternatives.append(out)
    return "|".join(alternatives)


def selector(
    labels: dict[str, str], *, regex: tuple[str, ...] = (), exclude: dict[str, str] | None = None
) -> str:
    """A PromQL label selector; keys in `regex` match with `=~`, `exclude` ones with `!~`.

    Built by concatenation: this file is a template source, where doubled braces are reserved.
    """
    matchers = [f'{key}{"=~" if key in regex else "="}"{value}"' for key, value in labels.items()]
    matchers += [f'{key}!~"{value}"' for key, value in (exclude or {}).items()]
    return "{" + ",".join(matchers) + "}"


NOT_PROBES = {"route": PROBE_ROUTES}


def _windows(spec: SLOFile) -> list[str]:
    seen: dict[str, None] = {}
    for window in spec.alert_windows:
        seen[window.short] = None
        seen[window.long] = None
    return list(seen)


def _latency_scope(spec: SLOFile, slo: SLO) -> tuple[Domain, str]:
    """A latency SLO's domain and the `le` label value of its threshold bucket."""
    if slo.domain is None or slo.threshold_seconds is None:
        raise SLOError(f"SLO {slo.name}: latency needs domain and threshold_seconds")
    return spec.domains[slo.domain], go_float(slo.threshold_seconds)


def sli_error_ratio(spec: SLOFile, slo: SLO, window: str) -> str:
    """PromQL: the share of bad events of `slo` over `window`."""
    served = "app_http_requests_total" + selector({}, exclude=NOT_PROBES)
    requests = f"sum(rate({served}[{window}]))"
    if slo.sli == "error_rate":
        errors = "app_http_requests_total" + selector({"status_class": "5xx"}, exclude=NOT_PROBES)
        return f"sum(rate({errors}[{window}])) / {requests}"
    if slo.sli == "permission_denial_rate":
        return f"sum(rate(app_permission_denials_total[{window}])) / {requests}"
    domain, le = _latency_scope(spec, slo)
    routes = route_regex(domain.routes)
    in_domain = {"route": routes}
    fast = "app_http_request_duration_seconds_bucket" + selector(
        {**in_domain, "le": le}, regex=("route",)
    )
    total = "app_http_request_duration_seconds_count" + selector(in_domain, regex=("route",))
    return f"1 - (sum(rate({fast}[{window}])) / sum(rate({total}[{window}])))"


def p95_latency(spec: SLOFile, domain: str, window: str = "5m") -> str:
    """PromQL: the p95 request duration of a domain's routes."""
    routes = route_regex(spec.domains[domain].routes)
    buckets = "app_http_request_duration_seconds_bucket" + selector(
        {"route": routes}, regex=("route",)
    )
    return f"histogram_quantile(0.95, sum by (le) (rate({buckets}[{window}])))"


def _threshold(window: AlertWindow, slo: SLO) -> str:
    return f"{window.burn_rate * (1 - slo.objective):.6g}"


def _alert_labels(window: AlertWindow, slo: SLO) -> dict[str, str]:
    return {"slo": slo.name, "severity": window.severity, "window": f"{window.long}/{window.short}"}


def _alert_annotations(spec: SLOFile, window: AlertWindow, slo: SLO) -> dict[str, str]:
    return {
        "summary": (
            f"SLO {slo.name} is spending its {spec.period} error budget {window.burn_rate:g}x "
            f"too fast (over {window.long} and {window.short})."
        ),
        "description": slo.description.strip(),
        "runbook": RUNBOOK,
    }


def render_rules(spec: SLOFile) -> dict[str, Any]:
    """The Prometheus rule file (recording + alerting rules) of the SLOs."""
    recording: list[dict[str, Any]] = []
    for slo in spec.slos:
        for span in _windows(spec):
            recording.append(
                {
                    "record": f"{SLI_RECORD}{span}",
                    "expr": sli_error_ratio(spec, slo, span),
                    "labels": {"slo": slo.name},
                }
            )
    for domain in spec.domains:
        recording.append(
            {"record": P95_RECORD, "expr": p95_latency(spec, domain), "labels": {"domain": domain}}
        )
    alerts: list[dict[str, Any]] = []
    for slo in spec.slos:
        for window in spec.alert_windows:
            threshold = _threshold(window, slo)
            this_slo = selector({"slo": slo.name})
            alerts.append(
                {
                    "alert": ALERT_NAME,
                    "expr": (
                        f"{SLI_RECORD}{window.long}{this_slo} > {threshold}"
                        f" and {SLI_RECORD}{window.short}{this_slo} > {threshold}"
                    ),
                    "for": window.for_,
                    # `slo` is in the series already; repeated so that each rule is unique.
                    "labels": _alert_labels(window, slo),
                    "annotations": _alert_annotations(spec, window, slo),
                }
            )
    return {
        "groups": [
            {"name": "slo-recording", "interval": "30s", "rules": recording},
            {"name": "slo-alerts", "rules": alerts},
        ]
    }


def _series(name: str, labels: dict[str, str]) -> str:
    return name + selector(labels)


def _inputs(spec: SLOFile, slo: SLO, *, burning: bool) -> list[dict[str, str]]:
    """Two hours of per-minute counter samples: 10 requests/s, bad ones burning or not."""

    def counter(per_minute: int) -> str:
        return f"0+{per_minute}x120"

    ok = {"route": "/orgs", "method": "GET", "status_class": "2xx"}
    # A failing readiness probe: were probes counted, the healthy case would page.
    probe = {"route": "/health/ready", "method": "GET", "status_class": "5xx"}
    if slo.sli == "error_rate":
        return [
            {"series": _series("app_http_requests_total", ok), "values": counter(540)},
            {
                "series": _series("app_http_requests_total", {**ok, "status_class": "5xx"}),
                "values": counter(60 if burning else 0),
            },
            {"series": _series("app_http_requests_total", probe), "values": counter(600)},
        ]
    if slo.sli == "permission_denial_rate":
        denial = {"action": "tasks:update", "role": "viewer"}
        return [
            {"series": _series("app_http_requests_total", ok), "values": counter(600)},
            {
                "series": _series("app_permission_denials_total", denial),
                "values": counter(300 if burning else 1),
            },
        ]
    domain, le = _latency_scope(spec, slo)
    inside = {"route": domain.routes[0].replace("*", ""), "method": "GET"}
    outside = {"route": "/outside-every-domain", "method": "GET"}
    name = "app_http_request_duration_seconds"
    return [
        {"series": _series(f"{name}_count", inside), "values": counter(600)},
        {
            "series": _series(f"{name}_bucket", {**inside, "le": le}),
            "values": counter(60 if burning else 600),
        },
        # Slow requests of a route outside the domain never count against it.
        {"series": _series(f"{name}_count", outside), "values": counter(600)},
        {"series": _series(f"{name}_bucket", {**outside, "le": le}), "values": counter(0)},
    ]


def render_rule_tests(spec: SLOFile, rule_file: str) -> dict[str, Any]:
    """A promtool unit-test file: each SLO pages when burning and stays quiet when healthy."""
    tests: list[dict[str, Any]] = []
    for slo in spec.slos:
        for burning in (True, False):
            expected = [
                {
                    "exp_labels": _alert_labels(window, slo),
                    "exp_annotations": _alert_annotations(spec, window, slo),
                }
                for window in spec.alert_windows
                if burning
            ]
            tests.append(
                {
                    "name": f"{slo.name} {'burning' if burning else 'healthy'}",
                    "interval": "1m",
                    "input_series": _inputs(spec, slo, burning=burning),
                    "alert_rule_test": [
                        {"eval_time": "60m", "alertname": ALERT_NAME, "exp_alerts": expected}
                    ],
                }
            )
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


HEADER = (
    "# Generated from slo.yaml by the slo-rules command (make slo-rules).\n"
    "# Edit slo.yaml, not this file.\n"
)


def dump_yaml(document: dict[str, Any]) -> str:
    """YAML in a stable, reviewable form (keys in insertion order, long lines kept whole)."""
    return HEADER + yaml.safe_dump(
        document, sort_keys=False, width=1000, allow_unicode=True, default_flow_style=False
    )
