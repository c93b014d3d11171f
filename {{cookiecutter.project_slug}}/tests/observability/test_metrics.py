"""Prometheus metrics: route templates (never raw paths), status classes, pool gauges, access."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.app import create_app

from ..api import Api
from ..conftest import make_settings, running

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """`{(sample name, labels): value}` of a scrape."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent (a counter not incremented yet)."""
    return scrape.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_requests_are_counted_by_route_template_and_status_class(
    api: Api, client: httpx.AsyncClient
) -> None:
    owner = await api.user()
    org = await api.org(owner)
    template = "/orgs/{org_id}/projects"
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/orgs/{org}/projects", headers=owner.headers)).status_code == 200
    denied = await client.get(f"/orgs/{org}/projects")  # no token
    await client.get(f"/no/such/{org}")
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"route": template, "method": "GET", "status_class": "2xx"}
    assert delta("app_http_requests_total", **ok) == 3
    assert delta("app_http_requests_total", **{**ok, "status_class": "4xx"}) == 1
    assert denied.status_code == 401
    assert delta("app_http_request_duration_seconds_count", route=template, method="GET") == 4
    assert (
        delta("app_http_request_duration_seconds_bucket", route=template, method="GET", le="+Inf")
        == 4
    )
    assert (
        delta("app_http_requests_total", route="unmatched", method="GET", status_class="4xx") == 1
    )
    assert not any(org in str(labels) for _, labels in after), "raw paths never become labels"
    # Scrapes are not service traffic.
    assert not any(dict(labels).get("route") == "/metrics" for _, labels in after)


async def test_pool_gauges_are_read_at_scrape_time(client: httpx.AsyncClient) -> None:
    scraped = await scrape(client)
    settings = make_settings("postgresql+asyncpg://unused/x")
    assert value(scraped, "app_db_pool_size", role="primary") == settings.db_pool_size
    assert ("app_db_pool_checked_out", frozenset({("role", "primary")})) in scraped


async def test_server_errors_count_as_5xx(database_url: str) -> None:
    app = create_app(make_settings(database_url))

    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    async with running(app, raise_app_exceptions=False) as client:
        before = await scrape(client)
        assert (await client.get("/_test/boom")).status_code == 500
        after = await scrape(client)
    labels = {"route": "/_test/boom", "method": "GET", "status_class": "5xx"}
    assert (
        value(after, "app_http_requests_total", **labels)
        - value(before, "app_http_requests_total", **labels)
        == 1
    )


async def test_a_configured_token_is_required(database_url: str) -> None:
    app = create_app(make_settings(database_url, metrics_token="scrape-token-0123456789"))
    async with running(app) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get(
            "/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"}
        )
    for refused in (missing, wrong):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "app_http_requests_total" not in refused.text
    assert right.status_code == 200
    assert "app_http_requests_total" in right.text


async def test_production_without_a_token_serves_no_metrics_on_the_app(
    database_url: str,
) -> None:
    app = create_app(make_settings(database_url, environment="production"))
    async with running(app) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (
            await client.get("/metrics", headers={"Authorization": "Bearer "})
        ).status_code == 401


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_metrics_on_a_port_of_their_own(database_url: str) -> None:
    port = _free_port()
    settings = make_settings(database_url, metrics_port=port, metrics_host="127.0.0.1")
    app = create_app(settings)
    async with running(app) as client:
        assert (await client.get("/metrics")).status_code == 404
        await client.get("/health/live")
        async with httpx.AsyncClient() as outside:
            response = await outside.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    scraped = samples(response.text)
    assert value(scraped, "app_db_pool_size", role="primary") == settings.db_pool_size
    assert any(name == "app_http_requests_total" for name, _ in scraped)
    async with httpx.AsyncClient() as outside:
        with pytest.raises(httpx.ConnectError):
            await outside.get(f"http://127.0.0.1:{port}/metrics")
