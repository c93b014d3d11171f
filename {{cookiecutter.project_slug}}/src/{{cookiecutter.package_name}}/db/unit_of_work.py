"""Unit of work per write request: one primary transaction, committed before the response leaves.

For POST/PUT/PATCH/DELETE the middleware gives the request one session on the primary
(`request.state.uow`). Handlers and repositories only flush. When the handler answers 2xx/3xx
the middleware runs the before-commit hooks (inside the transaction), commits, runs the
after-commit hooks (cache invalidation, job dispatch) and only then sends the response; on
4xx/5xx or an exception it rolls back. So bad input never leaves a
partial write, and a client never sees a success that was not committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.db.engines import Database
from {{ cookiecutter.package_name }}.db.read_your_writes import HEADER_NAME, ConsistencyTokens
from {{ cookiecutter.package_name }}.errors import problem_response

log = structlog.get_logger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
Hook = Callable[[], Awaitable[None]]


class UnitOfWork:
    """The request's primary session (opened lazily) and what to run after it commits."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._session: AsyncSession | None = None
        self._before_commit: list[Hook] = []
        self._after_commit: list[Hook] = []
        self._on_close: list[Hook] = []

    @property
    def dialect(self) -> str:
        """The primary's dialect name."""
        return self._db.dialect

    @property
    def session(self) -> AsyncSession:
        """The request's session on the primary."""
        if self._session is None:
            self._session = self._db.writer()
        return self._session

    def before_commit(self, hook: Hook) -> None:
        """Run `hook` just before COMMIT, inside the transaction; its failure rolls it back."""
        self._before_commit.append(hook)

    def after_commit(self, hook: Hook) -> None:
        """Run `hook` once the transaction has committed; its failure never fails the request."""
        self._after_commit.append(hook)

    def on_close(self, hook: Hook) -> None:
        """Run `hook` when the request's transaction ends, committed or not."""
        self._on_close.append(hook)

    async def commit(self) -> None:
        """Run the before-commit hooks, commit, then run the after-commit hooks."""
        for hook in self._before_commit:
            await hook()
        if self._session is not None:
            await self._session.commit()
        for hook in self._after_commit:
            try:
                await hook()
            except Exception:
                log.exception("after_commit_hook_failed", hook=getattr(hook, "__name__", "?"))

    async def close(self, *, commit: bool) -> None:
        """Commit or roll back, then release the connection and run the close hooks."""
        try:
            if commit:
                await self.commit()
            elif self._session is not None:
                await self._session.rollback()
        finally:
            if self._session is not None:
                await self._session.close()
            for hook in self._on_close:
                await hook()


class UnitOfWorkMiddleware:
    """Pure ASGI middleware: wraps every unsafe request in one transaction on the primary."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        # A per-request copy: some servers share one lifespan-state dict across requests.
        state = {**scope.get("state", {})}
        db: Database = state["db"]
        tokens: ConsistencyTokens = state["consistency"]
        uow = UnitOfWork(db)
        state["uow"] = uow
        scope = {**scope, "state": state}

        start: Message = {}
        body: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        ok = False
        try:
            await self.app(scope, receive, capture)
            ok = 200 <= start.get("status", 500) < 400
            await uow.close(commit=ok)
        except IntegrityError:
            # Raised at commit by a constraint (two racing writers); nothing was written.
            await uow.close(commit=False)
            await problem_response(
                409, "The request conflicts with a concurrent change; retry it.", type_="conflict"
            )(scope, receive, send)
            return
        except BaseException:
            await uow.close(commit=False)
            raise

        headers = list(start.get("headers", []))
        if ok:
            token = tokens.issue()
            headers.append((HEADER_NAME.encode(), token.encode()))
            headers.append((b"set-cookie", tokens.set_cookie_header(token).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(body)})
