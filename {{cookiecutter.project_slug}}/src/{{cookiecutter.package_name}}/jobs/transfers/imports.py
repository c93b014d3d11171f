"""Import tasks from CSV: each row validated on its own; bad rows are reported with their line
number and reason, good rows are applied (so importing the same file again changes nothing).
The file may start with a UTF-8 BOM and hold quoted newlines.

Columns: `title`, and `external_key` or `id`; `status`, `due_date` (YYYY-MM-DD) and
`assignee_id` are optional; other columns (an export's `created_at`...) are ignored. A row
with an external key is upserted by that key (created, or moved into this project). A row
without one updates the task of this project with that `id` (what the export writes for a
task created without a key); an id naming no task of this project is rejected, never
created, so a second import cannot duplicate it. So whatever the export of a project writes
imports back into that project unchanged.

Each batch commits on its own, like an API write: the tasks it changed are invalidated in the
cache around the commit, and `task.created` / `task.updated` events go to the outbox in the
same transaction. A finished import is not redone when its job is delivered again.
"""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field, ValidationError, field_validator, model_validator
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from {{ cookiecutter.package_name }}.cache import VersionedCache, build_cache
from {{ cookiecutter.package_name }}.db.base import utcnow
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.db.upsert import Outcome
from {{ cookiecutter.package_name }}.jobs.errors import PermanentJobError
from {{ cookiecutter.package_name }}.jobs.outbox import Outbox
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, job
from {{ cookiecutter.package_name }}.jobs.transfers.model import ImportJob, TransferStatus
from {{ cookiecutter.package_name }}.jobs.webhooks.events import emit, org_endpoints
from {{ cookiecutter.package_name }}.resources.orgs.model import Membership
from {{ cookiecutter.package_name }}.resources.tasks.model import Task, TaskStatus
from {{ cookiecutter.package_name }}.resources.tasks.reads import invalidate_tasks_after_commit
from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository
from {{ cookiecutter.package_name }}.resources.tasks.schemas import ExternalKey, TaskOut, Title
from {{ cookiecutter.package_name }}.schemas import Schema

log = structlog.get_logger(__name__)

IMPORT_JOB = "imports.tasks_csv"
MAX_REPORTED_ERRORS = 1000
# Rows per statement and transaction: a crash loses at most one batch, which a retry redoes.
BATCH_ROWS = 500
# What a row may change; the project is the import's (by key) or stays (by id).
FIELDS = ("title", "status", "due_date", "assignee_id")
# This cache only replaces version tokens, which carry no schema version (cache/keys.py).
INVALIDATION_ONLY = "invalidation-only"


