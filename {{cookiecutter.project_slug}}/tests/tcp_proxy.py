"""A tiny TCP proxy on 127.0.0.1: stop it and the server behind it is unreachable, as if down.

Stopping the proxy also cuts the connections already open through it, like a server crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import pytest


class TcpProxy:
    """Forward 127.0.0.1:<port> to a target host and port until stopped."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()


class ThreadedProxy:
    """A TcpProxy on an event loop of its own thread: stop and start it from any loop or thread
    (a test, or a route of an app that uvicorn serves in another thread)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.proxy = TcpProxy(target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.proxy.port

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="session")
def primary_proxy(database_name: str) -> Iterator[tuple[ThreadedProxy, str]]:
    """A proxy in front of the run's primary and the asyncpg URL through it.

    Session-scoped, so it outlives every test's teardown (which may still use the database):
    a test that stops it starts it again before it ends."""
    from .conftest import ADMIN_URL, async_url

    proxy = ThreadedProxy(ADMIN_URL.host or "127.0.0.1", ADMIN_URL.port or 5432)
    proxy.start()
    yield proxy, async_url(database_name, f"postgresql://postgres@127.0.0.1:{proxy.port}/x")
    proxy.close()
