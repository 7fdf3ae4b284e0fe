"""`agent-loader serve` and `load --follow` as real subprocesses on a free port.

Tests talk HTTP to them with the standard library (`post`), so what is tested is the
command a user runs, signals and all.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def request(
    url: str,
    body: bytes | None = None,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    method: str | None = None,
    timeout: float = 30,
) -> Reply:
    all_headers = dict(headers or {})
    if content_type is not None and body is not None:
        all_headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=body, headers=all_headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:
            return Reply(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


class ServeProcess:
    """One `agent-loader serve` subprocess."""

    def __init__(self, landing: Path, *args: str, port: int | None = None) -> None:
        self.landing = landing
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "loader", "serve", "--landing", str(landing)]
        command += ["--port", str(self.port), "--min-free-bytes", "0", *args]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "AGENT_LOADER_INGEST_KEYS": ""},
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}: {self.output()}")
            try:
                if request(self.url + "/healthz", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("serve did not answer /healthz within 30 s")

    def post(self, body: bytes | dict | list, **options: object) -> Reply:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        return request(self.url + "/v1/events", body, **options)  # type: ignore[arg-type]

    def post_gzip(self, body: bytes, content_type: str = "application/json") -> Reply:
        return request(
            self.url + "/v1/events",
            gzip.compress(body),
            content_type,
            headers={"Content-Encoding": "gzip"},
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        if self.process.poll() is None:
            return ""
        out, err = self.process.communicate()
        return out + err

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process.communicate()

    def batch_files(self) -> list[Path]:
        return sorted(p for p in self.landing.iterdir() if not p.name.startswith("."))


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator:
    """Start servers with `start_serve(*args)`; all are killed after the test."""
    started: list[ServeProcess] = []

    def start(*args: str, landing: Path | None = None, port: int | None = None) -> ServeProcess:
        server = ServeProcess(landing or tmp_path / "landing", *args, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def start_follow(database: Database, *args: str) -> subprocess.Popen:
    """`agent-loader load --follow ARGS` against `database`, started in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "loader", "load", "--follow", *args],
        cwd=REPO,
        env=database.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def agent_event(event_id: str, **changes: object) -> dict:
    """A valid conversation event, as the reference's `AgentEvent.to_dict()` writes it."""
    event = {
        "event_id": event_id,
        "conversation_id": "c-1",
        "session_id": "s-1",
        "event_type": "message",
        "timestamp": "2026-01-05T10:00:00",
        "agent_name": "support",
        "user_id": "u-1",
        "payload": {"text": "hello", "role": "user"},
        "metadata": {"total_tokens": 12, "latency_ms": 80.5},
    }
    event.update(changes)
    return event


def marketplace_event(event_id: str, **changes: object) -> dict:
    event = {
        "id": event_id,
        "event_type": "user_feedback",
        "agent_id": "pub-01-agent-1",
        "publisher_id": "pub-01",
        "tenant_id": "t-1",
        "timestamp": "2026-01-05T10:00:00+00:00",
        "properties": {"rating": 4, "comment": None},
    }
    event.update(changes)
    return event
