"""Webhook endpoints of an organization: register (the secret is shown once), list, get, delete."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import AnyHttpUrl, Field, UrlConstraints, field_validator
from sqlalchemy import select

from {{ cookiecutter.package_name }}.dependencies import SessionDep, SettingsDep
from {{ cookiecutter.package_name }}.errors import NotFoundError, ProblemError
from {{ cookiecutter.package_name }}.jobs.webhooks.model import ALL_EVENTS, EVENT_TYPES, WebhookEndpoint, new_secret
from {{ cookiecutter.package_name }}.jobs.webhooks.ssrf import UnsafeTargetError, check_target
from {{ cookiecutter.package_name }}.schemas import Schema, Text
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize

router = APIRouter(prefix="/orgs/{org_id}/webhooks", tags=["webhooks"])

MAX_ENDPOINTS_PER_ORG = 50
ReceiverUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)]


class WebhookCreate(Schema):
    """A receiver to register."""

    url: ReceiverUrl
    events: list[str] = Field(
        default_factory=lambda: [ALL_EVENTS],
        min_length=1,
        description=f"Event types, or '*' for all: {', '.join(EVENT_TYPES)}.",
    )
    description: Text | None = Field(default=None, max_length=500)

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - {ALL_EVENTS, *EVENT_TYPES})
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        return sorted(set(events))


class WebhookOut(Schema):
    """A registered receiver (without its secret)."""

    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    """The response to a registration: the only time the secret is shown."""

    secret: str = Field(description="Standard Webhooks secret (whsec_...). Store it now.")


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_webhook(
    body: WebhookCreate,
    access: Annotated[OrgAccess, authorize("webhooks:create")],
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookCreated:
    """Register a receiver; the response carries the signing secret, shown only this once."""
    url = str(body.url)
    try:
        await check_target(url, settings)
    except UnsafeTargetError as exc:
        raise ProblemError(422, f"url is not allowed: {exc}.", type_="validation") from None
    except OSError:
        raise ProblemError(422, "url's host cannot be resolved.", type_="validation") from None
    count = len(
        list(
            await session.scalars(
                select(WebhookEndpoint.id).where(WebhookEndpoint.org_id == access.org_id)
            )
        )
    )
    if count >= MAX_ENDPOINTS_PER_ORG:
        raise ProblemError(
            422,
            f"An organization may register at most {MAX_ENDPOINTS_PER_ORG} webhooks.",
            type_="validation",
        )
    endpoint = WebhookEndpoint(
        org_id=access.org_id,
        url=url,
        events=body.events,
        secret=new_secret(),
        description=body.description,
    )
    session.add(endpoint)
    await session.flush()
    return WebhookCreated.model_validate(endpoint)


@router.get("")
async def list_webhooks(
    access: Annotated[OrgAccess, authorize("webhooks:list")], session: SessionDep
) -> list[WebhookOut]:
    """The organization's receivers, oldest first."""
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.org_id == access.org_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return [WebhookOut.model_validate(r) for r in rows]


async def _get(session: SessionDep, access: OrgAccess, webhook_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.org_id == access.org_id, WebhookEndpoint.id == webhook_id
        )
    )
    if endpoint is None:
        raise NotFoundError("Webhook")
    return endpoint


@router.get("/{webhook_id}")
async def get_webhook(
    webhook_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("webhooks:read")],
    session: SessionDep,
) -> WebhookOut:
    """One receiver."""
    return WebhookOut.model_validate(await _get(session, access, webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(
    webhook_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("webhooks:delete")],
    session: SessionDep,
) -> Response:
    """Remove a receiver; deliveries still queued for it are dropped."""
    await session.delete(await _get(session, access, webhook_id))
    await session.flush()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
