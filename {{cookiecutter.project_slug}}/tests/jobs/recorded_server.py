"""A local stand-in for a third-party HTTP API: replays recorded responses (tests/contract/)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).resolve().parents[1] / "contract" / "ai_provider"


def recording(name: str) -> dict[str, Any]:
    """A recorded response: {"status", "headers", "body"}."""
    data: dict[str, Any] = json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))
    return data


@dataclass
class RecordedServer:
    """Answers with `script` entries in order ((recording, delay_s)), then `default`."""

    url: str = ""
    script: list[tuple[str, float]] = field(default_factory=list)
    default: tuple[str, float] = ("success", 0.0)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> tuple[str, float]:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


def _handler(server: RecordedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            name, delay = server.next()
            with server.lock:
                server.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(body),
                        "answered": name,
                    }
                )
            if delay:
                time.sleep(delay)
            answer = recording(name)
            payload = answer["body"].encode()
            try:
                self.send_response(answer["status"])
                for key, value in answer["headers"].items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@contextmanager
def recorded_server() -> Iterator[RecordedServer]:
    """Serve recordings on a free 127.0.0.1 port."""
    state = RecordedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
