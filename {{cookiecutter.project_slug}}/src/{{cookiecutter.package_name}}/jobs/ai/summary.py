"""Project summaries: queued by the API, produced by a job with a pinned prompt, stored with
the prompt id, its hash and the model, fetchable afterwards.

The AI call is a CLIENT span named after the GenAI conventions (`chat <model>`, with
`gen_ai.*` attributes and our `app.prompt.id`); its log lines carry the prompt id. A job that
runs again for a summary already done (at-least-once delivery) returns without a second call.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from opentelemetry.trace import SpanKind
from sqlalchemy import ForeignKey, Index, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, TimestampMixin, utcnow
from {{ cookiecutter.package_name }}.jobs.ai.prompts import PromptError, load_prompt
from {{ cookiecutter.package_name }}.jobs.ai.provider import ChatProvider, build_provider
from {{ cookiecutter.package_name }}.jobs.errors import PermanentJobError
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, job
from {{ cookiecutter.package_name }}.jobs.transfers.model import TransferStatus
from {{ cookiecutter.package_name }}.observability.logging import bind_job_context
from {{ cookiecutter.package_name }}.observability.tracing import genai_attributes
from {{ cookiecutter.package_name }}.resources.projects.model import Project
from {{ cookiecutter.package_name }}.resources.tasks.model import Task

log = structlog.get_logger(__name__)

SUMMARY_JOB = "ai.summarize_project"
PROMPT_ID = "project_summary"
MAX_TASKS = 200  # the newest tasks only: bounded prompt size and cost


class AiSummary(IdMixin, TimestampMixin, Base):
    """A requested project summary and, once done, its text and provenance."""

    __tablename__ = "ai_summaries"
    __table_args__ = (Index("ix_ai_summaries_project_created", "project_id", "created_at"),)

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID]
    requested_by: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(20), default=TransferStatus.queued)
    provider: Mapped[str | None] = mapped_column(String(50))
    prompt_id: Mapped[str | None] = mapped_column(String(100))
    prompt_sha256: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]


def provider_for(env: JobEnv) -> ChatProvider:
    """The process's provider, built once from settings."""
    provider: ChatProvider | None = env.extras.get("ai_provider")
    if provider is None:
        provider = build_provider(env.settings, env.http)
        env.extras["ai_provider"] = provider
    return provider


async def _set(env: JobEnv, summary_id: uuid.UUID, **values: Any) -> None:
    async with env.db.writer() as session, session.begin():
        await session.execute(update(AiSummary).where(AiSummary.id == summary_id).values(**values))


async def _mark_failed(env: JobEnv, args: JobArgs, error: str) -> None:
    await _set(
        env,
        uuid.UUID(args["summary_id"]),
        status=TransferStatus.failed,
        error=error,
        finished_at=utcnow(),
    )


def _task_line(task: Task) -> str:
    due = f", due {task.due_date.isoformat()}" if task.due_date else ""
    title = " ".join(task.title.split())  # one line per task, whatever the title holds
    return f"- {title} [{task.status}{due}]"


@job(SUMMARY_JOB, on_dead=_mark_failed)
async def summarize_project(env: JobEnv, args: JobArgs) -> str:
    """Render the pinned prompt with the project's newest tasks, call the provider, store."""
    summary_id = uuid.UUID(args["summary_id"])
    try:
        prompt = load_prompt(env.settings.prompts_dir, PROMPT_ID)
    except PromptError as exc:
        raise PermanentJobError(str(exc)) from None
    async with env.db.reader(prefer_primary=True) as session:
        record = await session.get(AiSummary, summary_id)
        if record is None:
            raise PermanentJobError(f"summary {summary_id} does not exist")
        if record.status == TransferStatus.done:
            # A redelivery of a finished job: the stored result stands, no second (paid) call.
            log.info("ai_summary_already_done", summary_id=str(summary_id))
            return record.model or ""
        project = await session.scalar(
            select(Project).where(Project.org_id == record.org_id, Project.id == record.project_id)
        )
        if project is None:
            raise PermanentJobError("the project no longer exists")
        tasks = list(
            await session.scalars(
                select(Task)
                .where(Task.org_id == record.org_id, Task.project_id == record.project_id)
                .order_by(Task.created_at.desc(), Task.id.desc())
                .limit(MAX_TASKS)
            )
        )
    provider = provider_for(env)
    await _set(
        env,
        summary_id,
        status=TransferStatus.running,
        provider=provider.name,
        prompt_id=prompt.ref,
        prompt_sha256=prompt.sha256,
    )
    messages = prompt.messages(
        project_name=project.name,
        project_description=project.description or "(none)",
        task_count=len(tasks),
        tasks="\n".join(_task_line(t) for t in tasks) or "(no tasks)",
    )
    attributes = genai_attributes(
        system=provider.name, model=prompt.model_version, prompt_id=prompt.ref
    )
    with (
        bind_job_context(prompt_id=prompt.ref),
        env.tracer.start_as_current_span(
            f"chat {prompt.model_version}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span,
    ):
        log.info("ai_call", model=prompt.model_version, provider=provider.name)
        completion = await provider.complete(
            model=prompt.model_version, messages=messages, params=prompt.params
        )
        span.set_attribute("gen_ai.response.model", completion.model)
        for key, name in (("prompt_tokens", "input"), ("completion_tokens", "output")):
            if isinstance(completion.usage.get(key), int):
                span.set_attribute(f"gen_ai.usage.{name}_tokens", completion.usage[key])
        log.info("ai_call_done", model=completion.model, usage=completion.usage)
    await _set(
        env,
        summary_id,
        status=TransferStatus.done,
        model=completion.model,
        result=completion.text,
        error=None,
        finished_at=utcnow(),
    )
    return completion.model
