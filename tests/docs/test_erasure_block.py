"""docs/operating.md's "Erasure" block runs as written against a scratch database.

The database holds jane@example.com's events, tenant-globex's and others', loaded from an
archive folder; the block's `/data` is a temporary folder and its `...` key a value. Every
line must exit 0; afterwards neither raw nor the archive holds the erased subjects' events,
and the others' are untouched. The last line, `dbt build`, is left out (minutes of build;
tests/e2e/test_erasure_dbt.py checks what it removes); test_commands.py checks it parses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Database, run_loader
from tests.docs.blocks import REPO, code_blocks
from tests.factories import agent_event, marketplace_event, write_ndjson

OPERATING = REPO / "docs" / "operating.md"


def test_the_erasure_block_runs_as_written(tmp_path: Path, db: Database) -> None:
    (block,) = code_blocks(OPERATING, "sh", "Erasure: purge --user / --tenant")
    archive = tmp_path / "data" / "loaded"
    archive.mkdir(parents=True)
    events = [
        agent_event(user_id="jane@example.com"),
        agent_event(user_id="jane@example.com"),
        agent_event(user_id="joe@example.com"),
    ]
    invocations = [marketplace_event(tenant_id="tenant-globex"), marketplace_event(tenant_id="t-2")]
    write_ndjson(archive / "agents.ndjson", events)
    write_ndjson(archive / "marketplace.ndjson", invocations)
    run_loader(db, "load", str(archive))
    assert db.scalar("select count(*) from raw.agent_events") == 3

    lines = [line for line in block.splitlines() if not line.startswith("dbt ")]
    assert len(lines) == 3
    env = {
        **db.env,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    for line in lines:
        command = line.replace("=...", "=docs-test-token-key-0123456789").replace(
            "/data/", f"{tmp_path}/data/"
        )
        result = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True)
        assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"

    assert db.query("select user_id from raw.agent_events") == [("joe@example.com",)]
    assert db.query("select tenant_id from raw.marketplace_events") == [("t-2",)]
    assert [json.loads(line)["user_id"] for line in (archive / "agents.ndjson").open()] == [
        "joe@example.com"
    ]
    assert [json.loads(line)["tenant_id"] for line in (archive / "marketplace.ndjson").open()] == [
        "t-2"
    ]
