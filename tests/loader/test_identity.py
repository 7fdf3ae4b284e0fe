"""Event identity: an id is scoped to its sender, and a conflicting duplicate is kept.

A marketplace event is the same event as another when both `id` and `publisher_id` match; a
conversation event when both `event_id` and `agent_name` match (docs/contract.md, "Exactly
once"). A duplicate whose content differs from the stored copy lands in `raw.conflicts`.
"""

from __future__ import annotations

import json
import re
from unittest import mock

from click.testing import CliRunner

from loader.cli import main
from loader.ingest.privacy import Privacy
from tests.conftest import load
from tests.factories import agent_event, marketplace_event, write_ndjson

KEY = "a-token-key-of-at-least-16-bytes"


def completion(publisher_id: str, cost_usd: float, **overrides):
    properties = {"input_tokens": 1, "output_tokens": 1, "cost_usd": cost_usd}
    return marketplace_event(
        id="inv-7", publisher_id=publisher_id, properties=properties, **overrides
    )


def test_an_id_squatted_under_another_publisher_does_not_suppress_the_real_event(db, tmp_path):
    squatted = load(db, write_ndjson(tmp_path / "1.ndjson", [completion("pub-evil", 999_999)]))
    real = load(db, write_ndjson(tmp_path / "2.ndjson", [completion("pub-1", 0.25)]))
    assert (squatted.loaded, real.loaded, real.duplicates, real.conflicts) == (1, 1, 0, 0)
    rows = db.query(
        "select publisher_id, (properties->>'cost_usd')::numeric from raw.marketplace_events"
        " order by publisher_id"
    )
    assert [(publisher, float(cost)) for publisher, cost in rows] == [
        ("pub-1", 0.25),
        ("pub-evil", 999_999.0),
    ]


def test_a_conversation_event_id_squatted_by_another_agent_does_not_suppress_the_real_one(
    db, tmp_path
):
    impostor = agent_event(event_id="evt-1", agent_name="impostor", payload={"text": "x"})
    real = agent_event(event_id="evt-1", agent_name="triage")
    load(db, write_ndjson(tmp_path / "1.ndjson", [impostor]))
    result = load(db, write_ndjson(tmp_path / "2.ndjson", [real]))
    assert (result.loaded, result.duplicates) == (1, 0)
    assert db.query("select agent_name from raw.agent_events order by 1") == [
        ("impostor",),
        ("triage",),
    ]


def test_the_same_sender_resending_under_a_rotated_key_counts_once(db, tmp_path):
    """The key's label is in the file name only: the same event from a new key is the same."""
    event = completion("pub-1", 0.25)
    conversation = agent_event(event_id="evt-2")
    load(db, write_ndjson(tmp_path / "20260101T000000Z-old-key-aaaaaa-1.ndjson", [event]))
    resent = [conversation, event, conversation]
    result = load(db, write_ndjson(tmp_path / "20260101T000100Z-new-key-bbbbbb-1.ndjson", resent))
    assert (result.loaded, result.duplicates, result.conflicts) == (1, 2, 0)
    assert db.scalar("select count(*) from raw.marketplace_events") == 1
    assert db.scalar("select count(*) from raw.conflicts") == 0


def test_a_duplicate_that_differs_is_kept_in_conflicts_and_counted(db, tmp_path):
    first = load(db, write_ndjson(tmp_path / "1.ndjson", [completion("pub-1", 0.25)]))
    changed = completion("pub-1", 12.5)
    second = load(db, write_ndjson(tmp_path / "2.ndjson", [changed, completion("pub-1", 0.25)]))
    assert (second.loaded, second.duplicates, second.conflicts) == (0, 2, 1)
    assert db.query(
        "select records_read, loaded, duplicates, conflicts from raw.load_batches order by 1"
    ) == [(1, 1, 0, 0), (2, 0, 2, 1)]
    [(table, event_id, sender, stored, batch, record)] = db.query(
        "select event_table, event_id, sender, stored_batch_id, batch_id, record from raw.conflicts"
    )
    assert (table, event_id, sender) == ("marketplace_events", "inv-7", "pub-1")
    assert (stored, batch) == (first.batch_id, second.batch_id)
    assert record["properties"] == changed["properties"]
    assert record["tenant_id"] == "tenant-1"
    # the stored copy stays the first one
    assert db.scalar("select properties->>'cost_usd' from raw.marketplace_events") == "0.25"


