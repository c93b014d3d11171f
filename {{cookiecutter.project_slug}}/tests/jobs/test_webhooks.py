"""Webhooks end to end: API -> outbox -> fan-out -> signed delivery to a real local receiver."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.cli import PROJECT_ROOT
from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.jobs.errors import PermanentJobError
from {{ cookiecutter.package_name }}.jobs.outbox import OutboxMessage
from {{ cookiecutter.package_name }}.jobs.runtime import JobsRuntime
from {{ cookiecutter.package_name }}.jobs.webhooks.jobs import deliver
from {{ cookiecutter.package_name }}.jobs.webhooks.model import WebhookEndpoint, new_secret
from {{ cookiecutter.package_name }}.jobs.webhooks.ssrf import (
    GuardedBackend,
    UnsafeTargetError,
    allowed_addresses,
    check_target,
    guarded_transport,
)
from {{ cookiecutter.package_name }}.jobs.worker import build_worker
from {{ cookiecutter.package_name }}.resources.orgs.model import Organization
from {{ cookiecutter.package_name }}.settings import Settings

from ..api import Api
from ..conftest import REDIS_URL, make_settings, running
from ..factories import TaskFactory
from .conftest import LogLines, eventually
from .receiver import Receiver, receiver


def _readme_verifier() -> Callable[[str, bytes, dict[str, str]], dict[str, Any]]:
    """The receiver code exactly as the README shows it."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- receiver-example:start -->\n```python\n(.*?)```\n<!-- receiver-example:end -->",
        readme,
        re.S,
    )
    assert block, "README lost its receiver example"
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    verifier: Callable[[str, bytes, dict[str, str]], dict[str, Any]] = namespace["verify_delivery"]
    return verifier


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


async def _setup(api: Api, url: str, events: list[str] | None = None) -> tuple[Any, str, str, str]:
    owner = await api.user()
    org = await api.org(owner)
    project = await api.project(org, owner)
    secret = (await api.webhook(org, owner, url, events))["secret"]
    return owner, org, project["id"], secret


async def test_task_events_are_delivered_signed_and_verifiable_with_the_readme_code(
    api: Api, hook: Receiver
) -> None:
    owner, org, project_id, secret = await _setup(api, hook.url)
    assert secret.startswith("whsec_")
    listed = await api.client.get(f"/orgs/{org}/webhooks", headers=owner.headers)
    assert "secret" not in listed.json()[0]  # shown once, at creation

    task = await api.task(org, owner, TaskFactory.payload(project_id, title='Ünïcode ✓ "q"'))
    patched = await api.client.patch(
        f"/orgs/{org}/tasks/{task['id']}", json={"status": "done"}, headers=owner.headers
    )
    assert patched.status_code == 200
    assert (
        await api.client.delete(f"/orgs/{org}/tasks/{task['id']}", headers=owner.headers)
    ).status_code == 204

    await eventually(lambda: _count(hook, 3))
    verify = _readme_verifier()
    events = [verify(secret, r.body, r.headers) for r in hook.ok()]
    assert sorted(e["type"] for e in events) == ["task.created", "task.deleted", "task.updated"]
    created = next(e for e in events if e["type"] == "task.created")
    assert created["data"]["title"] == 'Ünïcode ✓ "q"'
    assert created["data"]["project"]["id"] == project_id
    assert len({r.headers["webhook-id"] for r in hook.ok()}) == 3

    tampered = hook.ok()[0]
    with pytest.raises(PermissionError):
        verify(secret, tampered.body + b" ", tampered.headers)
    with pytest.raises(PermissionError):
        verify(new_secret(), tampered.body, tampered.headers)


async def _count(hook: Receiver, n: int) -> bool:
    return len(hook.ok()) >= n


