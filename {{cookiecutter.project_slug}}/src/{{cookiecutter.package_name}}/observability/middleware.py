"""Per-request telemetry in one pure ASGI middleware: request id, trace id header, metrics.

- `X-Request-Id`: the client's, when it is a sane token, else a fresh one; bound into every log
  line of the request and echoed in the response.
- `X-Trace-Id`: the trace id of the request's span, so a user report leads to the trace.
- `app_http_request_duration_seconds` and `app_http_requests_total`, labelled by the route
  *template* (`/orgs/{org_id}/projects`), never the raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.observability.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS
from {{ cookiecutter.package_name }}.observability.tracing import UNTRACED_PATHS

REQUEST_ID_HEADER = "x-request-id"
TRACE_ID_HEADER = "x-trace-id"
# What a client may choose as a request id: short, printable, no separators that break logs.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
# Requests that matched no route share one label value instead of one per probed path.
UNMATCHED_ROUTE = "unmatched"
# Scrapes of /metrics are not service traffic; counting them would skew the SLIs.
UNMEASURED_PATHS = frozenset({"/metrics"})
# Any other method a client invents is counted as OTHER (bounded cardinality again).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's request id if it is sane, else a new random one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template, or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestTelemetryMiddleware:
    """Request id, trace id header and HTTP metrics for every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        span = trace.get_current_span()
        span_context = span.get_span_context()
        trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else None
        if span.is_recording():
            span.set_attribute("http.request.id", request_id)
        status = 500  # what the client gets if the app raises before answering

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                if trace_id is not None and TRACE_ID_HEADER.encode() not in names:
                    headers.append((TRACE_ID_HEADER.encode(), trace_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        started = time.perf_counter()
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            if scope["path"] in UNTRACED_PATHS:
                # No server span here, so a probe's SQL and Redis calls would each start a trace.
                with suppress_instrumentation():
                    await self.app(scope, receive, send_with_ids)
            else:
                await self.app(scope, receive, send_with_ids)
        finally:
            # Dependencies bind org_id/user_id in this same context; leave nothing behind.
            structlog.contextvars.unbind_contextvars("org_id", "user_id")
            structlog.contextvars.reset_contextvars(**tokens)
            if scope["path"] not in UNMEASURED_PATHS:
                route = route_template(scope)
                method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
                HTTP_REQUEST_DURATION.labels(route, method).observe(time.perf_counter() - started)
                HTTP_REQUESTS.labels(route, method, f"{status // 100}xx").inc()
