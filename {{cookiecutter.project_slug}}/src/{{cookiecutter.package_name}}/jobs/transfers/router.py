"""HTTP side of exports and imports: queue them, follow them, download the CSV."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Response, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy import select

from {{ cookiecutter.package_name }}.dependencies import OutboxDep, SessionDep, SettingsDep
from {{ cookiecutter.package_name }}.errors import ConflictError, NotFoundError, ProblemError
from {{ cookiecutter.package_name }}.jobs.transfers.exports import EXPORT_JOB, export_path
from {{ cookiecutter.package_name }}.jobs.transfers.imports import IMPORT_JOB, import_path
from {{ cookiecutter.package_name }}.jobs.transfers.model import (
    FILE_NAME_MAX,
    ExportJob,
    ImportJob,
    TransferStatus,
)
from {{ cookiecutter.package_name }}.resources.projects.repository import ProjectRepository
from {{ cookiecutter.package_name }}.schemas import Schema, storable_text
from {{ cookiecutter.package_name }}.security.tenancy import OrgAccess, authorize

router = APIRouter(prefix="/orgs/{org_id}", tags=["exports and imports"])
UPLOAD_CHUNK = 1024 * 1024

# The download is a file, not JSON: documented so clients and schemathesis expect text/csv.
CSV_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {"description": "The CSV file.", "content": {"text/csv": {}}}
}


class ExportOut(Schema):
    """An export and where it stands; `download_url` once done."""

    id: uuid.UUID
    project_id: uuid.UUID
    status: TransferStatus
    row_count: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    download_url: str | None = None


class RejectedRow(Schema):
    """A rejected row."""

    line: int
    reason: str


class ImportOut(Schema):
    """An import: counts by outcome and the rejected rows (line number and reason)."""

    id: uuid.UUID
    project_id: uuid.UUID
    status: TransferStatus
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[RejectedRow]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def _export_out(record: ExportJob) -> ExportOut:
    out = ExportOut.model_validate(record)
    if record.status == TransferStatus.done:
        out.download_url = f"/orgs/{record.org_id}/exports/{record.id}/download"
    return out


async def _project(session: SessionDep, access: OrgAccess, project_id: uuid.UUID) -> None:
    if await ProjectRepository(session, access.org_id).get(project_id) is None:
        raise NotFoundError("Project")


@router.post("/projects/{project_id}/exports", status_code=status.HTTP_202_ACCEPTED)
async def start_export(
    project_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("projects:export")],
    session: SessionDep,
    outbox: OutboxDep,
) -> ExportOut:
    """Queue a CSV export of the project's tasks; poll it, then download."""
    await _project(session, access, project_id)
    record = ExportJob(
        org_id=access.org_id,
        project_id=project_id,
        requested_by=access.user_id,
        status=TransferStatus.queued,
    )
    session.add(record)
    await session.flush()
    outbox.add(EXPORT_JOB, {"export_id": str(record.id)}, org_id=access.org_id)
    return _export_out(record)


async def _export(session: SessionDep, access: OrgAccess, export_id: uuid.UUID) -> ExportJob:
    record = await session.scalar(
        select(ExportJob).where(ExportJob.org_id == access.org_id, ExportJob.id == export_id)
    )
    if record is None:
        raise NotFoundError("Export")
    return record


@router.get("/exports/{export_id}")
async def get_export(
    export_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("projects:export")],
    session: SessionDep,
) -> ExportOut:
    """An export's status."""
    return _export_out(await _export(session, access, export_id))


@router.get(
    "/exports/{export_id}/download",
    response_model=None,
    response_class=Response,
    responses=CSV_DOWNLOAD,
)
async def download_export(
    export_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("projects:export")],
    session: SessionDep,
    settings: SettingsDep,
) -> FileResponse:
    """The CSV file of a finished export."""
    record = await _export(session, access, export_id)
    if record.status != TransferStatus.done:
        raise ConflictError(f"The export is {record.status}; download it once it is done.")
    path = export_path(settings.storage_dir, record.id)
    if not await asyncio.to_thread(path.exists):
        raise ProblemError(410, "The export file is no longer available.", type_="gone")
    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        filename=f"project-{record.project_id}-tasks.csv",
    )


async def _save_upload(upload: UploadFile, target: Any, limit: int) -> None:
    """Stream the upload to disk, refusing it past `limit` bytes."""
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    size = 0
    handle = await asyncio.to_thread(target.open, "wb")
    try:
        while chunk := await upload.read(UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                raise ProblemError(
                    413, f"The file is larger than {limit} bytes.", type_="too-large"
                )
            await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(target.unlink, missing_ok=True)
        raise
    await asyncio.to_thread(handle.close)
    if size == 0:
        await asyncio.to_thread(target.unlink, missing_ok=True)
        raise ProblemError(422, "The file is empty.", type_="validation")


def _file_name(upload: UploadFile) -> str:
    """The upload's file name as stored: what the column can hold, or a 422."""
    name = upload.filename or "upload.csv"
    try:
        storable_text(name)
    except ValueError as exc:
        raise ProblemError(422, f"The file name {exc}.", type_="validation") from None
    if len(name) > FILE_NAME_MAX:
        raise ProblemError(
            422, f"The file name is longer than {FILE_NAME_MAX} characters.", type_="validation"
        )
    return name


@router.post("/projects/{project_id}/imports", status_code=status.HTTP_202_ACCEPTED)
async def start_import(
    project_id: uuid.UUID,
    file: UploadFile,
    access: Annotated[OrgAccess, authorize("tasks:import")],
    session: SessionDep,
    settings: SettingsDep,
    outbox: OutboxDep,
) -> ImportOut:
    """Upload a CSV of tasks (multipart field `file`); rows are validated and applied by a job."""
    await _project(session, access, project_id)
    file_name = _file_name(file)
    record = ImportJob(
        org_id=access.org_id,
        project_id=project_id,
        requested_by=access.user_id,
        status=TransferStatus.queued,
        file_name=file_name,
        created=0,
        updated=0,
        unchanged=0,
        rejected=0,
        errors=[],
    )
    session.add(record)
    await session.flush()
    await _save_upload(
        file, import_path(settings.storage_dir, record.id), settings.import_max_bytes
    )
    outbox.add(IMPORT_JOB, {"import_id": str(record.id)}, org_id=access.org_id)
    return ImportOut.model_validate(record)


@router.get("/imports/{import_id}")
async def get_import(
    import_id: uuid.UUID,
    access: Annotated[OrgAccess, authorize("tasks:import")],
    session: SessionDep,
) -> ImportOut:
    """An import's status, counts and rejected rows."""
    record = await session.scalar(
        select(ImportJob).where(ImportJob.org_id == access.org_id, ImportJob.id == import_id)
    )
    if record is None:
        raise NotFoundError("Import")
    return ImportOut.model_validate(record)