async def test_endpoints_get_only_the_events_they_subscribed_to(api: Api, hook: Receiver) -> None:
    owner, org, project_id, _ = await _setup(api, hook.url, events=["project.updated"])
    await api.task(org, owner, TaskFactory.payload(project_id))
    renamed = await api.client.patch(
        f"/orgs/{org}/projects/{project_id}", json={"name": "Renamed ✨"}, headers=owner.headers
    )
    assert renamed.status_code == 200
    await eventually(lambda: _count(hook, 1))
    assert [orjson.loads(r.body)["type"] for r in hook.received] == ["project.updated"]


async def test_a_500_is_retried_with_the_same_webhook_id(api: Api, hook: Receiver) -> None:
    hook.plan = [(500, 0.0), (429, 0.0)]  # 429 carries Retry-After: 0
    owner, org, project_id, secret = await _setup(api, hook.url)
    await api.task(org, owner, TaskFactory.payload(project_id))
    await eventually(lambda: _count(hook, 1))
    assert [r.headers["x-answered"] for r in hook.received] == ["500", "429", "200"]
    assert len({r.headers["webhook-id"] for r in hook.received}) == 1
    assert _readme_verifier()(secret, hook.received[-1].body, hook.received[-1].headers)
    dead = await api.client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)
    assert dead.json() == []


async def test_always_500_is_dead_lettered_then_replayed_once_fixed(
    api: Api, hook: Receiver
) -> None:
    hook.default = (500, 0.0)
    owner, org, project_id, secret = await _setup(api, hook.url)
    await api.task(org, owner, TaskFactory.payload(project_id))

    async def dead_lettered() -> list[dict[str, Any]]:
        response = await api.client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)
        items: list[dict[str, Any]] = response.json()
        return items

    await eventually(lambda: _truthy(dead_lettered()))
    [letter] = await dead_lettered()
    assert letter["job_name"] == "webhooks.deliver"
    assert letter["attempts"] == 5  # the default max tries
    assert "HTTP 500" in letter["last_error"]
    assert len(hook.received) == 5
    original_id = hook.received[0].headers["webhook-id"]

    hook.default = (200, 0.0)  # the receiver is fixed
    replay = await api.client.post(
        f"/orgs/{org}/dead-letters/{letter['id']}/replay", headers=owner.headers
    )
    assert replay.status_code == 202
    await eventually(lambda: _count(hook, 1))
    [delivered] = hook.ok()
    assert delivered.headers["webhook-id"] == original_id  # receivers dedupe on it
    assert _readme_verifier()(secret, delivered.body, delivered.headers)["type"] == "task.created"
    assert await dead_lettered() == []


async def _truthy(value: Any) -> bool:
    return bool(await value)


async def test_a_slow_receiver_times_out_and_is_dead_lettered(
    database_url: str, hook: Receiver
) -> None:
    hook.default = (200, 1.0)  # answers, but after the read timeout
    settings = make_settings(database_url, webhook_read_timeout_seconds=0.2, job_max_tries=2)
    async with running(create_app(settings)) as client:
        api = Api(client)
        owner, org, project_id, _ = await _setup(api, hook.url)
        await api.task(org, owner, TaskFactory.payload(project_id))

        async def dead() -> bool:
            response = await client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)
            return bool(response.json())

        await eventually(dead)
        [letter] = (await client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)).json()
        assert letter["attempts"] == 2
        assert "ReadTimeout" in letter["last_error"]


async def test_events_join_the_transaction_of_the_write(
    api: Api, hook: Receiver, admin_engine: AsyncEngine
) -> None:
    owner, org, _project_id, _ = await _setup(api, hook.url)

    async def events() -> int:
        async with AsyncSession(admin_engine) as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.job_name == "webhooks.deliver")
                )
                or 0
            )

    before = await events()  # project.created
    rejected = await api.client.post(
        f"/orgs/{org}/tasks",
        json={"project_id": str(uuid.uuid4()), "title": "nope"},
        headers=owner.headers,
    )
    assert rejected.status_code == 422
    assert await events() == before  # the failed write left no event behind


