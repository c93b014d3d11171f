"""API fuzzing with schemathesis against the service's own OpenAPI schema.

A real uvicorn server on 127.0.0.1 (test database) is called as the owner of a seeded
organization that has a project, a task, a member, a webhook, an export, an import and a dead
letter, so the handlers run rather than only their 404 path. Path parameters (and body or query
`project_id`) name those objects. A DELETE gets a fresh object per example, made for it, so it
never removes what the operations after it need; the DELETEs still run last.

Checks: no 5xx, every response matches its documented schema, status code and media type; and
coverage: at least MIN_OK_SHARE of the operations answered 2xx at least once (a fuzzer that only
reaches 404s fails). Not checked: that every schema-valid request is accepted: business rules
the schema cannot express (a deliverable email syntax, the common-password list) answer 422.
The run's figures end the pytest output: `schemathesis: N cases, 2xx=a 4xx=b 5xx=0 ...`.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from {{ cookiecutter.package_name }}.app import create_app

from .conftest import FLAGS_ON, make_settings
from .jobs.receiver import receiver

# schemathesis's own strategies trip this hypothesis deprecation; nothing here uses `random`.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)

MAX_EXAMPLES = 15
MIN_OK_SHARE = 0.9  # of the operations must answer 2xx at least once
PASSWORD = "Fuzzing is fun 🌈"
ROLES = ("admin", "member", "viewer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(database_url: str) -> Iterator[str]:
    """The app under uvicorn in a thread, for the duration of this module."""
    port = _free_port()
    # One try per job: a refused delivery is dead-lettered at once, not retried.
    config = uvicorn.Config(
        create_app(make_settings(database_url, job_max_tries=1, flags_file=FLAGS_ON)),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class World:
    """The seeded organization: the owner's headers and the ids path parameters take."""

    client: httpx.Client
    headers: dict[str, str] = field(default_factory=dict)
    email: str = ""
    receiver: str = ""
    ids: dict[str, str] = field(default_factory=dict)

    def ok(self, method: str, url: str, **kwargs: Any) -> Any:
        """A call that must succeed while seeding; its JSON body."""
        response = self.client.request(method, url, headers=self.headers, **kwargs)
        assert response.status_code < 300, (method, url, response.status_code, response.text)
        return response.json() if response.content else None

    def user(self) -> tuple[str, str]:
        """Register a new user; its id and email."""
        email = f"fuzz.{uuid.uuid4().hex[:12]}@example.com"
        created = self.client.post("/auth/register", json={"email": email, "password": PASSWORD})
        assert created.status_code == 201, created.text
        return created.json()["id"], email

    def log_in(self, email: str) -> None:
        """Act as this user from now on."""
        token = self.client.post("/auth/token", data={"username": email, "password": PASSWORD})
        assert token.status_code == 200, token.text
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def member(self) -> str:
        """A new member of the seeded organization; its user id."""
        user_id, email = self.user()
        body = {"email": email, "role": "member"}
        self.ok("POST", f"/orgs/{self.ids['org_id']}/members", json=body)
        return user_id

    def settle(self, url: str, key: str = "status", done: tuple[str, ...] = ("done",)) -> None:
        """Poll a queued job (bounded number of polls) until it finished."""
        for _ in range(400):
            if self.ok("GET", url).get(key) in done:
                return
            time.sleep(0.05)
        raise AssertionError(f"{url} never finished")


