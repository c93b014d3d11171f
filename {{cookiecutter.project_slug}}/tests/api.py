"""A thin client for tests: register users, log in, create organizations and projects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from .factories import ProjectFactory, weird_email

PASSWORD = "Unicorns eat 🌈 for breakfast"


@dataclass
class User:
    """A registered, logged-in user."""

    id: str
    email: str
    token: str
    headers: dict[str, str] = field(default_factory=dict)


class Api:
    """Helpers that go through the real HTTP endpoints."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def user(self, email: str | None = None) -> User:
        """Register and log in a new user."""
        email = email or weird_email()
        created = await self.client.post(
            "/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
        login = await self.client.post(
            "/auth/token", data={"username": email, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        return User(
            id=created.json()["id"],
            email=created.json()["email"],
            token=token,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def org(self, owner: User, name: str = "Acme Ünïcorn Ltd") -> str:
        """Create an organization owned by `owner`; returns its id."""
        response = await self.client.post("/orgs", json={"name": name}, headers=owner.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def member(self, org_id: str, owner: User, role: str) -> User:
        """A new user added to the organization with `role`."""
        user = await self.user()
        response = await self.client.post(
            f"/orgs/{org_id}/members",
            json={"email": user.email, "role": role},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        return user

    async def project(self, org_id: str, user: User, **fields: Any) -> dict[str, Any]:
        """Create a project; returns its JSON."""
        body = ProjectFactory.build(**fields).model_dump(mode="json")
        response = await self.client.post(
            f"/orgs/{org_id}/projects", json=body, headers=user.headers
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def webhook(
        self, org_id: str, user: User, url: str, events: list[str] | None = None
    ) -> dict[str, Any]:
        """Register a webhook endpoint (every event unless `events`); returns its JSON, with
        the secret the service shows only at creation."""
        body: dict[str, Any] = {"url": url}
        if events is not None:
            body["events"] = events
        response = await self.client.post(
            f"/orgs/{org_id}/webhooks", json=body, headers=user.headers
        )
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def task(self, org_id: str, user: User, body: dict[str, Any]) -> dict[str, Any]:
        """Create a task; returns its JSON."""
        response = await self.client.post(f"/orgs/{org_id}/tasks", json=body, headers=user.headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result
