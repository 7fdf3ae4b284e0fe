"""A hostile corpus, loaded with privacy on, then `dbt build`: nothing lost, leaked or poisoned.

One landing folder holds a file per class of hostile input, each case beside valid events.
After `agent-loader init --tokenize-users --redact mask` and `agent-loader load`, every valid
event is in raw, every batch reconciles, `dbt build` passes (twice: the high-water mark
moves), and a `pg_dump --data-only` of the whole database holds no raw PII, nothing from
outside the landing folder, and not the key.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import REPO, Database, Dbt
from tests.factories import agent_event, marketplace_event

pytestmark = pytest.mark.dbt

KEY = "e2e-hostile-key-0123456789abcdef"
EMAIL = "jane.doe@example.com"
SECRET = "OUTSIDE_SECRET_d41d8cd98f00b204"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def stamp(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


def valid(prefix: str, count: int) -> list[dict]:
    """Valid events of both shapes, PII planted where redaction must find it."""
    events: list[dict] = []
    for i in range(count):
        events.append(
            agent_event(
                event_id=f"{prefix}-a{i}",
                conversation_id=f"{prefix}-conv-{i % 3}",
                timestamp=stamp(i % 48),
                user_id=f"user{i}@example.com",
                session_id=f"sess-{EMAIL}",
                payload={"text": f"mail {EMAIL}", "role": "user", EMAIL: [{"deep": EMAIL}]},
            )
        )
        events.append(
            marketplace_event(
                id=f"{prefix}-m{i}",
                timestamp=stamp(i % 48),
                properties={
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "tool_calls": [],
                    "duration_ms": 100,
                    "cost_usd": 0.01,
                    "error_type": f"quota for {EMAIL}",
                },
            )
        )
    events.append(
        agent_event(
            event_id=f"{prefix}-err",
            event_type="error",
            timestamp=stamp(1),
            payload={"error_type": f"auth failed for {EMAIL}", "message": EMAIL},
        )
    )
    events.append(
        agent_event(
            event_id=f"{prefix}-done",
            event_type="completion",
            timestamp=stamp(1),
            payload={"summary": f"sent to {EMAIL}"},
        )
    )
    return events


def ndjson(records: list) -> bytes:
    return b"".join(
        (record if isinstance(record, str) else json.dumps(record)).encode() + b"\n"
        for record in records
    )


def build_corpus(landing: Path, outside: Path) -> int:
    """Write the corpus; returns how many valid events it holds."""
    expected = 0

    def put(name: str, data: bytes, good: list[dict]) -> None:
        nonlocal expected
        (landing / name).write_bytes(data)
        expected += len(good)

    # 1. a misleading first line; an oversized and a too-deep element inside an array
    good = valid("first-line", 20)
    put("01-first-line.ndjson", b'["not an event"]\n' + ndjson(good), good)
    good = valid("array", 10)
    elements = [json.dumps(event) for event in good]
    elements.insert(5, '"' + "x" * (5 << 20) + '"')
    elements.insert(8, "[" * 5000 + "]" * 5000)
    put("02-array.json", ("[\n" + ",\n".join(elements) + "\n]").encode(), good)

    # 2. values that pass a naive contract but no downstream column can hold
    good = valid("bounds", 5)
    bad = [
        agent_event(event_id="b1", metadata={"total_tokens": 10**30}),
        agent_event(event_id="b2", metadata={"latency_ms": 1e300}),
        marketplace_event(id="b3", timestamp="0001-01-01T00:00:00+00:00"),
        marketplace_event(
            id="b4", properties={**marketplace_event()["properties"], "input_tokens": 10**19}
        ),
        agent_event(event_id="b5", timestamp="9999-01-01T00:00:00"),
    ]
    put("03-bounds.ndjson", ndjson(bad + good), good)

    # 3. values PostgreSQL refuses
    good = valid("refused", 5)
    text = json.dumps(agent_event(event_id="r1", timestamp=stamp(2)))
    bad_lines = [
        text.replace('"total_tokens": 42', '"x": 1e999999'),
        text.replace('"total_tokens": 42', '"x": 1e400').replace("r1", "r2"),
        json.dumps(agent_event(event_id="r3", timestamp="2026-11-01T09:30:00+05:30:15.5")),
    ]
    put("04-refused.ndjson", ndjson([*good[:3], *bad_lines, *good[3:]]), good)

    # 4. files that are not regular files
    (landing / "05-link.ndjson").symlink_to(outside)
    (landing / "05-environ.ndjson").symlink_to("/proc/self/environ")
    os.mkfifo(landing / "05-pipe.ndjson")

    # 5. a payload nested 1,000 levels deep, with redaction on
    good = valid("deep", 3)
    deep = json.dumps(agent_event(event_id="deep")).replace(
        '"role": "user"', '"role": "user", "n": ' + "[" * 1000 + "]" * 1000
    )
    put("06-deep.ndjson", ndjson([deep, *good]), good)

    # 6. user ids of other JSON types, PII in every field
    good = valid("pii", 5)
    bad = [
        agent_event(event_id="u1", user_id=[EMAIL]),
        agent_event(event_id="u2", user_id=4155550134),
        agent_event(event_id="u3", event_type=EMAIL),
    ]
    put("07-pii.ndjson", ndjson(bad + good), good)

    # 8. a gzip of blank lines; a file name with a newline
    good = valid("blank", 3)
    put("08-blank.ndjson.gz", gzip.compress(b"\n" * (20 << 20) + ndjson(good)), good)
    good = valid("name", 2)
    put("09-forged\nloaded     name.ndjson", ndjson(good), good)
    return expected


def loader(database: Database, *args: str) -> subprocess.CompletedProcess:
    env = {**database.env, "AGENT_ANALYTICS_TOKEN_KEY": KEY}
    return subprocess.run(
        [sys.executable, "-m", "loader", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


@pytest.fixture(scope="module")
def loaded(module_db: Database, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("hostile")
    outside = folder / "outside.txt"
    outside.write_text(f"{SECRET}\n")
    landing = folder / "landing"
    landing.mkdir()
    expected = build_corpus(landing, outside)
    init = loader(module_db, "init", "--tokenize-users", "--redact", "mask")
    assert init.returncode == 0, init.stderr
    first = loader(module_db, "load", str(landing), "--json")
    second = loader(module_db, "load", str(landing))
    return {"expected": expected, "first": first, "second": second, "landing": landing}


def test_every_valid_event_loads_and_every_batch_reconciles(loaded, module_db):
    first = loaded["first"]
    assert first.returncode == 1, first.stderr  # the symlinks and the FIFO failed
    assert "Traceback" not in first.stderr
    results = json.loads(first.stdout)
    failed = sorted(Path(r["path"]).name for r in results if r["status"] == "failed")
    assert failed == ["05-environ.ndjson", "05-link.ndjson", "05-pipe.ndjson"]
    loaded_events = module_db.scalar(
        "select (select count(*) from raw.agent_events)"
        " + (select count(*) from raw.marketplace_events)"
    )
    assert loaded_events == loaded["expected"]
    assert module_db.query(
        "select count(*) from raw.load_batches where status = 'loaded'"
        " and records_read <> loaded + duplicates + quarantined"
    ) == [(0,)]
    per_batch = module_db.query(
        "select b.quarantined, count(q.*) from raw.load_batches as b"
        " left join raw.quarantine as q using (batch_id)"
        " where b.status = 'loaded' group by b.batch_id, b.quarantined"
    )
    assert all(declared == stored for declared, stored in per_batch)


def test_the_rerun_loads_nothing_and_prints_one_line_per_file(loaded):
    second = loaded["second"]
    lines = second.stdout.splitlines()
    assert not any(line.startswith("loaded     name.ndjson") for line in lines)
    assert any("09-forged\\nloaded     name.ndjson" in line for line in lines)
    assert "loaded=0" in lines[-1]


def test_dbt_build_passes_twice_and_the_daily_marts_stay_small(loaded, dbt: Dbt, module_db):
    dbt("build")
    dbt("build")
    assert module_db.scalar("select count(*) from marts.platform_daily") < 100


def test_no_raw_pii_nothing_from_outside_and_no_key_in_the_database(loaded, module_db):
    dump = subprocess.run(
        ["pg_dump", "--data-only", module_db.name],
        env=module_db.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "raw.agent_events" in dump or "agent_events" in dump
    for secret in ("jane", "@example.com", "4155550134", SECRET, KEY, "PGUSER="):
        assert secret not in dump, secret
