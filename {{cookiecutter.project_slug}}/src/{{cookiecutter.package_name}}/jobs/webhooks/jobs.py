"""The webhook job: deliver one signed event to one endpoint (see events.py for how the
deliveries are queued: one outbox row per endpoint, each retried and dead-lettered alone)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from standardwebhooks import Webhook

from {{ cookiecutter.package_name }}.jobs.errors import PermanentJobError, http_error
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, job
from {{ cookiecutter.package_name }}.jobs.webhooks.events import DELIVER_JOB
from {{ cookiecutter.package_name }}.jobs.webhooks.model import WebhookEndpoint
from {{ cookiecutter.package_name }}.jobs.webhooks.ssrf import UnsafeTargetError, check_target

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
    try:
        await check_target(endpoint.url, env.settings)
    except UnsafeTargetError as exc:
        raise PermanentJobError(f"refused webhook target: {exc}") from None
    body = payload(args)
    # Signed per attempt: the timestamp is when it was sent, so receivers can reject replays.
    headers = signed_headers(endpoint.secret, args["event_id"], body, datetime.now(UTC))
    response = await env.http.post(endpoint.url, content=body, headers=headers)
    if not response.is_success:
        raise http_error(response, f"webhook receiver {endpoint.url}")
    log.info("webhook_delivered", endpoint_id=str(endpoint.id), status=response.status_code)
    return {"status": response.status_code}
