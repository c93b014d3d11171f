"""A real HTTP receiver on 127.0.0.1 for webhook tests: records requests, answers by plan."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from ..local_http import serving


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """`plan` is consumed one entry per request: (status, delay_seconds); then `default`."""

    url: str = ""
    plan: list[tuple[int, float]] = field(default_factory=list)
    default: tuple[int, float] = (200, 0.0)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> tuple[int, float]:
        with self.lock:
            return self.plan.pop(0) if self.plan else self.default

    def ok(self) -> list[Received]:
        """Requests that were answered 2xx (what a receiver would have processed)."""
        with self.lock:
            return [r for r in self.received if r.headers.get("x-answered", "").startswith("2")]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            status, delay = receiver.next_answer()
            headers = {k.lower(): v for k, v in self.headers.items()}
            headers["x-answered"] = str(status)
            if delay:
                time.sleep(delay)
            with receiver.lock:
                receiver.received.append(Received(self.path, headers, body))
            try:
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@contextmanager
def receiver() -> Iterator[Receiver]:
    """Start a receiver on a free port; stop it on exit."""
    state = Receiver()
    with serving(_handler(state)) as base:
        state.url = f"{base}/hooks"
        yield state
