"""Retention: purge removes exactly the old rows, in batches, and the ledger still reconciles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loader.ingest.load import load_file
from loader.ingest.privacy import Erasure
from loader.operations.retention import erase, parse_duration, purge
from tests.factories import agent_event, marketplace_event, write_ndjson


def test_durations():
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("2w") == timedelta(weeks=2)
    for bad in ("90", "0d", "3m", "-1d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def ago(days: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()


def test_purge_removes_exactly_the_old_rows_and_counts_reconcile(db, tmp_path):
    old = [agent_event(timestamp=ago(100 + i)) for i in range(25)]
    old += [marketplace_event(timestamp=ago(95)) for _ in range(7)]
    recent = [agent_event(timestamp=ago(5)) for _ in range(10)] + [
        marketplace_event(timestamp=ago(1))
    ]
    conn = db.connect()
    load_file(conn, write_ndjson(tmp_path / "1.ndjson", old[:20] + recent[:5] + [{"bad": 1}]))
    load_file(conn, write_ndjson(tmp_path / "2.ndjson", old[20:] + recent[5:]))
    db.query("update raw.quarantine set quarantined_at = now() - interval '200 days'")

    dry = purge(conn, timedelta(days=90), batch_rows=4, dry_run=True)
    assert (dry.agent_events, dry.marketplace_events, dry.quarantine) == (25, 7, 1)
    assert db.scalar("select count(*) from raw.agent_events") == 35  # nothing deleted

    result = purge(conn, timedelta(days=90), batch_rows=4)
    conn.close()
    assert (result.agent_events, result.marketplace_events, result.quarantine) == (25, 7, 1)
    kept = {row[0] for row in db.query("select event_id from raw.agent_events")}
    assert kept == {event["event_id"] for event in recent if "event_id" in event}
    assert db.scalar("select count(*) from raw.marketplace_events") == 1
    assert db.scalar("select count(*) from raw.quarantine") == 0
    assert db.query("select agent_events, marketplace_events, quarantine from raw.purges") == [
        (25, 7, 1)
    ]
    unreconciled = db.query(
        """
        select b.batch_id from raw.load_batches as b
        where b.records_read <> b.loaded + b.duplicates + b.quarantined
           or b.loaded <> b.purged_events
              + (select count(*) from raw.agent_events as a where a.batch_id = b.batch_id)
              + (select count(*) from raw.marketplace_events as m where m.batch_id = b.batch_id)
           or b.quarantined <> b.purged_quarantined
              + (select count(*) from raw.quarantine as q where q.batch_id = b.batch_id)
        """
    )
    assert unreconciled == []


def test_purge_removes_an_old_event_but_not_a_recent_one_with_the_same_id(db, tmp_path):
    """An id is an event's identity within its sender only: purging one sender's old copy
    leaves another sender's recent event with the same id, and old conflicts go too."""
    old = marketplace_event(id="inv-1", publisher_id="pub-old", timestamp=ago(120))
    recent = marketplace_event(id="inv-1", publisher_id="pub-new", timestamp=ago(1))
    changed = {**recent, "tenant_id": "tenant-2"}  # a conflicting duplicate of `recent`
    conn = db.connect()
    load_file(conn, write_ndjson(tmp_path / "1.ndjson", [old, recent]))
    load_file(conn, write_ndjson(tmp_path / "2.ndjson", [changed]))
    db.query("update raw.conflicts set detected_at = now() - interval '100 days'")
    result = purge(conn, timedelta(days=90))
    conn.close()
    assert (result.marketplace_events, result.conflicts) == (1, 1)
    assert db.query("select id, publisher_id from raw.marketplace_events") == [("inv-1", "pub-new")]
    assert db.scalar("select count(*) from raw.conflicts") == 0
    assert db.query("select loaded, purged_events from raw.load_batches order by batch_id") == [
        (2, 1),
        (0, 0),
    ]


def test_erasing_a_user_or_a_tenant_erases_their_conflicting_duplicates_too(db, tmp_path):
    """raw.conflicts holds copies of events: an erasure takes them with the events."""
    mine = agent_event(event_id="e-1", user_id="u-gone", payload={"text": "first"})
    theirs = marketplace_event(id="m-1", tenant_id="t-gone")
    conn = db.connect()
    load_file(conn, write_ndjson(tmp_path / "1.ndjson", [mine, theirs]))
    changed = [{**mine, "payload": {"text": "second"}}, {**theirs, "agent_id": "agent-2"}]
    assert load_file(conn, write_ndjson(tmp_path / "2.ndjson", changed)).conflicts == 2
    user = erase(conn, Erasure("user", "u-gone"))
    tenant = erase(conn, Erasure("tenant", "t-gone"))
    conn.close()
    assert (user.agent_events, user.conflicts, tenant.marketplace_events, tenant.conflicts) == (
        1,
        1,
        1,
        1,
    )
    assert db.scalar("select count(*) from raw.conflicts") == 0
