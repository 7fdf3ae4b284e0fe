"""Hostile input, one class at a time, each case beside valid events.

Every test asserts that the valid neighbours load, that the bad record is quarantined with
the documented reason (or the file refused with one), and that the counts reconcile:
read = loaded + duplicates + quarantined.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner

from loader.cli import main
from loader.console import shown
from loader.ingest.load import batch_files, validate_file
from loader.ingest.privacy import Privacy
from loader.ingest.readers import MAX_DEPTH, BatchFile
from tests.conftest import load
from tests.factories import agent_event, marketplace_event


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
        mock.patch("loader.ingest.load.os.scandir", scandir),
        mock.patch(
            "loader.ingest.readers.os.listdir", side_effect=PermissionError(13, "Permission denied")
        ),
    ):
        results = [load(db, path) for path in batch_files([landing])]
    assert [(Path(r.path).name, r.status) for r in results] == [
        ("a.ndjson", "loaded"),
        ("locked", "failed"),
    ]
    assert "Permission denied" in results[1].error


# --- identity: one sender cannot claim another's events ----------------------------------


def test_ids_squatted_by_another_agent_cost_the_real_sender_nothing(db, tmp_path):
    """Another collector learns a conversation's event ids and sends them first, under an
    agent of its own, as a gzipped JSON array; later it sends one of them again under the
    real agent's name with other content. The real events all load; the rewrite is kept in
    raw.conflicts and counted, never silently dropped nor stored over the real one."""
    victim = [agent_event(event_id=f"evt-{n}", agent_name="billing") for n in range(3)]
    squat = [{**event, "agent_name": "helper-bot", "payload": {"text": "x"}} for event in victim]
    (tmp_path / "squat.json.gz").write_bytes(gzip.compress(json.dumps(squat).encode()))
    (tmp_path / "victim.ndjson").write_bytes(lines(victim))
    rewrite = {**victim[1], "payload": {"text": "refund me", "role": "user"}}
    (tmp_path / "rewrite.ndjson").write_bytes(lines([rewrite]))
    results = [
        load(db, tmp_path / name) for name in ("squat.json.gz", "victim.ndjson", "rewrite.ndjson")
    ]
    assert [(r.loaded, r.duplicates, r.conflicts) for r in results] == [
        (3, 0, 0),
        (3, 0, 0),
        (0, 1, 1),
    ]
    assert all(reconciles(result) for result in results)
    assert db.scalar("select count(*) from raw.agent_events where agent_name = 'billing'") == 3
    assert (
        db.scalar(
            "select payload->>'text' from raw.agent_events"
            " where event_id = 'evt-1' and agent_name = 'billing'"
        )
        == victim[1]["payload"]["text"]
    )
    assert db.scalar("select record->'payload'->>'text' from raw.conflicts") == "refund me"


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


# --- 6. privacy that holds for every shape ------------------------------------------------

KEY = "hostile-test-key-0123456789"
EMAIL = "jane.doe@example.com"


def invoke(*args, env=None):
    outcome = CliRunner().invoke(main, [str(arg) for arg in args], env=env or {})
    assert "Traceback" not in outcome.output
    return outcome


def test_with_privacy_on_a_reason_never_echoes_the_value(db, tmp_path):
    privacy = Privacy(KEY.encode(), "mask")
    records = [
        agent_event(event_id="a", event_type=EMAIL),
        agent_event(event_id="b", metadata={"total_tokens": EMAIL}),
        agent_event(event_id="c", timestamp=EMAIL),
        marketplace_event(id="d", properties={"rating": EMAIL}, event_type="user_feedback"),
    ]
    path = tmp_path / "b.ndjson"
    path.write_bytes(lines(records))
    result = load(db, path, privacy=privacy)
    assert result.quarantined == 4
    reasons = [row[0] for row in db.query("select reason from raw.quarantine order by position")]
    assert [reason.split(":")[0] for reason in reasons] == [
        "event_type",
        "metadata.total_tokens",
        "timestamp",
        "properties.rating",
    ]
    assert not any("jane" in reason for reason in reasons)


@pytest.mark.parametrize("user_id", [[EMAIL], 4155550134, {"email": EMAIL}, None, True])
def test_a_user_id_of_any_json_type_never_stays_raw(db, tmp_path, user_id):
    privacy = Privacy(KEY.encode(), "none")
    path = tmp_path / "b.ndjson"
    path.write_bytes(lines([agent_event(event_id="x", user_id=user_id), *good(1)]))
    result = load(db, path, privacy=privacy)
    assert (result.loaded, result.quarantined) == (1, 1)
    raw_text = db.scalar("select raw_text from raw.quarantine")
    assert json.loads(raw_text)["user_id"] == privacy.token(user_id)
    if user_id not in (None, True):
        assert "jane" not in raw_text and "4155550134" not in raw_text


def test_a_broken_record_with_a_non_string_user_id_is_tokenized_too(db, tmp_path):
    privacy = Privacy(KEY.encode(), "none")
    path = tmp_path / "b.ndjson"
    path.write_text('{"user_id": ["jane", 7], "x": \n{"user_id": 4155550134, "y": tru\n')
    assert load(db, path, privacy=privacy).quarantined == 2
    stored = " ".join(row[0] for row in db.query("select raw_text from raw.quarantine"))
    assert "jane" not in stored and "4155550134" not in stored


def test_redaction_masks_every_string_in_every_body(db, tmp_path):
    privacy = Privacy(KEY.encode(), "mask")
    records = [
        agent_event(
            event_id="e",
            event_type="error",
            session_id=f"sess-{EMAIL}",
            payload={"error_type": f"denied for {EMAIL}", "message": "x", EMAIL: [{"k": EMAIL}]},
            metadata={"model": "m", "note": f"call {EMAIL}"},
        ),
        agent_event(event_id="c", event_type="completion", payload={"summary": f"sent to {EMAIL}"}),
        marketplace_event(
            id="m",
            event_type="install",
            agent_id=f"agent-{EMAIL}",
            properties={"plan": EMAIL, "extra": {"deep": [EMAIL]}},
        ),
    ]
    path = tmp_path / "b.ndjson"
    path.write_bytes(lines(records))
    assert load(db, path, privacy=privacy).loaded == 3
    stored = json.dumps(
        db.query(
            "select session_id, payload, metadata from raw.agent_events"
            " union all select agent_id, properties, null from raw.marketplace_events"
        )
    )
    assert "jane" not in stored
    assert stored.count("[EMAIL]") == 9


def test_privacy_is_a_warehouse_setting_and_a_mismatch_is_refused(db, tmp_path):
    env = {"AGENT_ANALYTICS_TOKEN_KEY": KEY}
    first = tmp_path / "first"
    first.mkdir()
    (first / "a.ndjson").write_bytes(lines([agent_event(event_id="a", user_id=EMAIL)]))
    assert (
        invoke("init", "--dsn", db.dsn, "--tokenize-users", "--redact", "mask", env=env).exit_code
        == 0
    )
    # No flags: the stored settings apply.
    assert invoke("load", first, "--dsn", db.dsn, env=env).exit_code == 0
    privacy = Privacy(KEY.encode(), "mask")
    assert db.scalar("select user_id from raw.agent_events") == privacy.token(EMAIL)
    fingerprint = db.scalar("select key_fingerprint from raw.load_batches")
    assert fingerprint == privacy.key_fingerprint and len(fingerprint) == 16
    second = tmp_path / "second"
    second.mkdir()
    (second / "b.ndjson").write_bytes(lines([agent_event(event_id="b", user_id=EMAIL)]))
    other_key = {"AGENT_ANALYTICS_TOKEN_KEY": "another-key-0123456789"}
    refused = [
        invoke("load", second, "--dsn", db.dsn, env=other_key),
        invoke("load", second, "--dsn", db.dsn, "--redact", "none", env=env),
        invoke("load", second, "--dsn", db.dsn, "--no-tokenize-users", env=env),
    ]
    assert [outcome.exit_code for outcome in refused] == [6, 6, 6]
    assert "different key" in refused[0].output
    assert "--redact=none" in refused[1].output
    missing_key = invoke("load", second, "--dsn", db.dsn, env={"AGENT_ANALYTICS_TOKEN_KEY": ""})
    assert missing_key.exit_code == 2
    assert db.scalar("select count(*) from raw.agent_events") == 1
    dump = json.dumps(db.query("select * from raw.privacy_settings"), default=str)
    assert KEY not in dump


def test_protection_cannot_start_after_unprotected_loads(db, tmp_path):
    (tmp_path / "a.ndjson").write_bytes(lines(good(1)))
    assert invoke("load", tmp_path / "a.ndjson", "--dsn", db.dsn).exit_code == 0
    (tmp_path / "b.ndjson").write_bytes(lines(good(1, "b")))
    env = {"AGENT_ANALYTICS_TOKEN_KEY": KEY}
    outcome = invoke("load", tmp_path / "b.ndjson", "--dsn", db.dsn, "--tokenize-users", env=env)
    assert outcome.exit_code == 6
    assert "would mix" in outcome.output


# --- 3. one refused row never fails a file ------------------------------------------------


@pytest.mark.parametrize("bad_value", ["1e999999", '"nul \\u0000 here"'], ids=["number", "nul"])
def test_a_row_postgresql_refuses_is_quarantined_with_its_position(db, tmp_path, bad_value):
    # Switch the contract's storability check off, so PostgreSQL itself sees the bad value:
    # the last line of defence must hold on its own.
    bad = json.dumps(agent_event(event_id="bad")).replace('"total_tokens": 42', f'"x": {bad_value}')
    path = tmp_path / "b.ndjson"
    path.write_bytes(lines(good(3, "a")) + bad.encode() + b"\n" + lines(good(3, "b")))
    with (
        mock.patch("loader.ingest.load._SUSPECT", re.compile("(?!)")),
        mock.patch("loader.ingest.readers._DECODER", json.JSONDecoder()),
    ):
        result = load(db, path)
    assert (result.status, result.loaded, result.quarantined) == ("loaded", 6, 1), result.error
    assert reconciles(result)
    [(position, reason)] = db.query("select position, reason from raw.quarantine")
    assert position == 4
    assert reason.startswith("PostgreSQL refused this record")
    assert db.query("select status, records_read, loaded, quarantined from raw.load_batches") == [
        ("loaded", 7, 6, 1)
    ]


# --- 7. interrupts and a lost connection --------------------------------------------------


def start_big_load(db, tmp_path) -> tuple[subprocess.Popen, Path]:
    """A loader in a subprocess, on a file big enough to interrupt; returns once it is loading."""
    path = tmp_path / "big.ndjson"
    path.write_bytes(lines(good(150_000, "big")))
    process = subprocess.Popen(
        [sys.executable, "-m", "loader", "load", str(path)],
        env=db.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = db.scalar(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and query ~* '(^|; )copy '"
            " and pid <> pg_backend_pid()"
        )
        if busy:
            return process, path
        time.sleep(0.01)
    process.kill()
    raise AssertionError("the load never started")


@pytest.mark.parametrize(
    "sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupt_rolls_back_the_file_blames_nobody_and_the_next_run_loads_it(
    db, tmp_path, sig, code
):
    process, path = start_big_load(db, tmp_path)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "refused" not in stderr
    assert f"interrupted by {sig.name}" in stderr
    assert db.query("select count(*) from raw.load_batches") == [(0,)]
    assert db.scalar("select count(*) from raw.agent_events") == 0
    rerun = subprocess.run(
        [sys.executable, "-m", "loader", "load", str(path)],
        env=db.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert db.scalar("select count(*) from raw.agent_events") == 150_000


def test_a_terminated_backend_is_one_documented_line_and_exit_3(db, tmp_path):
    process, _ = start_big_load(db, tmp_path)
    db.query(
        "select pg_terminate_backend(pid) from pg_stat_activity"
        " where datname = current_database() and pid <> pg_backend_pid()"
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 3, stderr
    assert stderr.startswith("Error: lost the connection to PostgreSQL while loading")
    assert len(stderr.strip().splitlines()) == 1
    assert db.query("select count(*) from raw.load_batches") == [(0,)]


# --- the one-call validation of NDJSON lines gives the standard reader's verdicts --------


def test_lines_validated_in_one_call_get_the_standard_verdict_and_values(db, tmp_path):
    """`load` validates NDJSON lines from their text; `validate` decodes them first.

    Each line below is one the two JSON readers might treat differently; the quarantine
    must hold the same positions and reasons as `validate` lists, and what loads must keep
    its values as written (an int stays an int, the last of two equal keys wins).
    """
    event = json.dumps(
        agent_event(
            event_id="e", payload={"text": "hi", "role": "user"}, metadata={"total_tokens": 42}
        )
    )
    body = '"payload": {"text": "hi", "role": "user"'
    variants = [
        event.replace(body, body + ', "x": NaN'),
        event.replace(body, body + ', "x": -Infinity'),
        event.replace(body, body + ', "x": 1e400'),
        event.replace(body, body + ', "x": ' + "9" * 5000),
        event.replace(body, body + ', "x": 01'),
        event.replace(body, body + ', "x": "\\u0000"'),
        event.replace(body, body + ', "x": "\\ud800"'),
        event.replace(body, body + ', "x": ' + nested(MAX_DEPTH + 1)),
        event.replace(body, body + ', "role": 5'),  # the last key wins: refused
        event.replace(body, '"payload": {"text": 5, "text": "hi", "role": "user"'),  # accepted
        event.replace('"total_tokens": 42', '"total_tokens": 42, "latency_ms": 1840'),
        event.replace('"total_tokens": 42', '"total_tokens": 42, "latency_ms": 2.50'),
        event.replace('"user_id": ', '"user_id": 7, "user_id": '),  # accepted: the last wins
    ]
    assert all(variant != event for variant in variants)
    records = [
        variant.replace('"event_id": "e"', f'"event_id": "e{i}"')
        for i, variant in enumerate(variants)
    ]
    path = tmp_path / "b.ndjson"
    path.write_text("".join(record + "\n" for record in records))
    expected = validate_file(path)
    result = load(db, path)
    assert reconciles(result)
    assert result.quarantined == expected.quarantined == 9
    assert db.query("select position, reason from raw.quarantine order by position") == [
        (problem["position"], problem["reason"]) for problem in expected.problems
    ]
    assert db.query(
        "select event_id, payload->>'text', metadata->>'latency_ms', user_id"
        " from raw.agent_events order by event_id"
    ) == [
        ("e10", "hi", "1840", "user-1"),
        ("e11", "hi", "2.5", "user-1"),  # re-encoded from the value: 2.50 is 2.5
        ("e12", "hi", None, "user-1"),
        ("e9", "hi", None, "user-1"),
    ]


# --- identifiers and names: what an index can hold, one form, never echoed --------------


def test_names_an_index_cannot_hold_or_that_hide_characters_cost_only_their_record(db, tmp_path):
    """One instance of each class of issue 23 the contract answers, beside valid events."""
    privacy = Privacy(KEY.encode(), "mask")
    nfc = "Ångström"
    records = [
        # a name over the bound that an index would refuse (3,000 bytes)
        marketplace_event(id="plan", event_type="install", properties={"plan": "ü" * 1500}),
        # an id over the b-tree limit, which stopped the whole run
        marketplace_event(id="🔑" * 700),
        # a key holding PII: the reason never names it, even unmasked
        {**marketplace_event(id="key"), "bob.smith@example.org": "x"},
        # a bidirectional isolate and a word joiner in ids
        marketplace_event(id="bidi", tenant_id="acme\u2066gro"),
        marketplace_event(id="joiner", agent_id="sum\u2060mary"),
        # a formula and a decomposed name: stored, the name in its composed form
        marketplace_event(
            id="formula", event_type="tool_called", properties={"tool_name": "@SUM(1+1)"}
        ),
        agent_event(event_id="nfd", agent_name=unicodedata.normalize("NFD", nfc)),
        agent_event(event_id="nfc", agent_name=nfc),
    ]
    path = tmp_path / "names.ndjson"
    path.write_bytes(lines(good(2, "a") + records + good(2, "b")))
    result = load(db, path, privacy=privacy)
    assert (result.loaded, result.quarantined) == (7, 5), result.reasons
    assert reconciles(result)
    reasons = [row[0] for row in db.query("select reason from raw.quarantine order by position")]
    assert reasons == [
        "properties.plan: longer than 256 bytes (UTF-8)",
        "id: longer than 256 bytes (UTF-8)",
        "record: a key outside the contract (the envelope's keys are fixed: put other values"
        " in `properties`)",
        "tenant_id: holds U+2066, a control, zero-width or bidirectional formatting character",
        "agent_id: holds U+2060, a control, zero-width or bidirectional formatting character",
    ]
    agents = db.query("select distinct agent_name from raw.agent_events")
    assert set(agents) == {(nfc,), ("triage",)} and len(agents) == 2
    assert (
        db.scalar(
            "select properties->>'tool_name' from raw.marketplace_events"
            " where event_type = 'tool_called'"
        )
        == "@SUM(1+1)"
    )


# --- 8. no single file or record stops a run (tests/loader/test_run.py has the rest) -------


def test_an_event_another_unique_index_refuses_is_quarantined_and_the_run_goes_on(db, tmp_path):
    """A 23505 from an index other than the event id's (an operator's extra unique index):
    not "seen before", not a lost connection; the record is quarantined, the rest loads."""
    db.query("create unique index one_per_model on raw.agent_events ((metadata ->> 'model'))")
    first = agent_event(event_id="first", metadata={"model": "m1"})
    clash = agent_event(event_id="clash", metadata={"model": "m1"})
    other = agent_event(event_id="other", metadata={"model": "m2"})
    (tmp_path / "1.ndjson").write_bytes(lines([first, clash]))
    (tmp_path / "2.ndjson").write_bytes(lines([other]))
    outcome = invoke("load", tmp_path, env={"AGENT_ANALYTICS_DSN": db.dsn})
    assert outcome.exit_code == 0, outcome.output
    assert db.query("select event_id from raw.agent_events order by event_id") == [
        ("first",),
        ("other",),
    ]
    [(position, reason)] = db.query("select position, reason from raw.quarantine")
    assert position == 2 and reason.endswith("(SQLSTATE 23505)")


def test_a_folder_named_with_a_newline_and_a_c1_control_loads_and_shows_escaped(db, tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"day\n2")
    os.mkdir(folder)
    with open(os.path.join(folder, b"ev\x85\xff.jsonl"), "wb") as handle:
        handle.write(lines(good(2)))
    outcome = invoke("load", tmp_path, env={"AGENT_ANALYTICS_DSN": db.dsn})
    assert outcome.exit_code == 0
    escaped = f"{tmp_path}/day\\n2/ev\\x85\\xff.jsonl"
    assert outcome.output.splitlines()[0].startswith(f"loaded     {escaped}: read=2 loaded=2")
    assert db.scalar("select path from raw.load_batches") == escaped


def test_a_collectors_temporary_name_is_ignored_not_quarantined(db, tmp_path):
    (tmp_path / "batch-0001.ndjson.tmp").write_bytes(lines(good(2))[:-40])  # half written
    outcome = invoke("load", "--json", tmp_path, env={"AGENT_ANALYTICS_DSN": db.dsn})
    assert outcome.exit_code == 0
    assert [r["status"] for r in json.loads(outcome.stdout)] == ["ignored"]
    assert db.scalar("select count(*) from raw.load_batches") == 0
    assert db.scalar("select count(*) from raw.quarantine") == 0


def test_a_gzip_of_lone_cr_lines_loads_every_record(db, tmp_path):
    events = [marketplace_event(id=f"cr-{i}") for i in range(5)]
    body = b"\r".join(json.dumps(event).encode() for event in events) + b"\r"
    (tmp_path / "mac.json.gz").write_bytes(gzip.compress(body))
    result = load(db, tmp_path / "mac.json.gz")
    assert (result.file_format, result.loaded, result.quarantined) == ("ndjson.gz", 5, 0)
