"""The webhook job: deliver one signed event to one endpoint (see events.py for how the
deliveries are queued: one outbox row per endpoint, each retried and dead-lettered alone)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog
from opentelemetry.trace import SpanKind
from standardwebhooks import Webhook

from {{ cookiecutter.package_name }}.jobs.errors import PermanentJobError, http_error
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, job
from {{ cookiecutter.package_name }}.jobs.webhooks.events import DELIVER_JOB
from {{ cookiecutter.package_name }}.jobs.webhooks.model import WebhookEndpoint
from {{ cookiecutter.package_name }}.jobs.webhooks.ssrf import UnsafeTargetError, safe_origin

log = structlog.get_logger(__name__)

USER_AGENT = "{{ cookiecutter.project_slug }}-webhooks/1"


def payload(args: JobArgs) -> bytes:
    """The body of a delivery: the Standard Webhooks `{type, timestamp, data}` envelope."""
    return orjson.dumps(
        {"type": args["type"], "timestamp": args["timestamp"], "data": args["data"]}
    )


def signed_headers(secret: str, event_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """webhook-id / webhook-timestamp / webhook-signature for `body`, per Standard Webhooks."""
    signature = Webhook(secret).sign(msg_id=event_id, timestamp=now, data=body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@job(DELIVER_JOB)
async def deliver(env: JobEnv, args: JobArgs) -> dict[str, Any]:
    """POST one signed event to one endpoint; non-2xx raises for the wrapper to classify."""
    async with env.db.reader(prefer_primary=True) as session:
        endpoint = await session.get(WebhookEndpoint, uuid.UUID(args["endpoint_id"]))
    if endpoint is None:
        log.info("webhook_endpoint_gone", endpoint_id=args["endpoint_id"])
        return {"skipped": "endpoint deleted"}
    where = safe_origin(endpoint.url)
    attributes = {
        "app.event.id": args["event_id"],
        "app.event.type": args["type"],
        "app.webhook.endpoint_id": str(endpoint.id),
        "server.address": urlsplit(endpoint.url).hostname or "",
    }
    with env.tracer.start_as_current_span(
        "webhook deliver", kind=SpanKind.INTERNAL, attributes=attributes
    ) as span:
        body = payload(args)
        # Signed per attempt: the timestamp is when it was sent, so receivers can reject replays.
        headers = signed_headers(endpoint.secret, args["event_id"], body, datetime.now(UTC))
        try:
            # In production the client's transport refuses non-public addresses at connect
            # time and connects to the address it checked (webhooks/ssrf.py).
            response = await env.webhook_http.post(endpoint.url, content=body, headers=headers)
        except UnsafeTargetError as exc:
            raise PermanentJobError(f"refused webhook target {where}: {exc}") from None
        span.set_attribute("http.response.status_code", response.status_code)
        if not response.is_success:
            raise http_error(response, f"webhook receiver {where}")
    log.info("webhook_delivered", endpoint_id=str(endpoint.id), status=response.status_code)
    return {"status": response.status_code}
