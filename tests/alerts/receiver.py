"""A webhook receiver on 127.0.0.1 for the alerts tests: records every request, answers
with the scripted status codes (then 200), and can hang before answering."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)

    def signed_with(self, secret: bytes) -> bool:
        """The signature header is HMAC-SHA256 of `timestamp.body`, computed here afresh."""
        timestamp = self.headers["X-Agent-Analytics-Timestamp"]
        expected = hmac.new(secret, f"{timestamp}.".encode() + self.body, hashlib.sha256)
        return self.headers["X-Agent-Analytics-Signature"] == "sha256=" + expected.hexdigest()


@dataclass
class Receiver:
    url: str = ""
    statuses: list[int] = field(default_factory=list)
    hang_seconds: float = 0.0
    requests: list[Request] = field(default_factory=list)
    got_request: threading.Event = field(default_factory=threading.Event)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        self.requests.append(
            Request(dict(handler.headers.items()), handler.rfile.read(length), time.time())
        )
        self.got_request.set()
        if self.hang_seconds:
            time.sleep(self.hang_seconds)
        status = self.statuses.pop(0) if self.statuses else 200
        try:
            handler.send_response(status)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        except OSError:
            pass  # the sender gave up (timeout) or died

    @property
    def alert_ids(self) -> list[tuple[str, str]]:
        """(alert id, status) of each generic JSON request, in arrival order."""
        return [
            (request.document["alert"]["alert_id"], request.document["alert"]["status"])
            for request in self.requests
        ]


@contextmanager
def running_receiver(
    statuses: list[int] | None = None, hang_seconds: float = 0.0
) -> Iterator[Receiver]:
    receiver = Receiver(statuses=list(statuses or []), hang_seconds=hang_seconds)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver.handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
