"""Hostile input, one class at a time, each case beside valid events.

Every test asserts that the valid neighbours load, that the bad record is quarantined with
the documented reason (or the file refused with one), and that the counts reconcile:
read = loaded + duplicates + quarantined.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner

from loader.cli import main, shown
from loader.load import batch_files, load_file, validate_file
from loader.privacy import Privacy
from loader.readers import MAX_DEPTH, BatchFile
from tests.factories import agent_event, marketplace_event


def load(db, path, **options):
    conn = db.connect()
    try:
        return load_file(conn, path, **options)
    finally:
        conn.close()


def reconciles(result) -> bool:
    return result.records_read == result.loaded + result.duplicates + result.quarantined


def good(count: int, prefix: str = "ok") -> list[dict]:
    return [agent_event(event_id=f"{prefix}-{i}") for i in range(count)]


def lines(records: list) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- 1. a neighbour never costs valid events ---------------------------------------------


@pytest.mark.parametrize(
    "first_line",
    ['["not an event"]', '{"events": []}', "[1, 2, 3]", '{"events": "x"}'],
    ids=["array", "empty-document", "numbers", "document-not-array"],
)
def test_a_misleading_first_line_does_not_swallow_the_file(db, tmp_path, first_line):
    path = tmp_path / "b.ndjson"
    path.write_bytes(first_line.encode() + b"\n" + lines(good(1000)))
    result = load(db, path)
    assert (result.file_format, result.loaded, result.quarantined) == ("ndjson", 1000, 1)
    assert reconciles(result)


@pytest.mark.parametrize("events_document", [False, True], ids=["array", "events-document"])
@pytest.mark.parametrize(
    "bad_element, reason",
    [
        ('"' + "x" * (5 << 20) + '"', "over the 1048576-byte limit"),
        ("{" + '"a": [' * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        ('{"a": ' + nested(MAX_DEPTH + 1) + "}", "nested too deeply"),
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
        ('{"a": tru}', "invalid JSON"),
        ('{"a": "unterminated\n}', "invalid JSON"),
        ("1" * 5000, "more than 4300 digits"),
    ],
    ids=["5MiB", "deep-100000", "depth-65", "depth-5000", "syntax", "string", "digits"],
)
def test_one_bad_element_of_a_document_costs_only_itself(
    db, tmp_path, bad_element, reason, events_document
):
    before = [json.dumps(event) for event in good(3, "before")]
    after = [json.dumps(event) for event in good(3, "after")]
    body = "[\n" + ",\n".join([*before, bad_element, *after]) + "\n]"
    if events_document:
        body = '{"events": ' + body + "}"
    path = tmp_path / "doc.json"
    path.write_text(body)
    result = load(db, path)
    assert (result.loaded, result.quarantined) == (6, 1), result
    assert reconciles(result)
    [(position, stored_reason)] = db.query("select position, reason from raw.quarantine")
    assert position == 4
    assert reason in stored_reason


def test_a_deep_or_huge_ndjson_line_costs_only_itself(db, tmp_path):
    path = tmp_path / "b.ndjson"
    bad = [nested(5000), '{"a": ' + nested(MAX_DEPTH + 1) + "}", "9" * 5000]
    path.write_bytes(lines(good(2, "a")) + "\n".join(bad).encode() + b"\n" + lines(good(2, "b")))
    result = load(db, path)
    assert (result.loaded, result.quarantined) == (4, 3)
    reasons = [row[0] for row in db.query("select reason from raw.quarantine order by position")]
    assert ["nested too deeply" in r for r in reasons] == [True, True, False]
    assert "more than 4300 digits" in reasons[2]


# --- 2. what validates, stores and builds -------------------------------------------------


OUT_OF_BOUNDS = [
    agent_event(event_id="tokens", metadata={"total_tokens": 10**30}),
    agent_event(event_id="latency", metadata={"latency_ms": 1e300}),
    agent_event(event_id="year-1", timestamp="0001-01-01T00:00:00"),
    agent_event(event_id="year-9999", timestamp="9999-12-31T23:59:59+00:00"),
    agent_event(event_id="offset-seconds", timestamp="2026-11-01T09:30:00+05:30:15.5"),
    agent_event(event_id="offset-20h", timestamp="2026-11-01T09:30:00+20:00"),
    marketplace_event(
        id="input", properties={**marketplace_event()["properties"], "input_tokens": 10**19}
    ),
    marketplace_event(
        id="cost", properties={**marketplace_event()["properties"], "cost_usd": 1e30}
    ),
    marketplace_event(id="year-1-m", timestamp="0001-01-01T00:00:00+00:00"),
]


def test_values_no_downstream_column_can_hold_are_quarantined(db, tmp_path):
    path = tmp_path / "b.ndjson"
    path.write_bytes(lines(good(2) + OUT_OF_BOUNDS))
    result = load(db, path)
    assert (result.loaded, result.quarantined) == (2, len(OUT_OF_BOUNDS)), result.reasons
    assert reconciles(result)


@pytest.mark.parametrize("redact", ["none", "mask"])
@pytest.mark.parametrize(
    "number", ["1e999999", "1e400", "-1e400", "1E+400"], ids=["huge", "1e400", "neg", "upper"]
)
def test_a_number_jsonb_cannot_hold_is_quarantined_not_the_file(db, tmp_path, number, redact):
    bad = json.dumps(agent_event(event_id="bad")).replace('"total_tokens": 42', f'"x": {number}')
    path = tmp_path / "b.ndjson"
    path.write_bytes(lines(good(2, "a")) + bad.encode() + b"\n" + lines(good(2, "b")))
    result = load(db, path, privacy=Privacy(None, redact))
    assert (result.status, result.loaded, result.quarantined) == ("loaded", 4, 1), result.error
    [reason] = [row[0] for row in db.query("select reason from raw.quarantine")]
    assert "NaN or Infinity" in reason


def test_an_offset_with_minutes_is_stored_as_the_same_instant(db, tmp_path):
    path = tmp_path / "b.ndjson"
    path.write_bytes(lines([agent_event(event_id="x", timestamp="2026-11-01T09:30:00-03:45")]))
    load(db, path)
    stored = db.scalar("select event_ts at time zone 'UTC' from raw.agent_events")
    assert stored.isoformat() == "2026-11-01T13:15:00"


# --- 4. only regular files ----------------------------------------------------------------


def test_a_symlink_is_never_followed(db, tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("SECRET_TOKEN_KEY=do-not-store-me\n")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.ndjson").write_bytes(lines(good(2)))
    (landing / "x.ndjson").symlink_to(secret)
    (landing / "env.ndjson").symlink_to("/proc/self/environ")
    results = [load(db, path) for path in batch_files([landing])]
    assert [(Path(r.path).name, r.status) for r in results] == [
        ("a.ndjson", "loaded"),
        ("env.ndjson", "failed"),
        ("x.ndjson", "failed"),
    ]
    assert all("symlink" in r.error for r in results if r.status == "failed")
    dump = db.query("select string_agg(raw_text, '') from raw.quarantine")[0][0] or ""
    assert "SECRET_TOKEN_KEY" not in dump
    assert db.scalar("select count(*) from raw.quarantine") == 0


def test_a_fifo_is_refused_without_blocking(db, tmp_path):
    fifo = tmp_path / "pipe.ndjson"
    os.mkfifo(fifo)
    started = time.monotonic()
    result = load(db, fifo)
    assert result.status == "failed"
    assert "FIFO" in result.error
    assert time.monotonic() - started < 5
    assert validate_file_failed(fifo)


def validate_file_failed(path: Path) -> bool:
    runner = CliRunner()
    outcome = runner.invoke(main, ["validate", str(path)])
    return outcome.exit_code == 1 and "FIFO" in outcome.output


def test_an_unreadable_folder_is_reported_not_skipped(db, tmp_path):
    landing = tmp_path / "landing"
    (landing / "locked").mkdir(parents=True)
    (landing / "a.ndjson").write_bytes(lines(good(1)))
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    with (
        mock.patch("loader.load.os.scandir", scandir),
        mock.patch(
            "loader.readers.os.listdir", side_effect=PermissionError(13, "Permission denied")
        ),
    ):
        results = [load(db, path) for path in batch_files([landing])]
    assert [(Path(r.path).name, r.status) for r in results] == [
        ("a.ndjson", "loaded"),
        ("locked", "failed"),
    ]
    assert "Permission denied" in results[1].error


# --- 5. no crash, and validate agrees with load ------------------------------------------


@pytest.mark.parametrize("depth", [900, 1000, 100_000])
def test_deep_payload_with_redaction_is_quarantined_not_a_crash(db, tmp_path, depth):
    deep = json.dumps(agent_event(event_id="deep", payload={"text": "x", "role": "user"}))
    deep = deep.replace('"text": "x"', '"text": "x", "deep": ' + nested(depth))
    path = tmp_path / "b.ndjson"
    path.write_bytes(deep.encode() + b"\n" + lines(good(2)))
    result = load(db, path, privacy=Privacy(None, "mask"))
    assert (result.loaded, result.quarantined) == (2, 1)
    assert validate_file(path).quarantined == 1


# --- 8. bounded cost and safe output ------------------------------------------------------


def test_a_gzip_of_newlines_costs_little(db, tmp_path):
    path = tmp_path / "blank.ndjson.gz"
    path.write_bytes(gzip.compress(b"\n" * (100 << 20) + lines(good(1)), 9))
    started = time.process_time()
    with BatchFile(path) as batch:
        records = list(batch.records())
    assert time.process_time() - started < 5
    assert [record.position for record in records] == [(100 << 20) + 1]


def test_a_file_name_cannot_forge_a_log_line():
    assert shown("a.ndjson\nloaded     /fake: read=1") == "a.ndjson\\nloaded     /fake: read=1"
    assert "\n" not in shown("x\r\n\x1b[2J")
