"""Error classification for jobs: retry what may succeed later, dead-letter what never will.

Retryable: timeouts (the remote's, or the job's own time limit), connection failures, HTTP 5xx,
408, 425 and 429 (honouring Retry-After, in seconds, decimals allowed, or as an HTTP date).
Permanent: any other HTTP 4xx, validation errors (`ValueError`, pydantic's `ValidationError`)
and `PermanentJobError`.
Anything unexpected (a `KeyError`, a `TypeError`, a database restart) is retried too, bounded by
the job's max tries: a bug then lands in the dead-letter table with its error instead of
vanishing, and a transient one heals by itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import pydantic

RETRYABLE_STATUS = frozenset({408, 425, 429})
_SECONDS = re.compile(r"[0-9]+(?:[.][0-9]+)?")


class PermanentJobError(Exception):
    """The job can never succeed with these arguments: dead-letter it at once."""


class RetryableJobError(Exception):
    """A transient failure; `retry_after` (seconds) is the earliest sensible retry."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HttpStatusError(Exception):
    """A remote answered with an error status (webhook receiver, AI provider)."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Classified:
    """Whether an error is worth retrying, and the delay the remote asked for."""

    retryable: bool
    retry_after: float | None = None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def http_error(response: httpx.Response, what: str) -> HttpStatusError:
    """An HttpStatusError for a non-2xx response, with its Retry-After parsed."""
    return HttpStatusError(
        response.status_code,
        f"{what} answered {response.status_code} {response.reason_phrase}",
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def classify(exc: BaseException) -> Classified:
    """Retryable or permanent, by the rules in this module's docstring."""
    if isinstance(exc, PermanentJobError):
        return Classified(retryable=False)
    if isinstance(exc, RetryableJobError):
        return Classified(retryable=True, retry_after=exc.retry_after)
    if isinstance(exc, HttpStatusError):
        transient = exc.status >= 500 or exc.status in RETRYABLE_STATUS
        return Classified(retryable=transient, retry_after=exc.retry_after)
    if isinstance(exc, pydantic.ValidationError | ValueError):
        return Classified(retryable=False)
    # Timeouts, refused connections, DNS failures, a database restart, an unexpected bug.
    return Classified(retryable=True)
