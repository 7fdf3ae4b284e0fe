"""`load --lake`: the loader's guarantees for a Parquet lake, checked against PostgreSQL's."""

from __future__ import annotations

import json

import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="the lake needs the [spark] extra (pyarrow)")

from click.testing import CliRunner  # noqa: E402

from loader.cli import main  # noqa: E402
from loader.ingest.lake import Lake  # noqa: E402
from loader.ingest.load import batch_files, load_file  # noqa: E402
from loader.ingest.privacy import NO_PRIVACY, TOKEN_KEY_VARIABLE, Privacy  # noqa: E402
from tests.factories import (  # noqa: E402
    agent_event,
    marketplace_event,
    otlp_attributes,
    spans_request,
    write_events_document,
    write_ndjson,
)

KEY = "a-test-key-of-at-least-16-bytes"


def invoke(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    return result


def rows(lake_dir, table):
    """Every row of one lake table, read straight from its Parquet files."""
    found = []
    for part in sorted((lake_dir / table).glob("batch_id=*/*.parquet")):
        batch_id = int(part.parent.name.removeprefix("batch_id="))
        found += [{"batch_id": batch_id, **row} for row in pq.read_table(part).to_pylist()]
    return found


@pytest.fixture
def landing(tmp_path):
    """Good, duplicated (within and across files) and invalid records in three files."""
    shared = agent_event()
    folder = tmp_path / "landing"
    folder.mkdir()
    write_ndjson(folder / "a.ndjson", [shared, marketplace_event(), {"bad": True}, shared])
    write_events_document(folder / "b.json", [shared, agent_event()], compress=True)
    (folder / "c.ndjson").write_text('not json\n{"event_id": ""}\n')
    return folder


def test_lake_loads_and_counts_what_postgresql_loads_and_counts(db, landing, tmp_path):
    with db.connect() as conn:
        expected = [load_file(conn, path) for path in batch_files([landing])]
    with Lake(tmp_path / "lake") as lake:
        got = [lake.load_file(path) for path in batch_files([landing])]

    def counts(result):
        return (
            result.status,
            result.records_read,
            result.loaded,
            result.duplicates,
            result.quarantined,
            result.agent_events_loaded,
            result.marketplace_events_loaded,
            result.reasons,
        )

    assert [counts(r) for r in got] == [counts(r) for r in expected]
    assert [counts(r)[:5] for r in got] == [
        ("loaded", 4, 2, 1, 1),
        ("loaded", 2, 1, 1, 0),
        ("loaded", 2, 0, 0, 2),
    ]
    lake_dir = tmp_path / "lake"
    assert sorted(r["event_id"] for r in rows(lake_dir, "agent_events")) == sorted(
        row[0] for row in db.query("select event_id from raw.agent_events")
    )
    assert [r["id"] for r in rows(lake_dir, "marketplace_events")] == [
        row[0] for row in db.query("select id from raw.marketplace_events")
    ]
    assert [(r["batch_id"], r["position"], r["reason"]) for r in rows(lake_dir, "quarantine")] == [
        (row[0], row[1], row[2])
        for row in db.query("select batch_id, position, reason from raw.quarantine order by 1, 2")
    ]


def test_the_lake_keys_events_by_id_within_sender_as_postgresql_does(db, tmp_path):
    """A squatted id under another publisher or agent is a second event; a resend is not."""
    real, squat = marketplace_event(id="inv-1"), marketplace_event(id="inv-1", publisher_id="x")
    chat, impostor = agent_event(event_id="e-1"), agent_event(event_id="e-1", agent_name="bot")
    path = write_ndjson(tmp_path / "a.ndjson", [squat, impostor, real, chat, real, chat])
    with db.connect() as conn:
        expected = load_file(conn, path)
    with Lake(tmp_path / "lake") as lake:
        got = lake.load_file(path)
    assert (got.loaded, got.duplicates) == (expected.loaded, expected.duplicates) == (4, 2)
    assert sorted(
        (r["id"], r["publisher_id"]) for r in rows(tmp_path / "lake", "marketplace_events")
    ) == [("inv-1", "pub-1"), ("inv-1", "x")]


def test_every_ledger_row_reconciles_with_the_rows_written(landing, tmp_path):
    lake_dir = tmp_path / "lake"
    assert invoke("load", landing, "--lake", lake_dir).exit_code == 0
    ledger = rows(lake_dir, "load_batches")
    assert [row["batch_id"] for row in ledger] == [1, 2, 3]
    for row in ledger:
        assert row["records_read"] == row["loaded"] + row["duplicates"] + row["quarantined"]
        written = {
            table: sum(1 for r in rows(lake_dir, table) if r["batch_id"] == row["batch_id"])
            for table in ("agent_events", "marketplace_events", "quarantine")
        }
        assert written == {
            "agent_events": row["agent_events_loaded"],
            "marketplace_events": row["marketplace_events_loaded"],
            "quarantine": row["quarantined"],
        }


def test_payload_and_metadata_are_stored_as_json_text_and_timestamps_in_utc(tmp_path):
    event = agent_event(
        timestamp="2026-03-01T12:30:00+02:00", payload={"text": "hi", "role": "user"}
    )
    event.pop("metadata")
    path = write_ndjson(tmp_path / "a.ndjson", [event])
    with Lake(tmp_path / "lake") as lake:
        lake.load_file(path)
    (row,) = rows(tmp_path / "lake", "agent_events")
    assert json.loads(row["payload"]) == {"text": "hi", "role": "user"}
    assert row["metadata"] == "{}"
    assert row["event_ts"].isoformat() == "2026-03-01T10:30:00+00:00"


def test_replayed_and_renamed_files_load_nothing_new(landing, tmp_path):
    lake_dir = tmp_path / "lake"
    invoke("load", landing, "--lake", lake_dir)
    (landing / "a.ndjson").rename(landing / "renamed.ndjson")
    result = invoke("load", landing, "--lake", lake_dir, "--json")
    assert result.exit_code == 0
    assert [f["status"] for f in json.loads(result.output)] == ["skipped"] * 3
    assert len(rows(lake_dir, "load_batches")) == 3


def test_a_load_that_died_leaves_nothing_a_reader_sees(landing, tmp_path):
    lake_dir = tmp_path / "lake"
    invoke("load", landing / "a.ndjson", "--lake", lake_dir)
    # What a load killed between writing its partitions and its ledger row leaves behind:
    orphan = lake_dir / "agent_events" / "batch_id=2"
    orphan.mkdir()
    (orphan / "part-00000.parquet").write_bytes(b"half written")
    (lake_dir / ".staging-2").mkdir()
    with Lake(lake_dir) as lake:
        assert not orphan.exists()
        assert not (lake_dir / ".staging-2").exists()
        result = lake.load_file(landing / "b.json")
    assert (result.batch_id, result.loaded, result.duplicates) == (2, 1, 1)


def test_file_that_cannot_be_loaded_gets_a_failed_ledger_row_and_retries(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    target = write_ndjson(tmp_path / "elsewhere.ndjson", [agent_event()])
    (landing / "link.ndjson").symlink_to(target)  # never followed: loading it fails
    lake_dir = tmp_path / "lake"
    result = invoke("load", landing, "--lake", lake_dir)
    assert result.exit_code == 1
    assert "failed" in result.output
    (row,) = rows(lake_dir, "load_batches")
    assert (row["status"], row["loaded"]) == ("failed", 0)
    assert row["error"].startswith("cannot read the file")
    assert not (lake_dir / "agent_events").exists()
    # A failed file is retried by the next run (and fails again, with a new ledger row).
    invoke("load", landing, "--lake", lake_dir)
    assert [r["status"] for r in rows(lake_dir, "load_batches")] == ["failed", "failed"]


def test_privacy_settings_are_stored_applied_and_enforced(monkeypatch, tmp_path):
    monkeypatch.setenv(TOKEN_KEY_VARIABLE, KEY)
    lake_dir = tmp_path / "lake"
    first = write_ndjson(tmp_path / "a.ndjson", [agent_event(user_id="jane@example.com")])
    result = invoke("load", first, "--lake", lake_dir, "--tokenize-users", "--redact", "mask")
    assert result.exit_code == 0, result.output
    (row,) = rows(lake_dir, "agent_events")
    assert row["user_id"] == Privacy(key=KEY.encode()).token("jane@example.com")
    assert rows(lake_dir, "load_batches")[0]["privacy"] == "tokenize_users,redact=mask"

    # Later loads apply the stored settings without flags, and refuse others or another key.
    second = write_ndjson(tmp_path / "b.ndjson", [agent_event(user_id="joe@example.com")])
    assert invoke("load", second, "--lake", lake_dir, "--redact", "none").exit_code == 6
    monkeypatch.setenv(TOKEN_KEY_VARIABLE, "another-key-of-16-bytes-or-more")
    assert invoke("load", second, "--lake", lake_dir).exit_code == 6
    monkeypatch.setenv(TOKEN_KEY_VARIABLE, KEY)
    assert invoke("load", second, "--lake", lake_dir).exit_code == 0
    users = sorted(r["user_id"] for r in rows(lake_dir, "agent_events"))
    assert users == sorted(
        Privacy(key=KEY.encode()).token(u) for u in ("jane@example.com", "joe@example.com")
    )


def test_protection_cannot_be_added_to_a_lake_that_holds_unprotected_rows(monkeypatch, tmp_path):
    monkeypatch.setenv(TOKEN_KEY_VARIABLE, KEY)
    lake_dir = tmp_path / "lake"
    invoke("load", write_ndjson(tmp_path / "a.ndjson", [agent_event()]), "--lake", lake_dir)
    later = write_ndjson(tmp_path / "b.ndjson", [agent_event()])
    result = invoke("load", later, "--lake", lake_dir, "--tokenize-users")
    assert result.exit_code == 6
    assert "without protection" in result.output


def test_lake_refuses_follow_and_dsn(tmp_path):
    result = invoke("load", tmp_path, "--lake", tmp_path / "lake", "--follow")
    assert result.exit_code == 2


def test_no_privacy_is_the_default(tmp_path):
    with Lake(tmp_path / "lake") as lake:
        assert lake.privacy(None, None) is NO_PRIVACY


# --- spans: OTLP JSON lines, the rows raw.spans gets -------------------------------------------


def _request(*spans):
    return spans_request({"tenant.id": "t-1", "user.id": "jane@example.com"}, *spans)


CHAT_SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "spanId": "00f067aa0ba902b7",
    "parentSpanId": "00f067aa0ba902b8",
    "name": "chat gpt-4o",
    "kind": 3,
    "startTimeUnixNano": "1780000000123456789",
    "endTimeUnixNano": "1780000001123456789",
    "status": {"code": 2, "message": "rate limited"},
    "attributes": otlp_attributes(
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000,
         "gen_ai.usage.cost": 0.5, "stream": True}
    ),
    "events": [{"timeUnixNano": "1780000000200000000", "name": "retry",
                "attributes": otlp_attributes({"attempt": 2})}],
}  # fmt: skip
BAD_SPAN = {**CHAT_SPAN, "spanId": "not-hex"}


