"""structlog configuration: JSON lines in production, a readable console in dev.

The standard library's loggers (uvicorn, arq, sqlalchemy, alembic) go through the same
processors, so every line has one shape: with the trace and span id of the current span, the
request id, and the org, user, job and prompt ids bound where they are known.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import structlog
from opentelemetry import trace

# Keys whose values never reach a log line, whoever logs them, at any depth of the event.
_SECRET_KEYS = (
    "password",
    "passwd",
    "token",
    "secret",
    "authorization",
    "api_key",
    "apikey",
    "cookie",
    "credential",
    "private_key",
)
REDACTED = "[redacted]"
# How deep redaction looks into nested dicts and lists (log events are shallow; this is a guard).
_MAX_DEPTH = 8
# Query parameters whose values stay out of every line: uvicorn's access line and httpx's
# request line log URLs verbatim (`?token=...`, `?api_key=...`).
_SECRET_QUERY = re.compile(
    r"([?&][^=&#\s]*(?:pass|token|secret|key|auth|sig|session|credential|code)[^=&#\s]*=)"
    r"[^&#\s\"']*",
    re.IGNORECASE,
)
# Libraries that install their own handlers (uvicorn, arq's CLI): theirs are removed so that
# their records reach the root handler, and so our processors.
ROUTED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "arq",
    "arq.worker",
    "arq.jobs",
    "arq.connections",
)


def _is_secret(key: object) -> bool:
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    return isinstance(key, str) and any(part in key.lower() for part in _SECRET_KEYS)


def _redact(value: Any, depth: int = 0) -> Any:
    """`value` with secret-looking keys' values and URL query values replaced, at any depth."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        return redact_query(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret(k) else _redact(v, depth + 1) for k, v in value.items()}
    if type(value) is tuple and len(value) == 2 and _is_secret(value[0]):
        # (name, value) pairs, as ASGI and httpx carry headers: [(b"authorization", b"...")].
        return (value[0], REDACTED)
    if type(value) in (list, tuple):
        items = [_redact(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def redact_secrets(
    _logger: object, _method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Replace secret-looking keys' values and URL query values with a marker, at any depth.

    Foreign records (uvicorn, httpx, arq) arrive with their message already formatted as
    `event`, so a URL in an access line is scrubbed here as well."""
    for key, value in event.items():
        if key.startswith("_"):
            continue  # structlog's own entries (the stdlib record), never rendered
        event[key] = REDACTED if _is_secret(key) else _redact(value)
    return event


def redact_query(text: str) -> str:
    """`text` with the values of secret-looking URL query parameters replaced by a marker."""
    return _SECRET_QUERY.sub(rf"\1{REDACTED}", text) if "?" in text else text


def add_trace_context(
    _logger: object, _method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Add the current span's `trace_id` and `span_id`, so a log line leads to its trace."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event.setdefault("span_id", format(span_context.span_id, "016x"))
    return event


class BoundContext:
    """Context bound into every log line of this task; `with` unbinds it again on exit."""

    def __init__(self, **values: Any) -> None:
        self._tokens = structlog.contextvars.bind_contextvars(
            **{key: value for key, value in values.items() if value is not None}
        )

    def __enter__(self) -> BoundContext:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        structlog.contextvars.reset_contextvars(**self._tokens)


def bind_job_context(
    *, job_id: object | None = None, prompt_id: object | None = None, **extra: Any
) -> BoundContext:
    """Bind a job's ids into every log line it writes: `with bind_job_context(job_id=...):`."""
    return BoundContext(
        job_id=None if job_id is None else str(job_id),
        prompt_id=None if prompt_id is None else str(prompt_id),
        **extra,
    )


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        add_trace_context,
        redact_secrets,
    ]
    # Plain tracebacks in the console: no frame locals, which hold passwords and tokens.
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if json else lambda _l, _m, e: e,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ROUTED_LOGGERS:
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
