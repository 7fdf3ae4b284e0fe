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
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loader import limits
from tests.conftest import REPO, Database, Dbt, client_tool
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

    # 9. every identifier and name at exactly the contract's byte bound, in characters of
    #    2, 3 and 4 bytes; one byte over; hidden characters; one name in two Unicode forms
    good = at_the_bounds() + [
        agent_event(
            event_id=f"renee-{form}",
            conversation_id=f"renee-{form}",
            timestamp=stamp(3),
            agent_name=unicodedata.normalize(form, RENEE),
        )
        for form in ("NFC", "NFD")
    ]
    bad = [
        agent_event(event_id="over-1", agent_name="ß" * 128 + "!", timestamp=stamp(3)),
        marketplace_event(id="over-2", publisher_id="€" * 86, timestamp=stamp(3)),
        marketplace_event(id="over-3", tenant_id="t\u202eop", timestamp=stamp(3)),
    ]
    put("10-limits.ndjson", ndjson([*good[:4], *bad, *good[4:]]), good)

    # 10. addresses URL-encoded or in other scripts, in the records and in the file's name
    good = valid("spelled", 2)
    good[0]["payload"]["text"] = "callback /u?to=pia.lindqvist%40example.org&x=pia%2540mail.se"
    good[2]["payload"]["text"] = "écrire à zoë.faure@café.fr ou δοκιμή@παράδειγμα.ελ"
    put("11-from-pia.lindqvist@example.org.ndjson", ndjson(good), good)
    return expected


RENEE = "Renée"