async def test_only_admins_manage_webhooks_and_urls_are_validated(api: Api, hook: Receiver) -> None:
    owner = await api.user()
    org = await api.org(owner)
    member = await api.member(org, owner, "member")
    denied = await api.client.post(
        f"/orgs/{org}/webhooks", json={"url": hook.url}, headers=member.headers
    )
    assert denied.status_code == 403
    for body in (
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": hook.url, "events": ["task.exploded"]},
        {"url": hook.url, "events": []},
    ):
        bad = await api.client.post(f"/orgs/{org}/webhooks", json=body, headers=owner.headers)
        assert bad.status_code == 422, body
    created = await api.client.post(
        f"/orgs/{org}/webhooks", json={"url": hook.url}, headers=owner.headers
    )
    webhook_id = created.json()["id"]
    got = await api.client.get(f"/orgs/{org}/webhooks/{webhook_id}", headers=owner.headers)
    assert got.json()["events"] == ["*"]
    gone = await api.client.delete(f"/orgs/{org}/webhooks/{webhook_id}", headers=owner.headers)
    assert gone.status_code == 204
    assert (
        await api.client.get(f"/orgs/{org}/webhooks/{webhook_id}", headers=owner.headers)
    ).status_code == 404


async def test_production_refuses_private_targets(database_url: str) -> None:
    settings = make_settings(database_url, environment="production")
    for url in (
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://100.100.100.200/latest/meta-data",  # carrier-grade NAT (a cloud's metadata)
        "http://[2002:7f00:1::]/x",  # 6to4 wrapping 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64 wrapping 169.254.169.254
        "http://224.0.0.1/x",  # multicast
        "http://0.0.0.0/x",
        "http://198.18.0.1/x",  # benchmarking range
    ):
        with pytest.raises(UnsafeTargetError):
            await check_target(url, settings)
    await check_target("https://93.184.216.34/hooks", settings)  # a public address literal
    await check_target("https://[2606:4700::1111]/hooks", settings)
    await check_target("http://127.0.0.1:8080/x", make_settings(database_url))  # dev/test: allowed

    async with running(create_app(settings)) as client:
        api = Api(client)
        owner = await api.user()
        org = await api.org(owner)
        refused = await client.post(
            f"/orgs/{org}/webhooks", json={"url": "http://127.0.0.1:9/x"}, headers=owner.headers
        )
        assert refused.status_code == 422
        assert "loopback" in refused.json()["detail"]


async def test_delivery_rechecks_the_target(database_url: str, admin_engine: AsyncEngine) -> None:
    settings = make_settings(database_url, environment="production")
    db = Database(settings)
    runtime = JobsRuntime(settings, db, redis_url="")
    try:
        async with AsyncSession(admin_engine, expire_on_commit=False) as session, session.begin():
            org = Organization(name="Ørg")
            session.add(org)
            await session.flush()
            endpoint = WebhookEndpoint(
                org_id=org.id, url="http://127.0.0.1:9/x", events=["*"], secret=new_secret()
            )
            session.add(endpoint)
        args = {
            "event_id": str(uuid.uuid4()),
            "endpoint_id": str(endpoint.id),
            "type": "task.created",
            "timestamp": "2024-02-29T12:00:00+00:00",
            "data": {},
        }
        # Registered while allowed (or DNS changed since): refused at connect time, for good.
        with pytest.raises(
            PermanentJobError, match=re.escape("refused webhook target http://127.0.0.1:9")
        ):
            await deliver(runtime.env, args)
    finally:
        await runtime.close()
        await db.dispose()


