"""docs/live.md's Python snippets run as written against a real `agent-loader serve`.

Each ```python block of the document is executed as `python -m asyncio` would (top-level
`await`), in a namespace of its own holding what the prose says the reader has: `KEY`, an
ingest key of the server; `event`, one agent event; and, for the marketplace snippet, the
reference's own `EventCollector`. The server runs on a free port of 127.0.0.1 with a keys
file, so the documented `http://127.0.0.1:8000` is replaced by its address. The events must
then be in the landing directory and load into raw, none quarantined.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database, run_loader
from tests.docs.blocks import REPO, code_blocks
from tests.e2e import marketplace_reference
from tests.serve.conftest import ServeProcess, agent_event, free_port

LIVE = REPO / "docs" / "live.md"
DOCUMENTED_URL = "http://127.0.0.1:8000"
KEY = "docs-snippet-key-" + "0" * 24


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    keys = tmp_path / "keys"
    keys.write_text(f"docs:{KEY}\n")
    process = ServeProcess(tmp_path / "landing", "--keys-file", str(keys))
    yield process
    process.stop()


def run_snippet(source: str, namespace: dict[str, object]) -> None:
    """Run `source` as `python -m asyncio` runs what is typed at its prompt."""
    code = compile(source, "<docs/live.md>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)

    async def main() -> None:
        result = eval(code, namespace)  # the document's own code
        if isinstance(result, types.CoroutineType):
            await result

    asyncio.run(main())


def landed(server: ServeProcess) -> list[dict]:
    return [
        json.loads(line)
        for path in server.batch_files()
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def test_the_document_has_both_snippets() -> None:
    snippets = code_blocks(LIVE, "python")
    assert len(snippets) == 2
    assert all(DOCUMENTED_URL in snippet for snippet in snippets)


def test_the_event_collector_snippet_delivers(serve: ServeProcess, db: Database) -> None:
    snippet = code_blocks(LIVE, "python")[0]
    assert "EventCollector(" in snippet
    event = agent_event("docs-snippet-event-1")
    namespace: dict[str, object] = {"KEY": KEY, "event": event}
    run_snippet(snippet.replace(DOCUMENTED_URL, serve.url), namespace)
    assert [record["event_id"] for record in landed(serve)] == ["docs-snippet-event-1"]
    run_loader(db, "load", str(serve.landing))
    assert db.query("select event_id from raw.agent_events") == [("docs-snippet-event-1",)]
    assert db.scalar("select count(*) from raw.quarantine") == 0


def test_the_endpoint_queue_snippet_delivers(serve: ServeProcess, db: Database) -> None:
    snippet = code_blocks(LIVE, "python")[1]
    assert "EndpointQueue(" in snippet
    namespace: dict[str, object] = {
        "KEY": KEY,
        "EventCollector": marketplace_reference.EventCollector,
    }
    run_snippet(snippet.replace(DOCUMENTED_URL, serve.url), namespace)
    records = landed(serve)
    assert [(r["event_type"], r["publisher_id"], r["tenant_id"]) for r in records] == [
        ("agent_completed", "pub-acme", "tenant-globex")
    ]
    run_loader(db, "load", str(serve.landing))
    rows = db.query("select event_type, publisher_id, properties from raw.marketplace_events")
    assert rows == [
        (
            "agent_completed",
            "pub-acme",
            {
                "input_tokens": 120,
                "output_tokens": 40,
                "tool_calls": ["search"],
                "duration_ms": 900,
                "cost_usd": 0.0125,
            },
        )
    ]
    assert db.scalar("select count(*) from raw.quarantine") == 0


def test_the_quick_start_block_runs_as_written(tmp_path: Path, empty_db: Database) -> None:
    """The first ```sh block, in one shell: `init`, `serve` and `load --follow` in the
    background, one POST whose answer is the one the block prints, and the event in raw.
    Its `/data` is a temporary folder and port 8000 a free one (`--port`); the POST waits
    for `/healthz`, as a reader typing it would. The background commands are stopped after."""
    block = code_blocks(LIVE, "sh")[0]
    assert block.startswith("agent-loader init\n")
    documented = json.loads(re.search(r"^# (\{.*\})$", block, re.MULTILINE).group(1))
    port = free_port()
    script = (
        block.replace("/data/", f"{tmp_path}/data/")
        .replace("localhost:8000", f"127.0.0.1:{port}")
        .replace(
            "--landing " + f"{tmp_path}/data/landing &",
            f"--landing {tmp_path}/data/landing --port {port} &",
        )
        .replace(
            "\ncurl ",
            f"\nuntil curl -sf 127.0.0.1:{port}/healthz >/dev/null; do sleep 0.1; done\ncurl ",
            1,
        )
    )
    assert f"--port {port} &" in script and "until curl" in script
    env = {**empty_db.env, "AGENT_LOADER_INGEST_KEYS": "", "PATH": _path_with_the_cli()}
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        # A session of its own: the background commands stay in its process group.
        shell = subprocess.Popen(
            ["bash", "-c", "set -e\n" + script],
            env=env,
            stdout=stdout,
            stderr=stderr,
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        assert shell.wait(60) == 0, err.read_text()
        printed = out.read_text()
        answer, _ = json.JSONDecoder().raw_decode(printed, printed.index('{"records"'))
        assert answer["file"].endswith(".ndjson")
        assert {**answer, "file": None} == {**documented, "file": None}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _rows(empty_db):
            time.sleep(0.2)
        assert _rows(empty_db) == [("e-1", "install", "p-1")]
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _group_alive(shell.pid):
        time.sleep(0.1)
    assert not _group_alive(shell.pid), "serve or load --follow did not stop on SIGTERM"
    moved = [path.name for path in (tmp_path / "data" / "loaded").rglob("*.ndjson")]
    assert moved == [answer["file"]], err.read_text()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _path_with_the_cli() -> str:
    """PATH with this interpreter's scripts (`agent-loader`) first."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _rows(database: Database) -> list[tuple]:
    if not database.scalar("select to_regclass('raw.marketplace_events') is not null"):
        return []
    return database.query("select id, event_type, publisher_id from raw.marketplace_events")
