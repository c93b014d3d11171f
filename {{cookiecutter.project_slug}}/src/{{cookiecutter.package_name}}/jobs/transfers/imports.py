"""Import tasks from CSV: each row validated on its own; bad rows are reported with their line
number and reason, good rows are upserted by external key (so importing the same file again
changes nothing). The file may start with a UTF-8 BOM and hold quoted newlines.

Columns: `external_key` and `title` are required; `status`, `due_date` (YYYY-MM-DD) and
`assignee_id` are optional; other columns (an export's `id`, `created_at`...) are ignored, so
an export can be edited and imported back.
"""

from __future__ import annotations

import asyncio
import csv
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field, ValidationError, field_validator
from sqlalchemy import select, update

from {{ cookiecutter.package_name }}.db.base import utcnow
from {{ cookiecutter.package_name }}.db.upsert import Outcome
from {{ cookiecutter.package_name }}.jobs.errors import PermanentJobError
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, job
from {{ cookiecutter.package_name }}.jobs.transfers.model import ImportJob, TransferStatus
from {{ cookiecutter.package_name }}.resources.orgs.model import Membership
from {{ cookiecutter.package_name }}.resources.tasks.model import TaskStatus
from {{ cookiecutter.package_name }}.resources.tasks.repository import TaskRepository
from {{ cookiecutter.package_name }}.resources.tasks.schemas import ExternalKey, Title
from {{ cookiecutter.package_name }}.schemas import Schema

log = structlog.get_logger(__name__)

IMPORT_JOB = "imports.tasks_csv"
REQUIRED = ("external_key", "title")
MAX_REPORTED_ERRORS = 1000
# Rows per statement and transaction: a crash loses at most one batch, which a retry redoes.
BATCH_ROWS = 500


class ImportRow(Schema):
    """One CSV row, validated; empty optional cells mean "not set"."""

    model_config = Schema.model_config | {"extra": "ignore"}

    external_key: ExternalKey
    title: Title
    status: TaskStatus = TaskStatus.todo
    due_date: date | None = Field(default=None, strict=False)
    assignee_id: uuid.UUID | None = None

    @field_validator("status", "due_date", "assignee_id", mode="before")
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
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise PermanentJobError(f"line 1: the header lacks required columns {missing}")
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
    """Validate every row (in a thread: parsing is CPU work); duplicates keys are rejected."""
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
            if row.external_key in first_seen:
                bad.append(
                    {
                        "line": line,
                        "reason": f"external_key {row.external_key!r} already on line "
                        f"{first_seen[row.external_key]}",
                    }
                )
                continue
            first_seen[row.external_key] = line
            good.append((line, row))
    except UnicodeDecodeError as exc:
        raise PermanentJobError(f"the file is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise PermanentJobError(f"the file is not valid CSV: {exc}") from None
    return good, bad


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


@job(IMPORT_JOB, on_dead=_mark_failed)
async def import_tasks(env: JobEnv, args: JobArgs) -> dict[str, int]:
    """Validate the uploaded CSV and upsert its good rows into the project."""
    import_id = uuid.UUID(args["import_id"])
    async with env.db.reader(prefer_primary=True) as session:
        record = await session.get(ImportJob, import_id)
    if record is None:
        raise PermanentJobError(f"import {import_id} does not exist")
    await _set(env, import_id, status=TransferStatus.running)
    path = import_path(env.settings.storage_dir, import_id)
    good, bad = await asyncio.to_thread(_parse, path)

    counts = {Outcome.created: 0, Outcome.updated: 0, Outcome.unchanged: 0}
    async with env.db.reader(prefer_primary=True) as session:
        members = set(
            await session.scalars(
                select(Membership.user_id).where(Membership.org_id == record.org_id)
            )
        )
    for offset in range(0, len(good), BATCH_ROWS):
        batch: list[tuple[str, dict[str, Any]]] = []
        for line, row in good[offset : offset + BATCH_ROWS]:
            if row.assignee_id is not None and row.assignee_id not in members:
                bad.append({"line": line, "reason": "assignee_id is not a member"})
                continue
            values = row.model_dump(exclude={"external_key"})
            batch.append((row.external_key, {**values, "project_id": record.project_id}))
        async with env.db.writer() as session, session.begin():
            done = await TaskRepository(session, record.org_id).upsert_many_by_key(batch)
        for outcome, count in done.items():
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