class ImportRow(Schema):
    """One CSV row, validated; empty optional cells mean "not set"."""

    model_config = Schema.model_config | {"extra": "ignore"}

    external_key: ExternalKey | None = None
    id: uuid.UUID | None = None
    title: Title
    status: TaskStatus = TaskStatus.todo
    due_date: date | None = Field(default=None, strict=False)
    assignee_id: uuid.UUID | None = None

    @field_validator("external_key", "id", "status", "due_date", "assignee_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: Any) -> Any:
        if value == "" or value is None:
            return TaskStatus.todo if info.field_name == "status" else None
        return value

    @field_validator("due_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            return date.fromisoformat(value.strip())  # ValueError names the bad day
        return value

    @model_validator(mode="after")
    def _identified(self) -> ImportRow:
        if self.external_key is None and self.id is None:
            raise ValueError("external_key is required (or the id of a task of this project)")
        return self

    def values(self) -> dict[str, Any]:
        """The fields a row writes."""
        return {name: getattr(self, name) for name in FIELDS}


def import_path(storage_dir: Path, import_id: uuid.UUID) -> Path:
    """Where an uploaded CSV waits for its import."""
    return storage_dir / "imports" / f"{import_id}.csv"


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
    """(line, row, problem) per record; `line` is where the record starts (the header is 1).

    A structural problem (wrong number of cells) comes back as `problem` with no row."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise PermanentJobError("the file is empty; expected a header row") from None
        header = [h.strip() for h in header]
        missing = [c for c in ("external_key", "title") if c not in header]
        if "id" in header and "external_key" in missing:
            missing.remove("external_key")
        if missing:
            raise PermanentJobError(
                f"line 1: the header lacks required columns {missing}"
                " (an export's id column may stand in for external_key)"
            )
        if len(set(header)) != len(header):
            raise PermanentJobError("line 1: the header repeats a column")
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are allowed
            if len(cells) != len(header):
                yield line, None, f"expected {len(header)} cells, found {len(cells)}"
                continue
            yield line, dict(zip(header, cells, strict=True)), None


def _parse(path: Path) -> tuple[list[tuple[int, ImportRow]], list[dict[str, Any]]]:
    """Validate every row (in a thread: parsing is CPU work); a repeated key or id is rejected."""
    good: list[tuple[int, ImportRow]] = []
    bad: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    try:
        for line, raw, problem in read_rows(path):
            if raw is None:
                bad.append({"line": line, "reason": problem})
                continue
            try:
                row = ImportRow.model_validate(raw)
            except ValidationError as exc:
                bad.append({"line": line, "reason": _reason(exc)})
                continue
            name, ident = ("external_key", row.external_key) if row.external_key else ("id", row.id)
            seen = f"{name}:{ident}"
            if seen in first_seen:
                reason = f"{name} {str(ident)!r} already on line {first_seen[seen]}"
                bad.append({"line": line, "reason": reason})
                continue
            first_seen[seen] = line
            good.append((line, row))
    except UnicodeDecodeError as exc:
        raise PermanentJobError(f"the file is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise PermanentJobError(f"the file is not valid CSV: {exc}") from None
    return good, bad


@dataclass
class Applied:
    """What one batch did."""

    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    rejected: list[dict[str, Any]] = field(default_factory=list)


async def _apply(
    env: JobEnv, cache: VersionedCache, record: ImportJob, rows: list[tuple[int, ImportRow]]
) -> Applied:
    """Write one batch in its own unit of work, as an API write does (cache, events)."""
    org_id, project_id = record.org_id, record.project_id
    applied = Applied()
    uow = UnitOfWork(env.db)
    committed = False
    try:
        session = uow.session
        repo = TaskRepository(session, org_id)
        keyed = [
            (r.external_key, {**r.values(), "project_id": project_id})
            for _, r in rows
            if r.external_key is not None
        ]
        upserted = await repo.upsert_many_by_key(keyed)
        changed: dict[uuid.UUID, str] = dict.fromkeys(upserted.created, "task.created")
        changed.update(dict.fromkeys(upserted.updated, "task.updated"))
        applied.counts = upserted.counts()

        by_id = [(line, r.id, r) for line, r in rows if r.external_key is None and r.id]
        found: dict[uuid.UUID, Task] = {}
        if by_id:
            # Locked until the commit: the comparison below holds when the update is written.
            stmt = select(Task).where(
                Task.org_id == org_id,
                Task.project_id == project_id,
                Task.id.in_([task_id for _, task_id, _ in by_id]),
            )
            found = {t.id: t for t in await session.scalars(stmt.with_for_update())}
        for line, task_id, row in by_id:
            task = found.get(task_id)
            if task is None:
                reason = f"id {task_id} names no task of this project (give an external_key)"
                applied.rejected.append({"line": line, "reason": reason})
                continue
            changes = {k: v for k, v in row.values().items() if getattr(task, k) != v}
            if not changes:
                applied.counts[Outcome.unchanged] += 1
                continue
            await repo.update(task, changes)
            applied.counts[Outcome.updated] += 1
            changed[task.id] = "task.updated"

        invalidate_tasks_after_commit(uow, cache, org_id, *changed)
        endpoints = await org_endpoints(session, org_id) if changed else []
        if endpoints:  # one lookup per batch, not one per event
            outbox = Outbox(uow, env.relay)
            tasks = await session.scalars(
                select(Task)
                .options(joinedload(Task.project))
                .where(Task.org_id == org_id, Task.id.in_(list(changed)))
                .execution_options(populate_existing=True)
            )
            for task in tasks:
                event = TaskOut.model_validate(task)
                await emit(outbox, changed[task.id], org_id, event, endpoints=endpoints)
        committed = True
    finally:
        await uow.close(commit=committed)
    return applied


@asynccontextmanager
async def _cache(env: JobEnv) -> AsyncIterator[VersionedCache]:
    """The cache to invalidate (its own Redis connection, closed with the job)."""
    cache = build_cache(env.settings, INVALIDATION_ONLY)
    try:
        yield cache
    finally:
        await cache.close()


async def _set(env: JobEnv, import_id: uuid.UUID, **values: Any) -> None:
    async with env.db.writer() as session, session.begin():
        await session.execute(update(ImportJob).where(ImportJob.id == import_id).values(**values))


async def _mark_failed(env: JobEnv, args: JobArgs, error: str) -> None:
    await _set(
        env,
        uuid.UUID(args["import_id"]),
        status=TransferStatus.failed,
        error=error,
        finished_at=utcnow(),
    )


def _outcome(record: ImportJob) -> dict[str, int]:
    return {"created": record.created, "updated": record.updated, "unchanged": record.unchanged}


@job(IMPORT_JOB, on_dead=_mark_failed)
async def import_tasks(env: JobEnv, args: JobArgs) -> dict[str, int]:
    """Validate the uploaded CSV and apply its good rows to the project."""
    import_id = uuid.UUID(args["import_id"])
    async with env.db.reader(prefer_primary=True) as session:
        record = await session.get(ImportJob, import_id)
        if record is None:
            raise PermanentJobError(f"import {import_id} does not exist")
        members = set(
            await session.scalars(
                select(Membership.user_id).where(Membership.org_id == record.org_id)
            )
        )
    if record.status == TransferStatus.done:
        # Delivered again (at least once): the report stands; running it again would turn
        # its created rows into unchanged ones.
        log.info("import_already_done", import_id=str(import_id))
        return _outcome(record)
    await _set(env, import_id, status=TransferStatus.running)
    path = import_path(env.settings.storage_dir, import_id)
    good, bad = await asyncio.to_thread(_parse, path)

    counts = dict.fromkeys(Outcome, 0)
    async with _cache(env) as cache:
        for offset in range(0, len(good), BATCH_ROWS):
            batch: list[tuple[int, ImportRow]] = []
            for line, row in good[offset : offset + BATCH_ROWS]:
                if row.assignee_id is not None and row.assignee_id not in members:
                    bad.append({"line": line, "reason": "assignee_id is not a member"})
                else:
                    batch.append((line, row))
            applied = await _apply(env, cache, record, batch)
            bad.extend(applied.rejected)
            for outcome, count in applied.counts.items():
                counts[outcome] += count
    bad.sort(key=lambda e: e["line"])
    await _set(
        env,
        import_id,
        status=TransferStatus.done,
        created=counts[Outcome.created],
        updated=counts[Outcome.updated],
        unchanged=counts[Outcome.unchanged],
        rejected=len(bad),
        errors=bad[:MAX_REPORTED_ERRORS],
        error=None,
        finished_at=utcnow(),
    )
    log.info("import_done", import_id=str(import_id), rejected=len(bad), **counts)
    return {str(k): v for k, v in counts.items()}
