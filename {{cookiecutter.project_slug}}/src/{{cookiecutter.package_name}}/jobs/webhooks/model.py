"""Webhook endpoints: where an organization wants its events delivered, and the signing secret."""

from __future__ import annotations

import base64
import secrets
import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, TimestampMixin

SECRET_PREFIX = "whsec_"  # noqa: S105  # pragma: allowlist secret (the format prefix)
ALL_EVENTS = "*"
EVENT_TYPES = (
    "project.created",
    "project.updated",
    "project.deleted",
    "task.created",
    "task.updated",
    "task.deleted",
)


def new_secret() -> str:
    """A new Standard Webhooks signing key (the format prefix, then base64 of 32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookEndpoint(IdMixin, TimestampMixin, Base):
    """A receiver URL of one organization, the events it wants, and its secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_org_created", "org_id", "created_at", "id"),)

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    # Needed in clear to sign; shown to the client once, at creation.
    secret: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(500))

    def wants(self, event_type: str) -> bool:
        """Is this endpoint subscribed to `event_type`?"""
        return ALL_EVENTS in self.events or event_type in self.events

    def as_dict(self) -> dict[str, Any]:  # pragma: no cover - debugging aid
        """The endpoint without its secret."""
        return {"id": str(self.id), "url": self.url, "events": self.events}
