"""Loading into a real PostgreSQL: exactly once, nothing lost, counts that reconcile."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from unittest import mock

import pytest

from loader.ingest import load as load_module
from tests.conftest import load
from tests.factories import (
    agent_event,
    marketplace_event,
    write_array,
    write_events_document,
    write_ndjson,
)


def ledger(db):
    return db.query(
        "select status, records_read, loaded, duplicates, quarantined from raw.load_batches"
        " order by batch_id"
    )


def count(db, table):
    return db.scalar(f"select count(*) from raw.{table}")


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("writer", [write_ndjson, write_events_document, write_array])
def test_each_format_loads_both_shapes(db, tmp_path, writer, compress):
    events = [agent_event(event_id="a1"), agent_event(event_id="a2"), marketplace_event(id="m1")]
    result = load(db, writer(tmp_path / "batch", events, compress))
    assert (result.status, result.records_read, result.loaded) == ("loaded", 3, 3)
    assert (result.agent_events_loaded, result.marketplace_events_loaded) == (2, 1)
    assert count(db, "agent_events") == 2
    assert count(db, "marketplace_events") == 1


def test_values_land_typed_and_unchanged(db, tmp_path):
    agent = agent_event(
        event_id="a1",
        timestamp="2026-11-01T09:30:15.250000",
        payload={"text": "tab\there\nnew line \\ backslash \u00e9 \u2603", "role": "user"},
    )
    market = marketplace_event(id="m1", timestamp="2026-11-01T11:30:00+02:00")
    load(db, write_ndjson(tmp_path / "b.ndjson", [agent, market]))
    row = db.query("select event_ts, payload, metadata, session_id, user_id from raw.agent_events")[
        0
    ]
    assert row[0] == datetime(2026, 11, 1, 9, 30, 15, 250000, tzinfo=timezone.utc)
    assert row[1] == agent["payload"]
    assert row[2] == agent["metadata"]
    assert row[3:] == ("sess-1", "user-1")
    event_ts, properties = db.query("select event_ts, properties from raw.marketplace_events")[0]
    assert event_ts == datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)
    assert properties == market["properties"]


def test_every_row_of_a_file_carries_its_transaction_time(db, tmp_path):
    """`loaded_at` and `quarantined_at`: the load transaction's `now()`, one for the file."""
    path = write_ndjson(tmp_path / "b.ndjson", [agent_event(), marketplace_event(), {"x": 1}])
    before = datetime.now(timezone.utc)
    load(db, path)
    times = db.query(
        "select loaded_at from raw.agent_events union all"
        " select loaded_at from raw.marketplace_events union all"
        " select quarantined_at from raw.quarantine"
    )
    started = db.scalar("select started_at from raw.load_batches")  # clock_timestamp()
    assert len(times) == 3 and len(set(times)) == 1
    assert before <= times[0][0] <= started  # the transaction's start, not the COPY's


def test_replayed_file_loads_nothing_new(db, tmp_path):
    path = write_ndjson(tmp_path / "b.ndjson", [agent_event(), marketplace_event()])
    first = load(db, path)
    second = load(db, path)
    assert first.status == "loaded"
    assert (second.status, second.batch_id) == ("skipped", first.batch_id)
    assert ledger(db) == [("loaded", 2, 2, 0, 0)]
    assert count(db, "agent_events") + count(db, "marketplace_events") == 2


def test_same_content_under_another_name_is_skipped(db, tmp_path):
    path = write_ndjson(tmp_path / "b.ndjson", [agent_event()])
    copy = tmp_path / "copy.ndjson"
    copy.write_bytes(path.read_bytes())
    assert load(db, path).status == "loaded"
    assert load(db, copy).status == "skipped"


def test_duplicates_inside_one_file_and_across_files_are_counted_not_loaded(db, tmp_path):
    a, b, c = agent_event(), agent_event(), marketplace_event()
    first = load(db, write_ndjson(tmp_path / "1.ndjson", [a, b, a, c, c]))
    second = load(db, write_events_document(tmp_path / "2.json", [b, c, agent_event()]))
    assert (first.records_read, first.loaded, first.duplicates) == (5, 3, 2)
    assert (second.records_read, second.loaded, second.duplicates) == (3, 1, 2)
    assert ledger(db) == [("loaded", 5, 3, 2, 0), ("loaded", 3, 1, 2, 0)]
    assert count(db, "agent_events") == 3
    assert count(db, "marketplace_events") == 1


def test_first_copy_of_a_duplicated_event_wins(db, tmp_path):
    first = agent_event(event_id="same", payload={"text": "first"})
    second = agent_event(event_id="same", payload={"text": "second"})
    load(db, write_ndjson(tmp_path / "1.ndjson", [first, second]))
    assert db.scalar("select payload->>'text' from raw.agent_events") == "first"