@pytest.mark.redis
@pytest.mark.skipif(REDIS_URL is None, reason="TEST_REDIS_URL not set")
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_delivery_through_the_arq_worker(database_url: str, hook: Receiver) -> None:
    hook.plan = [(503, 0.0)]
    settings: Settings = make_settings(
        database_url, redis_url=REDIS_URL, jobs_queue_name=f"test:{uuid.uuid4().hex}"
    )
    async with running(create_app(settings)) as client:
        api = Api(client)
        owner, org, project_id, secret = await _setup(api, hook.url)
        await api.task(org, owner, TaskFactory.payload(project_id))
        assert hook.received == []  # nothing runs in the API process with Redis configured
    worker = build_worker(settings, burst=True, handle_signals=False, poll_delay=0.02)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert [r.headers["x-answered"] for r in hook.received] == ["503", "200"]
    event = _readme_verifier()(secret, hook.received[-1].body, hook.received[-1].headers)
    assert event["type"] == "task.created"


async def test_the_guard_connects_to_the_address_it_checked(hook: Receiver) -> None:
    """Resolution happens once, in the guard: the connection goes to the checked address (no
    second lookup a rebinding DNS could answer differently), with the name kept as Host."""
    port = int(hook.url.rsplit(":", 1)[1].split("/", 1)[0])
    lookups: list[str] = []

    async def resolver(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]  # what the name resolves to, this once

    # A guard that allows loopback, so the local receiver stands in for a public one.
    backend = GuardedBackend(resolve=resolver, allow=lambda _address: True)
    async with httpx.AsyncClient(transport=guarded_transport(backend=backend)) as client:
        response = await client.post(f"http://hooks.example.test:{port}/hooks", content=b"{}")
    assert response.status_code == 200
    assert lookups == ["hooks.example.test"]
    assert hook.received[0].headers["host"] == f"hooks.example.test:{port}"


async def test_the_guard_refuses_a_name_that_rebinds_to_a_private_address() -> None:
    answers = iter([["93.184.216.34"], ["93.184.216.34", "169.254.169.254"]])

    async def rebinding(_host: str, _port: int) -> list[str]:
        return next(answers)

    backend = GuardedBackend(resolve=rebinding)
    # Registration-time check: public. Connect time: one private address among the answers.
    await allowed_addresses("rebind.example.test", 80, resolve=rebinding)
    async with httpx.AsyncClient(transport=guarded_transport(backend=backend)) as client:
        with pytest.raises(UnsafeTargetError, match=re.escape("169.254.169.254")):
            await client.post("http://rebind.example.test/hooks", content=b"{}")


async def test_a_description_with_nul_is_a_422(api: Api, hook: Receiver) -> None:
    owner = await api.user()
    org = await api.org(owner)
    refused = await api.client.post(
        f"/orgs/{org}/webhooks",
        json={"url": hook.url, "description": "bad\u0000byte"},
        headers=owner.headers,
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"


async def test_receiver_urls_with_credentials_never_reach_logs_or_errors(
    database_url: str, hook: Receiver, log_lines: LogLines
) -> None:
    hook.default = (500, 0.0)
    password = "hunter2-pw"  # pragma: allowlist secret
    secret_url = hook.url.replace("http://", f"http://user:{password}@")
    secret_url += "/T0/B0/xoxb-token?sig=s3cr3t"
    settings = make_settings(database_url, job_max_tries=2, log_level="INFO")
    async with running(create_app(settings)) as client:
        api = Api(client)
        owner, org, project_id, _ = await _setup(api, secret_url)
        await api.task(org, owner, TaskFactory.payload(project_id))
        await JobsRuntime.settle_all()
        [letter] = (await client.get(f"/orgs/{org}/dead-letters", headers=owner.headers)).json()
    origin = hook.url.rsplit("/", 1)[0]
    assert f"webhook receiver {origin} answered 500" in letter["last_error"]
    text = "\n".join(str(line) for line in log_lines()) + letter["last_error"]
    assert any(line.get("event") == "job_retry" for line in log_lines())
    for secret in ("hunter2-pw", "xoxb-token", "s3cr3t"):
        assert secret not in text
