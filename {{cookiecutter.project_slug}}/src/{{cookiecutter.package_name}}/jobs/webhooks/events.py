"""Domain events: a write records one delivery per subscribed endpoint in its own transaction.

The endpoints are looked up inside the write's transaction (one indexed query), so an event
goes to the endpoints registered when it happened, and an organization without webhooks pays
nothing more. The payload follows Standard Webhooks: `{"type", "timestamp", "data"}`; the event
id travels as the `webhook-id` header and stays the same on every retry and replay (receivers
dedupe by it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from {{ cookiecutter.package_name }}.db.base import new_id, utcnow
from {{ cookiecutter.package_name }}.jobs.outbox import Outbox
from {{ cookiecutter.package_name }}.jobs.webhooks.model import WebhookEndpoint

DELIVER_JOB = "webhooks.deliver"


async def org_endpoints(session: AsyncSession, org_id: uuid.UUID) -> list[WebhookEndpoint]:
    """The organization's webhook endpoints (load once to emit many events in one batch)."""
    found = await session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id))
    return list(found)


async def emit(
    outbox: Outbox,
    event_type: str,
    org_id: uuid.UUID,
    data: BaseModel | dict[str, Any],
    endpoints: Sequence[WebhookEndpoint] | None = None,
) -> str:
    """Queue the event for each of the organization's endpoints that wants it; returns its id.

    `endpoints`: the organization's, from `org_endpoints` in the same transaction, when the
    caller emits many events at once (an import); otherwise they are looked up here."""
    event_id = new_id()
    if endpoints is None:
        endpoints = await org_endpoints(outbox.uow.session, org_id)
    event: dict[str, Any] | None = None
    for endpoint in endpoints:
        if not endpoint.wants(event_type):
            continue
        if event is None:
            event = {
                "event_id": str(event_id),
                "type": event_type,
                "timestamp": utcnow().isoformat(),
                "data": data.model_dump(mode="json") if isinstance(data, BaseModel) else data,
            }
        outbox.add(
            DELIVER_JOB,
            {**event, "endpoint_id": str(endpoint.id)},
            org_id=org_id,
            # One delivery per (event, endpoint): a stable id the queue dedupes on.
            message_id=uuid.uuid5(event_id, str(endpoint.id)),
        )
    return str(event_id)
