"""Export a project's tasks as CSV: streamed from the database in chunks, so memory stays flat
however many rows there are, written to a temporary file and renamed into place when complete.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import uuid
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select, update

from {{ cookiecutter.package_name }}.db.base import utcnow
from {{ cookiecutter.package_name }}.jobs.errors import PermanentJobError
from {{ cookiecutter.package_name }}.jobs.registry import JobArgs, JobEnv, job
from {{ cookiecutter.package_name }}.jobs.transfers.model import ExportJob, TransferStatus
from {{ cookiecutter.package_name }}.resources.tasks.model import Task

log = structlog.get_logger(__name__)

EXPORT_JOB = "exports.tasks_csv"
COLUMNS = (
    "external_key",
    "title",
    "status",
    "due_date",
    "assignee_id",
    "id",
    "created_at",
    "updated_at",
)


def export_path(storage_dir: Path, export_id: uuid.UUID) -> Path:
    """Where the CSV of an export lives."""
    return storage_dir / "exports" / f"{export_id}.csv"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


async def _set(env: JobEnv, export_id: uuid.UUID, **values: Any) -> None:
    async with env.db.writer() as session, session.begin():
        await session.execute(update(ExportJob).where(ExportJob.id == export_id).values(**values))


async def _mark_failed(env: JobEnv, args: JobArgs, error: str) -> None:
    await _set(
        env,
        uuid.UUID(args["export_id"]),
        status=TransferStatus.failed,
        error=error,
        finished_at=utcnow(),
    )


@job(EXPORT_JOB, on_dead=_mark_failed)
async def export_tasks(env: JobEnv, args: JobArgs) -> int:
    """Write the project's tasks to the export's CSV file; returns the row count."""
    export_id = uuid.UUID(args["export_id"])
    async with env.db.reader(prefer_primary=True) as session:
        record = await session.get(ExportJob, export_id)
    if record is None:
        raise PermanentJobError(f"export {export_id} does not exist")
    if record.status == TransferStatus.done:
        # Delivered again (at least once): the file and its row count stand as they are.
        log.info("export_already_done", export_id=str(export_id))
        return record.row_count or 0
    await _set(env, export_id, status=TransferStatus.running)

    target = export_path(env.settings.storage_dir, export_id)
    partial = target.with_suffix(".partial")
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    columns = [getattr(Task, name) for name in COLUMNS]
    stmt = (
        select(*columns)
        .where(Task.org_id == record.org_id, Task.project_id == record.project_id)
        .order_by(Task.created_at, Task.id)
        .execution_options(yield_per=env.settings.export_chunk_rows)
    )
    rows = 0
    handle = await asyncio.to_thread(partial.open, "w", encoding="utf-8", newline="")
    try:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        # A read session: on the replica when there is one (an export may lag by milliseconds).
        async with env.db.reader(transaction=True) as session:
            result = await session.stream(stmt)
            async for chunk in result.partitions():
                writer.writerows([_cell(v) for v in row] for row in chunk)
                rows += len(chunk)
                await asyncio.to_thread(handle.write, buffer.getvalue())
                buffer.seek(0)
                buffer.truncate()
        await asyncio.to_thread(handle.write, buffer.getvalue())
    finally:
        await asyncio.to_thread(handle.close)
    await asyncio.to_thread(os.replace, partial, target)
    await _set(
        env,
        export_id,
        status=TransferStatus.done,
        row_count=rows,
        file_name=target.name,
        error=None,
        finished_at=utcnow(),
    )
    log.info("export_done", export_id=str(export_id), rows=rows)
    return rows