@pytest.fixture(scope="module")
def world(live_server: str) -> Iterator[World]:
    """An owner, an organization and one of everything an operation can name."""
    with httpx.Client(base_url=live_server, timeout=30) as client, receiver() as hooks:
        # Webhook deliveries succeed, except the first: it is refused (410) and dead-lettered.
        hooks.plan.append((410, 0.0))
        world = World(client, receiver=hooks.url)
        world.ids["owner_id"], world.email = world.user()
        world.log_in(world.email)
        org = world.ok("POST", "/orgs", json={"name": "Fuzz"})["id"]
        world.ids["org_id"] = org
        base = f"/orgs/{org}"
        world.ids["project_id"] = world.ok("POST", f"{base}/projects", json={"name": "P"})["id"]
        world.ids["external_key"] = "FUZZ-1"
        world.ids["task_id"] = world.ok(
            "PUT",
            f"{base}/tasks/by-key/FUZZ-1",
            json={"project_id": world.ids["project_id"], "title": "T"},
        )["id"]
        world.ids["user_id"] = world.member()
        world.ids["webhook_id"] = world.ok(
            "POST", f"{base}/webhooks", json={"url": world.receiver}
        )["id"]
        world.ok("PATCH", f"{base}/tasks/{world.ids['task_id']}", json={"title": "T2"})
        export = world.ok("POST", f"{base}/projects/{world.ids['project_id']}/exports")
        world.ids["export_id"] = export["id"]
        world.settle(f"{base}/exports/{export['id']}")
        upload = {"file": ("t.csv", b"external_key,title\r\nFUZZ-2,imported\r\n", "text/csv")}
        imported = world.ok(
            "POST", f"{base}/projects/{world.ids['project_id']}/imports", files=upload
        )
        world.ids["import_id"] = imported["id"]
        world.settle(f"{base}/imports/{imported['id']}")
        summary = client.post(
            f"{base}/projects/{world.ids['project_id']}/summary", headers=world.headers
        )
        if summary.status_code == 202:  # the AI summary may be switched off by its flag
            world.ids["summary_id"] = summary.json()["id"]
        for _ in range(400):  # the PATCH's delivery was refused
            letters = world.ok("GET", f"{base}/dead-letters")
            if letters:
                world.ids["letter_id"] = letters[0]["id"]
                break
            time.sleep(0.05)
        assert "letter_id" in world.ids, "no dead letter to replay"
        yield world


def _fresh_factories(world: World) -> dict[str, Callable[[], str]]:
    """What a DELETE of each kind of object gets, made anew for every example."""
    base = f"/orgs/{world.ids['org_id']}"
    project = world.ids["project_id"]
    return {
        "org_id": lambda: world.ok("POST", "/orgs", json={"name": "Doomed"})["id"],
        "project_id": lambda: world.ok("POST", f"{base}/projects", json={"name": "D"})["id"],
        "task_id": lambda: world.ok(
            "POST", f"{base}/tasks", json={"project_id": project, "title": "D"}
        )["id"],
        "webhook_id": lambda: world.ok("POST", f"{base}/webhooks", json={"url": world.receiver})[
            "id"
        ],
        "user_id": world.member,
    }


# The schema of the app itself (no server needed to list the operations).
SCHEMA = schemathesis.openapi.from_dict(create_app(make_settings("sqlite+aiosqlite://")).openapi())
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}


def _consumes(label: str) -> bool:
    """Operations that use up what later ones need: they run last."""
    return label.startswith("DELETE") or label.endswith("/dead-letters/replay")


# Reads and writes first, then the DELETEs and the replay of every dead letter.
ORDER = sorted(OPERATIONS, key=lambda label: (_consumes(label), label.count("/"), label))