def test_spans_load_into_the_lake_as_raw_spans_rows(db, tmp_path):
    """A line of spans is a record per span: the lake keeps raw.spans' rows, quarantines the
    span PostgreSQL quarantines (with its span_index), and counts a resent span a duplicate."""
    folder = tmp_path / "landing"
    folder.mkdir()
    line = _request(CHAT_SPAN, BAD_SPAN)
    write_ndjson(folder / "spans-1.jsonl", [line, line, {"resourceSpans": 5}])
    path = folder / "spans-1.jsonl"
    with db.connect() as conn:
        expected = load_file(conn, path)
    with Lake(tmp_path / "lake") as lake:
        got = lake.load_file(path)

    def counts(result):
        return (
            result.records_read,
            result.loaded,
            result.duplicates,
            result.quarantined,
            result.spans_loaded,
            result.reasons,
        )

    assert counts(got) == counts(expected)
    # 2 lines of 2 spans and a broken line: 1 span kept, 1 resent, 2 refused spans, 1 line
    assert counts(got)[:5] == (5, 1, 1, 3, 1)
    lake_dir = tmp_path / "lake"
    (span,) = rows(lake_dir, "spans")
    columns = [name for name in span if name not in ("batch_id", "loaded_at")]
    (stored,) = db.query(f"select {', '.join(columns)} from raw.spans")
    json_columns = {"attributes", "resource_attributes", "events"}
    assert {
        name: json.loads(span[name]) if name in json_columns else span[name] for name in columns
    } == dict(zip(columns, stored, strict=True))
    assert span["start_time"].isoformat() == "2026-05-28T20:26:40.123456+00:00"
    assert json.loads(span["attributes"])["gen_ai.usage.input_tokens"] == 1000
    assert rows(lake_dir, "load_batches")[0]["spans_loaded"] == 1
    quarantined = [
        (r["position"], r["span_index"], r["raw_bytes"], r["reason"], json.loads(r["raw_text"]))
        for r in rows(lake_dir, "quarantine")
    ]
    assert quarantined == [
        (position, span_index, size, reason, json.loads(text))
        for position, span_index, size, reason, text in db.query(
            "select position, span_index, raw_bytes, reason, raw_text from raw.quarantine"
            " order by position, span_index"
        )
    ]
    assert [(position, index) for position, index, *_ in quarantined] == [(1, 2), (2, 2), (3, None)]


def test_spans_in_a_tokenizing_lake_carry_the_users_token(monkeypatch, tmp_path):
    monkeypatch.setenv(TOKEN_KEY_VARIABLE, KEY)
    path = write_ndjson(tmp_path / "spans.jsonl", [_request(CHAT_SPAN)])
    lake_dir = tmp_path / "lake"
    assert invoke("load", path, "--lake", lake_dir, "--tokenize-users").exit_code == 0
    (span,) = rows(lake_dir, "spans")
    token = Privacy(key=KEY.encode()).token("jane@example.com")
    assert json.loads(span["resource_attributes"]) == {"tenant.id": "t-1", "user.id": token}
