"""Idempotency-Key for POST, PUT and PATCH (IETF draft-ietf-httpapi-idempotency-key-header).

The key is scoped to the authenticated caller. Inside the request's one transaction (see
db/unit_of_work.py) the middleware:

1. takes a transaction-scoped lock on (caller, key): if another request holds it -> 409;
2. looks the key up: same request fingerprint -> replay the stored response
   (`Idempotent-Replayed: true`), different fingerprint -> 422;
3. otherwise runs the handler and, on 2xx/3xx, stores the response in the same transaction.

The write and its record commit together or not at all, so a retried write applies once.
Anonymous requests (register, login) carry no caller to scope a key to: the header is ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Index, Integer, LargeBinary, String, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.db.base import Base, IdMixin, utcnow
from {{ cookiecutter.package_name }}.db.unit_of_work import UnitOfWork
from {{ cookiecutter.package_name }}.errors import problem_response
from {{ cookiecutter.package_name }}.observability.metrics import IDEMPOTENT_REPLAYS
from {{ cookiecutter.package_name }}.security.tokens import InvalidTokenError, Tokens

HEADER = b"idempotency-key"
REPLAY_HEADER = b"idempotent-replayed"
METHODS = frozenset({"POST", "PUT", "PATCH"})
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the draft's sf-string allows
_STORED_HEADERS = frozenset({b"content-type", b"location"})


class IdempotencyRecord(IdMixin, Base):
    """A completed idempotent request: who sent it, what it was, and what it answered."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_user_key", "user_id", "key", unique=True),)

    user_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    location: Mapped[str | None] = mapped_column(String(2000))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


@dataclass(frozen=True, slots=True)
class _Request:
    user_id: uuid.UUID
    key: str
    fingerprint: str


def _lock_id(user_id: uuid.UUID, key: str) -> int:
    digest = hashlib.sha256(user_id.bytes + key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _InProcessLocks:
    """SQLite has no advisory locks; the embedded mode is one process, so a set is enough."""

    def __init__(self) -> None:
        self._held: set[tuple[uuid.UUID, str]] = set()
        self._guard = asyncio.Lock()

    async def try_acquire(self, user_id: uuid.UUID, key: str) -> bool:
        async with self._guard:
            if (user_id, key) in self._held:
                return False
            self._held.add((user_id, key))
            return True

    async def release(self, user_id: uuid.UUID, key: str) -> None:
        async with self._guard:
            self._held.discard((user_id, key))


class IdempotencyMiddleware:
    """Pure ASGI middleware; must sit inside UnitOfWorkMiddleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._local_locks = _InProcessLocks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_key = headers.get(HEADER)
        principal_id = await self._caller(scope, headers) if raw_key is not None else None
        if raw_key is None or principal_id is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1").strip().strip('"')
        if not _KEY_RE.match(key):
            await problem_response(
                400,
                "Idempotency-Key must be 1 to 255 visible ASCII characters.",
                type_="invalid-idempotency-key",
            )(scope, receive, send)
            return

        body, receive = await _buffer_body(receive)
        fingerprint = hashlib.sha256(
            b"\n".join([scope["method"].encode(), scope["raw_path"], scope["query_string"], body])
        ).hexdigest()
        request = _Request(principal_id, key, fingerprint)
        uow: UnitOfWork = scope["state"]["uow"]

        if not await self._lock(uow, request):
            await problem_response(
                409,
                "A request with this Idempotency-Key is still being processed; retry later.",
                type_="idempotency-in-flight",
                headers={"Retry-After": "1"},
            )(scope, receive, send)
            return

        now = utcnow()
        stored = await uow.session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == request.user_id,
                IdempotencyRecord.key == request.key,
                IdempotencyRecord.expires_at > now,
            )
        )
        if stored is not None:
            if stored.fingerprint != request.fingerprint:
                await problem_response(
                    422,
                    "This Idempotency-Key was already used with a different request.",
                    type_="idempotency-key-reused",
                )(scope, receive, send)
                return
            IDEMPOTENT_REPLAYS.inc()
            await _replay(stored, send)
            return

        await self._run_and_store(scope, receive, send, uow, request)

    async def _caller(self, scope: Scope, headers: dict[bytes, bytes]) -> uuid.UUID | None:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        tokens: Tokens = scope["state"]["tokens"]
        try:
            return (await tokens.verify_async(token)).user_id
        except InvalidTokenError:
            return None

    async def _lock(self, uow: UnitOfWork, request: _Request) -> bool:
        if uow.dialect == "postgresql":
            # Held until the transaction ends: exactly the time the first request is in flight.
            got = await uow.session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:id)"),
                {"id": _lock_id(request.user_id, request.key)},
            )
            return bool(got)
        if not await self._local_locks.try_acquire(request.user_id, request.key):
            return False

        async def release() -> None:
            await self._local_locks.release(request.user_id, request.key)

        uow.on_close(release)
        return True

    async def _run_and_store(
        self, scope: Scope, receive: Receive, send: Send, uow: UnitOfWork, request: _Request
    ) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        status = int(start["status"])
        body = b"".join(chunks)
        if 200 <= status < 400:
            response_headers = {k.lower(): v for k, v in start.get("headers", [])}
            settings = scope["state"]["settings"]
            now = utcnow()
            # An expired record of the same key may still be there; it is replaced.
            await uow.session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.user_id == request.user_id,
                    IdempotencyRecord.key == request.key,
                )
            )
            uow.session.add(
                IdempotencyRecord(
                    user_id=request.user_id,
                    key=request.key,
                    fingerprint=request.fingerprint,
                    status_code=status,
                    content_type=_header(response_headers, b"content-type"),
                    location=_header(response_headers, b"location"),
                    body=body,
                    created_at=now,
                    expires_at=now + timedelta(hours=settings.idempotency_retention_hours),
                )
            )
            await uow.session.flush()
        await send(start)
        await send({"type": "http.response.body", "body": body})


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body and return a `receive` that replays it to the app."""
    parts: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(parts)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _replay(stored: IdempotencyRecord, send: Send) -> None:
    headers = [(REPLAY_HEADER, b"true"), (b"content-length", str(len(stored.body)).encode())]
    if stored.content_type:
        headers.append((b"content-type", stored.content_type.encode("latin-1")))
    if stored.location:
        headers.append((b"location", stored.location.encode("latin-1")))
    await send({"type": "http.response.start", "status": stored.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})


async def purge_expired(session: AsyncSession) -> int:
    """Delete records past their retention; returns how many went."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)
