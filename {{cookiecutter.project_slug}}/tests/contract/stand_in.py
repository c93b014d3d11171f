"""Local stand-ins for third-party HTTP APIs: answers by script, optionally too late.

They serve two purposes only: the default target when re-recording cassettes without a real
endpoint (the machine that builds this project reaches no AI provider, so the shipped AI
cassettes were recorded against `provider()`), and the timeout scenarios, which no cassette can
hold (a recording has no notion of "answered after the client gave up").

The answers follow the shapes OpenAI documents for chat completions and its errors.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from ..local_http import serving

JSON = {"content-type": "application/json"}
COMPLETION = {
    "id": "chatcmpl-AbC123",
    "object": "chat.completion",
    "created": 1733220000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "- 3 tasks, 1 done, 2 to do\n- Ship it 🚀 is due on 29 Feb 2024\n"
                "Main risk: the launch task has no assignee.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 182, "completion_tokens": 41, "total_tokens": 223},
    "system_fingerprint": "fp_0ba0d124f1",
}


def _error(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(body).encode()


# name -> (status, headers, body)
ANSWERS: dict[str, tuple[int, dict[str, str], bytes]] = {
    "success": (200, JSON, json.dumps(COMPLETION, ensure_ascii=False).encode()),
    "rate_limited": (
        429,
        {**JSON, "retry-after": "1", "x-ratelimit-remaining-requests": "0"},
        _error(
            "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, "
            "Requested 1. Please try again in 1s.",
            "requests",
            "rate_limit_exceeded",
        ),
    ),
    "server_error": (
        500,
        JSON,
        _error(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
    ),
    # Cut off mid-body, as a dropped connection behind a proxy delivers it.
    "malformed": (200, JSON, json.dumps(COMPLETION).encode()[:97]),
    "bad_request": (
        400,
        JSON,
        _error(
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 130512 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        ),
    ),
    # Webhook receivers: an empty 2xx, and the refusals a receiver sends.
    "accepted": (204, {}, b""),
    "receiver_busy": (429, {"retry-after": "1"}, b"slow down"),
    "receiver_error": (500, {"content-type": "text/plain"}, b"upstream failed"),
    "receiver_gone": (410, {"content-type": "text/plain"}, b"this endpoint was removed"),
}


@dataclass
class StandIn:
    """Answers requests with `script` entries in order, then `default`; may answer late."""

    url: str = ""
    script: list[str] = field(default_factory=list)
    default: str = "success"
    delay: float = 0.0
    received: list[dict[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            name = state.next()
            with state.lock:
                state.received.append({"path": self.path, "body": body, "answered": name})
            if state.delay:
                time.sleep(state.delay)
            status, headers, payload = ANSWERS[name]
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout scenario)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@contextmanager
def serve(path: str = "/v1") -> Iterator[StandIn]:
    """A stand-in on a free 127.0.0.1 port; `url` ends with `path`."""
    state = StandIn()
    with serving(_handler(state)) as base:
        state.url = f"{base}{path}"
        yield state