BAD_LINES = [
    (b"{not json", "invalid JSON: Expecting property name enclosed in double quotes"),
    (json.dumps(agent_event(event_type="clicked")).encode(), "event_type: Input should be"),
    (json.dumps({**agent_event(), "extra": 1}).encode(), "record: a key outside the contract"),
    (
        json.dumps(marketplace_event(agent_id=3)).encode(),
        "agent_id: Input should be a valid string",
    ),
    (json.dumps(agent_event(payload={"text": "a\u0000b"})).encode(), "contains a NUL character"),
    (json.dumps(agent_event(user_id="nul\u0000")).encode(), "user_id: holds U+0000"),
    (b'{"event_id": "x\xff"}', "invalid UTF-8 at byte 16 of the record"),
    (json.dumps(agent_event(payload={"x": "\ud800"})).encode(), "unpaired UTF-16 surrogate"),
    (json.dumps(agent_event(payload={"x": float("nan")})).encode(), "contains NaN or Infinity"),
    (json.dumps(agent_event(payload={"x": 1e400})).encode(), "contains NaN or Infinity"),
    (b"[1, 2]", "record is an array, expected a JSON object"),
    (b'{"hello": "world"}', "record fits neither event shape"),
]


def test_every_bad_record_is_quarantined_with_its_reason_and_text(db, tmp_path):
    good = json.dumps(agent_event()).encode()
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(b"\n".join([good, *(line for line, _ in BAD_LINES)]) + b"\n")
    result = load(db, path)
    assert (result.records_read, result.loaded, result.quarantined) == (13, 1, 12)
    rows = db.query("select position, reason, raw_text from raw.quarantine order by position")
    assert [position for position, _, _ in rows] == list(range(2, 14))
    for (_, reason, raw_text), (line, expected) in zip(rows, BAD_LINES, strict=True):
        assert expected in reason
        assert raw_text == line.decode("utf-8", "backslashreplace")


def test_oversized_record_is_quarantined_with_its_size(db, tmp_path):
    big = agent_event(payload={"text": "x" * 3000})
    path = write_ndjson(tmp_path / "big.ndjson", [big, agent_event()])
    result = load(db, path, max_record_bytes=2048)
    assert (result.loaded, result.quarantined) == (1, 1)
    reason, raw_bytes = db.query("select reason, raw_bytes from raw.quarantine")[0]
    size = len(json.dumps(big))
    assert reason.startswith(f"record is {size} bytes, over the 2048-byte limit")
    assert raw_bytes == size


def test_empty_and_truncated_files_are_quarantined_not_dropped(db, tmp_path):
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.json"
    truncated.write_text('{"events": [' + json.dumps(agent_event()) + ', {"event_id": "half')
    assert (load(db, empty).records_read, count(db, "quarantine")) == (1, 1)
    result = load(db, truncated)
    assert (result.records_read, result.loaded, result.quarantined) == (2, 1, 1)
    assert "truncated" in db.scalar("select reason from raw.quarantine where position = 2")


def test_counts_reconcile_for_every_file(db, tmp_path):
    a = agent_event()
    files = [
        write_ndjson(tmp_path / "1.ndjson", [a, a, {"bad": 1}, marketplace_event()]),
        write_array(tmp_path / "2.json", [a, agent_event(event_type="?"), agent_event()], True),
    ]
    for path in files:
        load(db, path)
    for status, read, loaded, duplicates, quarantined in ledger(db):
        assert status == "loaded"
        assert read == loaded + duplicates + quarantined
    totals = db.query(
        "select sum(loaded), sum(quarantined) from raw.load_batches where status = 'loaded'"
    )[0]
    raw_rows = count(db, "agent_events") + count(db, "marketplace_events")
    assert totals == (raw_rows, count(db, "quarantine")) == (3, 2)


def assert_refused_as_changed_then_retried(db, path, changed):
    """`changed` (the load of `path` that saw it change) failed saying so and loaded nothing;
    the next load of `path` loads it, and the ledger shows both."""
    assert changed.status == "failed"
    assert "changed while it was being loaded" in changed.error
    assert count(db, "agent_events") == 0
    assert load(db, path).status == "loaded"
    assert [row[0] for row in ledger(db)] == ["failed", "loaded"]


def test_a_large_file_that_changes_while_loading_loads_nothing_and_is_retried(db, tmp_path):
    """Over IN_MEMORY_BYTES a file is read twice: a checksum that differs means it changed."""
    path = write_ndjson(tmp_path / "b.ndjson", [agent_event()])
    with (
        mock.patch.object(load_module, "IN_MEMORY_BYTES", 0),
        mock.patch.object(load_module, "file_checksum", return_value=("0" * 64, 1)),
    ):
        changed = load(db, path)
    assert_refused_as_changed_then_retried(db, path, changed)


