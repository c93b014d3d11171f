"""One error shape for the whole API: RFC 9457 problem details (`application/problem+json`).

Every 4xx/5xx, including FastAPI's validation errors and Starlette's 404/405, leaves through
these handlers. A 500 never carries a traceback; the log does.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://errors.{{ cookiecutter.project_slug }}.dev/"

log = structlog.get_logger(__name__)


class FieldError(BaseModel):
    """One invalid field of a 422."""

    location: str
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every 4xx/5xx response."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None

    model_config = ConfigDict(extra="allow")


# Documented on every route, so clients and schema-driven tests know the error shape.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": HTTPStatus(code).phrase}
    for code in (400, 401, 403, 404, 409, 422, 429, 500)
}


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare error responses as `application/problem+json`, the media type they are sent as."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if str(code)[0] in "45" and "application/json" in content:
                    content["application/problem+json"] = content.pop("application/json")
    return schema


class ProblemError(Exception):
    """Raise anywhere below a router to answer with a problem-details response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_
        self.headers = headers
        self.extensions = extensions


class NotFoundError(ProblemError):
    """The resource does not exist, or the caller may not know that it exists."""

    def __init__(self, what: str) -> None:
        super().__init__(404, f"{what} not found.", type_="not-found")


class ConflictError(ProblemError):
    """The request conflicts with the current state (a duplicate, a request in flight)."""

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(409, detail, type_="conflict", **extensions)


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """Build a problem-details response; usable from middleware as well as handlers."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + type_ if type_ else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    # The trace id lets a user's report of this error be found among the traces and logs.
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        trace_id = format(span_context.trace_id, "032x")
        body.setdefault("trace_id", trace_id)
        headers = {**(headers or {}), "X-Trace-Id": trace_id}
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _location(loc: tuple[int | str, ...]) -> str:
    # ("body", "tasks", 0, "title") -> "body.tasks[0].title": what a client can act on.
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _problem(request: Request, exc: ProblemError) -> Response:
    return problem_response(
        exc.status,
        exc.detail,
        title=exc.title,
        type_=exc.type,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extensions,
    )


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(
        exc.status_code,
        detail,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _validation(request: Request, exc: RequestValidationError) -> Response:
    errors = [
        {"location": _location(tuple(err["loc"])), "message": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
    return problem_response(
        422,
        f"The request is not valid: {summary}",
        title="Validation failed",
        type_="validation",
        instance=request.url.path,
        errors=errors,
    )


async def _integrity(request: Request, exc: IntegrityError) -> Response:
    # A constraint the handlers did not pre-check (a race between two writers, usually).
    log.info("integrity_error", path=request.url.path, error=str(exc.orig))
    return problem_response(
        409,
        "The request conflicts with existing data (a duplicate or a dangling reference).",
        type_="conflict",
        instance=request.url.path,
    )


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.exception("unhandled_error", path=request.url.path, method=request.method)
    return problem_response(
        500,
        "An unexpected error occurred; it has been logged.",
        type_="internal",
        instance=request.url.path,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the problem-details shape."""
    app.add_exception_handler(ProblemError, _problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, _integrity)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unhandled)
