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
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database, run_loader
from tests.docs.blocks import REPO, code_blocks
from tests.serve import reference_marketplace
from tests.serve.conftest import ServeProcess, agent_event

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
        "EventCollector": reference_marketplace.EventCollector,
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