@dataclass
class Tally:
    """Cases sent and status codes seen, per operation."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def record(self, label: str, status: int) -> None:
        """Count one response."""
        self.statuses.setdefault(label, Counter())[status] += 1

    def classes(self) -> Counter[str]:
        """Responses by status class over every operation (2xx, 4xx, ...)."""
        total: Counter[str] = Counter()
        for counts in self.statuses.values():
            for status, n in counts.items():
                total[f"{status // 100}xx"] += n
        return total

    def without_ok(self) -> list[str]:
        """Operations that never answered 2xx."""
        return [
            label
            for label, counts in self.statuses.items()
            if not any(200 <= s < 300 for s in counts)
        ]

    def line(self) -> str:
        """The one-line summary printed at the end of the run."""
        classes = self.classes()
        parts = " ".join(f"{c}={classes.get(c, 0)}" for c in ("2xx", "3xx", "4xx", "5xx"))
        ok = len(self.statuses) - len(self.without_ok())
        return (
            f"schemathesis: {sum(classes.values())} cases, {parts}, "
            f"{ok}/{len(self.statuses)} operations answered 2xx"
        )


@pytest.fixture(autouse=True)
def _empty_tables() -> None:
    """Overrides conftest: the fuzzed organization lives for the module (the database is
    dropped at the end of the run)."""


@pytest.fixture(autouse=True)
def _settle_background_jobs() -> None:
    """Overrides conftest: the live server's jobs run on its own event loop and stop with it."""


def test_every_operation_conforms_to_its_schema(
    live_server: str, world: World, record_property: Callable[[str, object], None]
) -> None:
    tally = Tally()
    fresh = _fresh_factories(world)
    failures: dict[str, str] = {}
    for label in ORDER:
        try:
            _fuzz(label, live_server, world, fresh if label.startswith("DELETE") else {}, tally)()
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all are reported
            failures[label] = f"{type(exc).__name__}: {exc}"
    record_property("schemathesis", tally.line())
    assert not failures, "\n\n".join(f"{label}\n{error}" for label, error in failures.items())
    assert set(tally.statuses) == set(OPERATIONS), "an operation was never called"
    never = sorted(tally.without_ok())
    share = 1 - len(never) / len(OPERATIONS)
    assert share >= MIN_OK_SHARE, f"{tally.line()}; never 2xx: {never}"


def _describe(exc: BaseException) -> str:
    """An exception and, for a group (schemathesis, hypothesis), every one inside it."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, BaseExceptionGroup):
        text += "".join("\n  " + _describe(inner) for inner in exc.exceptions)
    return text


def _fuzz(
    label: str, base_url: str, world: World, fresh: dict[str, Callable[[], str]], tally: Tally
) -> Callable[[], None]:
    """The hypothesis test of one operation: call it, count the status, validate the response."""

    @given(case=OPERATIONS[label].as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        _aim(case, label, world, fresh)
        response = case.call(base_url=base_url, headers=world.headers)
        tally.record(label, response.status_code)
        case.validate_response(
            response, headers=world.headers, excluded_checks=[positive_data_acceptance]
        )

    return check


def _aim(case: Any, label: str, world: World, fresh: dict[str, Callable[[], str]]) -> None:
    """Point the case at the seeded objects, and a DELETE's target at a fresh object of its own.

    Values the schema cannot make valid are replaced: ids of this organization, a registered
    user's email, a role of the policy. The other fields stay as generated."""
    for name in case.path_parameters or {}:
        if name in world.ids:
            case.path_parameters[name] = world.ids[name]
    target = case.operation.path.rsplit("{", 1)[-1].rstrip("}")
    if target in fresh:
        case.path_parameters[target] = fresh[target]()
    for container in (case.query, case.body):
        if isinstance(container, dict) and "project_id" in container:
            container["project_id"] = world.ids["project_id"]
    body = case.body
    if not isinstance(body, dict):
        return
    if body.get("assignee_id") is not None:
        body["assignee_id"] = world.ids["owner_id"]
    if "url" in body:
        # A receiver that answers at once: random hosts would only test the resolver's speed.
        body["url"] = world.receiver
    if isinstance(body.get("role"), str):
        body["role"] = ROLES[len(body["role"]) % len(ROLES)]
    if label == "POST /auth/register":
        body["email"] = f"fuzz.{uuid.uuid4().hex[:12]}@example.com"
    elif label == "POST /auth/token":
        body.update(username=world.email, password=PASSWORD)
    elif label == "POST /orgs/{org_id}/members":
        body["email"] = world.user()[1]