def bounded(fill: str, tag: str) -> str:
    """A value of exactly 256 UTF-8 bytes: `fill` repeated, then `tag` (ASCII) to the byte."""
    room = limits.MAX_ID_BYTES - len(tag)
    width = len(fill.encode())
    value = fill * (room // width) + "x" * (room % width) + tag
    assert len(value.encode()) == limits.MAX_ID_BYTES == limits.MAX_NAME_BYTES
    return value


def at_the_bounds() -> list[dict]:
    """A conversation and a publisher's events whose every id and name is at the bound."""
    conversation = {
        "conversation_id": bounded("é", "c"),
        "session_id": bounded("€", "s"),
        "user_id": bounded("😀", "u"),
        "agent_name": bounded("ñ", "a"),
        "metadata": {"model": bounded("模", "m"), "total_tokens": 5},
    }
    bodies = {
        "conversation_start": {},
        "message": {"text": "hi", "role": bounded("ø", "r")},
        "tool_call": {"tool_name": bounded("🔧", "t"), "arguments": {}},
        "handoff": {"from_agent": bounded("ñ", "a"), "to_agent": bounded("ü", "b")},
        "error": {"error_type": bounded("ë", "e"), "message": "boom"},
        "completion": {},
        "conversation_end": {},
    }
    events = [
        agent_event(
            event_id=bounded("😀", f"e{n}"),
            event_type=kind,
            payload=body,
            timestamp=stamp(4 - n / 10),
            **conversation,
        )
        for n, (kind, body) in enumerate(bodies.items())
    ]
    market = {
        "agent_id": bounded("é", "g"),
        "publisher_id": bounded("€", "p"),
        "tenant_id": bounded("😀", "t"),
    }
    properties = {
        "install": {"plan": bounded("ü", "l")},
        "agent_invoked": {"input_tokens": 3},
        "agent_completed": {
            "tool_calls": [bounded("🔧", "1"), "search"],
            "cost_usd": 1.5,
            "duration_ms": 10,
            "error_type": bounded("ë", "x"),
        },
        "agent_errored": {"error_type": bounded("ë", "y"), "duration_ms": 20},
        "tool_called": {"tool_name": bounded("🔧", "2"), "duration_ms": 5},
        "tool_failed": {"tool_name": bounded("🔧", "3"), "error": "x"},
        "user_feedback": {"rating": 4},
    }
    events += [
        marketplace_event(
            id=bounded("😀", f"m{n}"),
            event_type=kind,
            properties=body,
            timestamp=stamp(4 - n / 10),
            **market,
        )
        for n, (kind, body) in enumerate(properties.items())
    ]
    return events


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
        [client_tool("pg_dump"), "--data-only", module_db.name],
        env=module_db.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "raw.agent_events" in dump or "agent_events" in dump
    for secret in ("jane", "@example.com", "4155550134", SECRET, KEY, "PGUSER=", "lindqvist"):
        assert secret not in dump, secret
    for secret in ("pia%2540", "faure", "δοκιμή"):
        assert secret not in dump, secret


# Every text column an index holds, and the most UTF-8 bytes the contract lets reach it.
_DIGITS = len(str(2**63))
INDEXED_TEXT = {
    **dict.fromkeys(
        [
            "event_id",
            "id",
            "conversation_id",
            "session_id",
            "user_id",
            "agent_id",
            "publisher_id",
            "tenant_id",
            "invocation_id",
            "install_event_id",
            "error_id",
            "rating_id",
        ],
        limits.MAX_ID_BYTES,
    ),
    **dict.fromkeys(
        ["agent_name", "first_agent_name", "tool_name", "error_type", "model_name"],
        limits.MAX_NAME_BYTES,
    ),
    # OTLP's ids, lowercase hex of fixed lengths (raw.spans checks them)
    "trace_id": 32,
    "span_id": 16,
    # raw.conflicts: the duplicate's sender, its agent_name or its publisher_id
    "sender": max(limits.MAX_NAME_BYTES, limits.MAX_ID_BYTES),
    "tool_use_id": limits.MAX_ID_BYTES + 1 + _DIGITS,  # invocation id || ':' || position
    "insight_id": 32,  # md5 in hex
    "outcome": len("handed_off"),  # the longest of fct_conversations' four outcomes
    # the longest of tenant_llm_metrics' four metric names (its accepted_values test)
    "metric_name": len("llm_budget_used_rate"),
    "sha256": 64,  # the loader's checksum in hex
}
NOT_FROM_RECORDS = {("raw", "load_batches", "path")}  # a file's path: bounded by the OS


def _index_row_bytes(columns: list[tuple[int, str, int]]) -> int:
    """The most bytes a b-tree index row of these columns takes: the tuple header and null
    bitmap (8 + 8), then each column aligned (varlena: a 4-byte header and its bytes)."""
    size = 16
    for length, align, most in columns:
        if length > 0:
            step = {"c": 1, "s": 2, "i": 4, "d": 8}[align]
            size = -(-size // step) * step + length
        else:
            size = -(-size // 4) * 4 + 4 + most
    return -(-size // 8) * 8


def test_no_index_the_build_made_can_meet_the_btree_row_limit(loaded, dbt: Dbt, module_db):
    """Every column of every index and constraint (raw, staging, intermediate, marts), as
    PostgreSQL reports them after the build, bounded from loader/limits.py alone."""
    dbt("build")
    rows = module_db.query(
        "select n.nspname, c.relname, i.relname, a.attname, t.typlen, t.typalign"
        " from pg_index as x"
        " join pg_class as i on i.oid = x.indexrelid"
        " join pg_class as c on c.oid = x.indrelid"
        " join pg_namespace as n on n.oid = c.relnamespace"
        " cross join lateral unnest(x.indkey) with ordinality as k (attnum, ord)"
        " left join pg_attribute as a on a.attrelid = c.oid and a.attnum = k.attnum"
        " left join pg_type as t on t.oid = a.atttypid"
        " where n.nspname in ('raw', 'staging', 'intermediate', 'marts')"
        " order by n.nspname, c.relname, i.relname, k.ord"
    )
    indexes: dict[tuple[str, str, str], list[tuple[int, str, int]]] = {}
    unbounded = []
    for schema, table, index, column, length, align in rows:
        assert column is not None, f"{schema}.{index} indexes an expression: bound it here"
        if (schema, table, column) in NOT_FROM_RECORDS:
            continue
        if length < 0 and column not in INDEXED_TEXT:
            unbounded.append(f"{schema}.{table}.{column}")
        most = INDEXED_TEXT.get(column, 0)
        indexes.setdefault((schema, table, index), []).append((length, align, most))
    assert not unbounded, f"indexed text without a bound from limits.py: {unbounded}"
    assert {schema for schema, _, _ in indexes} == {"raw", "staging", "intermediate", "marts"}
    widest = max(indexes, key=lambda key: _index_row_bytes(indexes[key]))
    assert _index_row_bytes(indexes[widest]) < limits.BTREE_MAX_ROW_BYTES, widest
    assert len(indexes) > 40  # the walk saw the warehouse, not an empty schema


def test_values_at_the_bounds_reach_the_marts_and_one_name_is_one_agent(loaded, dbt, module_db):
    dbt("build")
    longest = module_db.query(
        "select max(octet_length(agent_name)) from marts.agent_resolution_times"
        " union all select max(octet_length(publisher_id)) from marts.publisher_dashboard"
        " union all select max(octet_length(tool_name)) from marts.publisher_tool_usage"
        " union all select max(octet_length(error_type)) from marts.error_types_ranked"
    )
    assert longest == [(limits.MAX_NAME_BYTES,)] * 4
    renee = module_db.query(
        "select agent_name, conversations from marts.agent_resolution_times"
        " where agent_name like 'Ren%'"
    )
    assert renee == [(RENEE, 2)]
    reasons = module_db.query(
        "select reason from raw.quarantine where raw_text like '%over-_%' order by position"
    )
    assert [reason for (reason,) in reasons] == [
        "agent_name: longer than 256 bytes (UTF-8)",
        "publisher_id: longer than 256 bytes (UTF-8)",
        "tenant_id: holds U+202E, a control, zero-width or bidirectional formatting character",
    ]
