"""Chat-completion providers: an OpenAI-compatible HTTP client and a deterministic local one.

The HTTP client does no retrying of its own: it turns every failure into an error the job
wrapper classifies (429 with Retry-After and 5xx and timeouts retry; other 4xx dead-letter; a
malformed body retries, as providers do send the odd truncated response).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog

from {{ cookiecutter.package_name }}.jobs.errors import RetryableJobError, http_error
from {{ cookiecutter.package_name }}.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Completion:
    """What a provider answered."""

    text: str
    model: str
    usage: dict[str, Any] = field(default_factory=dict)


class ChatProvider(Protocol):
    """Anything that completes a chat."""

    name: str

    async def complete(
        self, *, model: str, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> Completion:
        """One completion; raises for the job wrapper to classify."""


class OpenAICompatible:
    """POST {base_url}/chat/completions with a bearer key (OpenAI and compatible servers)."""

    name = "openai"

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, api_key: str | None, timeout: float
    ) -> None:
        self.http = http
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))

    async def complete(
        self, *, model: str, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> Completion:
        """Call the endpoint once."""
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        started = time.perf_counter()
        response = await self.http.post(
            self.url,
            json={"model": model, "messages": messages, **params},
            headers=headers,
            timeout=self.timeout,
        )
        if not response.is_success:
            raise http_error(response, "AI provider")
        try:
            body = response.json()
            text = body["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RetryableJobError(f"AI provider sent a malformed response: {exc!r}") from None
        log.info(
            "ai_provider_response",
            model=body.get("model", model),
            latency_ms=round((time.perf_counter() - started) * 1000),
            usage=body.get("usage"),
        )
        return Completion(
            text=text, model=str(body.get("model", model)), usage=body.get("usage") or {}
        )


class LocalProvider:
    """Deterministic and offline, for dev and tests: an extractive summary of the prompt's task
    lines. The same input always gives the same output; no network, no key."""

    name = "local"

    async def complete(
        self, *, model: str, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> Completion:
        """Summarise the bullet lines of the last message."""
        prompt = messages[-1]["content"]
        tasks = [line[2:] for line in prompt.splitlines() if line.startswith("- ")]
        counts: dict[str, int] = {}
        for line in tasks:
            status = line.rsplit("[", 1)[-1].split(",")[0].strip(" ]") if "[" in line else "?"
            counts[status] = counts.get(status, 0) + 1
        by_status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks"
        bullets = "\n".join(f"- {t}" for t in tasks[:5])
        digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
        text = f"{len(tasks)} tasks ({by_status}).\n{bullets}\n(local summary {digest})".strip()
        return Completion(
            text=text, model="local-deterministic", usage={"prompt_chars": len(prompt)}
        )


def build_provider(settings: Settings, http: httpx.AsyncClient) -> ChatProvider:
    """The provider chosen by settings.ai_provider."""
    if settings.ai_provider == "openai":
        key = settings.ai_api_key.get_secret_value() if settings.ai_api_key else None
        return OpenAICompatible(http, settings.ai_base_url, key, settings.ai_timeout_seconds)
    return LocalProvider()