def test_a_small_file_written_to_after_it_was_listed_loads_nothing_and_is_retried(db, tmp_path):
    """A small file is read once: one whose size or time changed since its lstat is refused."""
    path = write_ndjson(tmp_path / "b.ndjson", [agent_event()])
    ledger_lookup = load_module._loaded_file

    def lookup_while_a_collector_appends(*args, **kwargs):
        with path.open("a") as handle:
            handle.write(json.dumps(agent_event()) + "\n")
        return ledger_lookup(*args, **kwargs)

    with mock.patch.object(load_module, "_loaded_file", lookup_while_a_collector_appends):
        changed = load(db, path)
    assert_refused_as_changed_then_retried(db, path, changed)


def test_a_large_file_loaded_before_under_another_name_is_skipped(db, tmp_path):
    """Over IN_MEMORY_BYTES the checksum is taken while the file loads: content loaded
    before is found at the end, and the whole load is rolled back."""
    events = [agent_event(), agent_event(), marketplace_event()]
    first = write_ndjson(tmp_path / "a.ndjson", events)
    renamed = write_ndjson(tmp_path / "b.ndjson", events)
    with mock.patch.object(load_module, "IN_MEMORY_BYTES", 0):
        loaded = load(db, first)
        again = load(db, renamed)
    assert (loaded.status, loaded.loaded) == ("loaded", 3)
    assert (again.status, again.batch_id) == ("skipped", loaded.batch_id)
    assert count(db, "agent_events") + count(db, "marketplace_events") == 3
    assert db.query("select status, sha256, bytes from raw.load_batches") == [
        ("loaded", hashlib.sha256(first.read_bytes()).hexdigest(), first.stat().st_size)
    ]


def test_a_missing_file_fails_with_a_reason_in_the_ledger(db, tmp_path):
    result = load(db, tmp_path / "gone.ndjson")
    assert result.status == "failed"
    assert result.error == "cannot read the file: No such file or directory"
    assert db.scalar("select error from raw.load_batches") == result.error


def test_an_unchanged_file_is_skipped_without_reading_it(db, tmp_path):
    path = write_ndjson(tmp_path / "b.ndjson", [agent_event()])
    first = load(db, path)
    with mock.patch.object(load_module, "file_checksum", side_effect=AssertionError("read")):
        again = load(db, path)
    assert (again.status, again.batch_id) == ("skipped", first.batch_id)
    rehashed = load(db, path, rehash=True)
    assert (rehashed.status, rehashed.batch_id) == ("skipped", first.batch_id)


def test_a_file_rewritten_in_place_loads_its_new_events(db, tmp_path):
    a, b = agent_event(), agent_event()
    path = write_ndjson(tmp_path / "b.ndjson", [a])
    load(db, path)
    write_ndjson(path, [a, b])  # a collector appended to the same file
    result = load(db, path)
    assert (result.status, result.loaded, result.duplicates) == ("loaded", 1, 1)


def test_the_usual_record_gets_the_row_the_general_way_gives():
    """`_plain_row` (the loader's shortcut) gives `copy_row`'s row, or steps aside."""
    from loader.ingest.load import AGENT, MARKETPLACE, Layout, _plain_row, copy_row
    from loader.ingest.privacy import NO_PRIVACY
    from loader.ingest.readers import UNDECODED, Record

    suffix = "\t7\t2026-11-26T00:00:00+00:00\n"
    agent = agent_event(event_id="a1", payload={"text": "café ☃", "role": "user"})
    without_metadata = {key: value for key, value in agent.items() if key != "metadata"}
    taken = [
        json.dumps(agent, ensure_ascii=False),
        json.dumps(without_metadata, ensure_ascii=False),
        json.dumps(agent_event(metadata={})),
        json.dumps(marketplace_event(id="m1")),
    ]
    left = [
        json.dumps(agent).replace('"role": "user"', '"role": "user", "x": NaN'),
        json.dumps(agent_event(payload={"text": 'a "quote"\tand a tab'})),
        json.dumps(agent_event(timestamp="2026-11-01T11:30:00+02:00")),
        json.dumps(agent_event(user_id=7)),
    ]
    for raw in taken + left:
        record = Record(1, raw, len(raw.encode()), UNDECODED, None)
        row = _plain_row(raw, suffix)
        assert (row is not None) is (raw in taken), raw
        if row is not None:
            assert row == copy_row(record, NO_PRIVACY, Layout(suffix=suffix))[:2]
    kind, row = _plain_row(taken[0], suffix)
    assert kind == AGENT and _plain_row(taken[3], suffix)[0] == MARKETPLACE
    *columns, payload, metadata, batch, loaded = row.decode().removesuffix("\n").split("\t")
    stamp = "2026-11-01T09:30:15.250000+00"
    assert columns == ["a1", "conv-1", "sess-1", "message", stamp, "triage", "user-1"]
    assert (json.loads(payload), json.loads(metadata)) == (agent["payload"], agent["metadata"])
    assert (batch, loaded) == ("7", "2026-11-26T00:00:00+00:00")
    assert _plain_row(taken[1], suffix)[1].split(b"\t")[8] == b"{}"