def test_a_conflicting_copy_inside_one_file_is_kept_too(db, tmp_path):
    first = agent_event(event_id="same", payload={"text": "first"})
    second = agent_event(event_id="same", payload={"text": "second"})
    result = load(db, write_ndjson(tmp_path / "1.ndjson", [first, second, first]))
    assert (result.loaded, result.duplicates, result.conflicts) == (1, 2, 1)
    [(stored, batch, record)] = db.query(
        "select stored_batch_id, batch_id, record from raw.conflicts"
    )
    assert stored == batch == result.batch_id
    assert record["payload"] == {"text": "second"}


def test_a_conflict_is_stored_with_the_privacy_of_raw(db, tmp_path):
    privacy = Privacy(key=KEY.encode(), redact="mask")
    stored = agent_event(event_id="e-9", user_id="jane@example.com", payload={"text": "hi"})
    other = agent_event(
        event_id="e-9", user_id="jane@example.com", payload={"text": "mail jane@example.com"}
    )
    load(db, write_ndjson(tmp_path / "1.ndjson", [stored]), privacy=privacy)
    result = load(db, write_ndjson(tmp_path / "2.ndjson", [other]), privacy=privacy)
    assert result.conflicts == 1
    [(record,)] = db.query("select record from raw.conflicts")
    assert record["user_id"] == privacy.token("jane@example.com")
    assert "jane@example.com" not in json.dumps(record)
    assert record["user_id"] == db.scalar("select user_id from raw.agent_events")


def test_a_conflict_is_kept_when_the_file_loads_a_record_at_a_time(db, tmp_path):
    """After PostgreSQL refused a value, the file loads carefully: conflicts are kept there too."""
    load(db, write_ndjson(tmp_path / "1.ndjson", [completion("pub-1", 0.25)]))
    refused = json.dumps(agent_event(event_id="bad")).replace('"total_tokens": 42', '"x": 1e999999')
    changed = json.dumps(completion("pub-1", 3.0))
    path = tmp_path / "2.ndjson"
    path.write_text(f"{changed}\n{refused}\n")
    with (
        mock.patch("loader.ingest.load._SUSPECT", re.compile("(?!)")),
        mock.patch("loader.ingest.readers._DECODER", json.JSONDecoder()),
    ):
        result = load(db, path)
    assert (result.loaded, result.duplicates, result.quarantined, result.conflicts) == (0, 1, 1, 1)
    assert db.scalar("select record->'properties'->>'cost_usd' from raw.conflicts") == "3.0"


def test_load_reports_conflicts_in_its_summary_and_json(db, tmp_path):
    for folder in "abc":
        (tmp_path / folder).mkdir()
    write_ndjson(tmp_path / "a" / "1.ndjson", [completion("pub-1", 0.25)])
    write_ndjson(tmp_path / "b" / "2.ndjson", [completion("pub-1", 1.0)])
    runner = CliRunner()
    first = runner.invoke(main, ["load", str(tmp_path / "a"), "--dsn", db.dsn])
    assert first.exit_code == 0, first.output
    text = runner.invoke(main, ["load", str(tmp_path / "b"), "--dsn", db.dsn])
    assert "duplicates=1 conflicts=1 (kept in raw.conflicts)" in text.output
    write_ndjson(tmp_path / "c" / "3.ndjson", [completion("pub-1", 2.0)])
    as_json = runner.invoke(main, ["load", str(tmp_path / "c"), "--dsn", db.dsn, "--json"])
    [result] = json.loads(as_json.output)
    assert (result["duplicates"], result["conflicts"]) == (1, 1)
    history = runner.invoke(main, ["history", "--dsn", db.dsn, "--json"])
    assert [row["conflicts"] for row in json.loads(history.output)] == [1, 1, 0]
