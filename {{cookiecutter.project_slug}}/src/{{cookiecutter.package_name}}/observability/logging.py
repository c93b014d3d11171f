"""structlog configuration: JSON lines in production, a readable console in dev.

The standard library's loggers (uvicorn, arq, sqlalchemy, alembic) go through the same
processors, so every line has one shape: with the trace and span id of the current span, the
request id, and the org, user, job and prompt ids bound where they are known.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Any

import structlog
from opentelemetry import trace

# Keys whose values never reach a log line, whoever logs them.
_SECRET_KEYS = ("password", "token", "secret", "authorization", "api_key", "cookie")
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


def redact_secrets(
    _logger: object, _method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Replace the value of any secret-looking key with a marker."""
    for key in event:
        if any(part in key.lower() for part in _SECRET_KEYS):
            event[key] = "[redacted]"
    return event


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
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
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
