"""Ingest keys bound to their senders: a key may write only for the publishers and agents it
is bound to; anything else is refused in the answer, never written, and counted in /metrics.
A duplicate that differs, sent through the endpoint, is kept in raw.conflicts by the follower."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from loader.live.serve import IngestKey, KeyConfigError, KeyScope, out_of_scope, parse_keys
from tests.conftest import Database, run_loader
from tests.serve.conftest import agent_event, marketplace_event, request, start_follow

KEY_A = "a" * 20 + "-secret-key-a"
KEY_B = "b" * 20 + "-secret-key-b"
KEY_C = "c" * 20 + "-secret-key-c"


def test_a_key_is_bound_by_publisher_and_agent_words_after_it() -> None:
    text = f"acme:{KEY_A} publisher=pub-acme publisher=pub-acme-eu agent=triage\nold:{KEY_B}\n"
    assert parse_keys(text, "f") == {
        "acme": IngestKey(
            KEY_A, KeyScope(frozenset({"pub-acme", "pub-acme-eu"}), frozenset({"triage"}))
        ),
        "old": IngestKey(KEY_B),
    }
    # the variable separates entries with commas, bindings with blanks
    assert parse_keys(f"x:{KEY_A} agent=support,y:{KEY_B}", "env")["x"].scope == KeyScope(
        None, frozenset({"support"})
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (f"a:{KEY_A} tenant=t-1", "is not a binding"),
        (f"a:{KEY_A} publisher=", "is not a binding"),
        (f"a:{KEY_A} publisher={'p' * 257}", "at most 256 bytes"),
    ],
)
def test_malformed_bindings_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(KeyConfigError, match=fragment):
        parse_keys(text, "f")


def test_out_of_scope_names_the_field_and_the_key_never_the_value() -> None:
    scope = KeyScope(publishers=frozenset({"pub-01"}))
    records = [
        (None, marketplace_event("m-1")),
        (None, marketplace_event("m-2", publisher_id="pub-victim")),
        (None, agent_event("e-1")),
        (None, [1, 2]),  # not an event: the contract's to quarantine
        (None, marketplace_event("m-3", publisher_id=["pub-01"])),  # not a name at all
    ]
    assert out_of_scope(records, scope, "acme") == [
        {"index": 1, "reason": "publisher_id is outside the scope of ingest key 'acme'"},
        {"index": 2, "reason": "ingest key 'acme' is not bound to write conversation events"},
        {"index": 4, "reason": "publisher_id is outside the scope of ingest key 'acme'"},
    ]
    assert out_of_scope(records, None, "acme") == []


def test_a_bound_key_cannot_claim_another_senders_events(
    start_serve, tmp_path: Path, db: Database
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"squatter:{KEY_A} publisher=pub-squat agent=bot\nfree:{KEY_B}\n")
    server = start_serve("--keys-file", str(keys))
    squatter = {"Authorization": f"Bearer {KEY_A}"}
    body = {
        "events": [
            marketplace_event("inv-1", publisher_id="pub-squat"),
            marketplace_event("inv-2", publisher_id="pub-01"),  # the victim's publisher
            agent_event("e-1", agent_name="support"),  # the victim's agent
            agent_event("e-2", agent_name="bot", event_type="nope"),  # in scope, invalid
            agent_event("e-3", agent_name="bot"),
        ]
    }
    answer = server.post(body, headers=squatter)
    assert answer.status == 200
    assert answer.json["records"] == 5
    assert answer.json["accepted"] == 2
    assert [item["index"] for item in answer.json["quarantined"]] == [3]
    assert answer.json["refused"] == [
        {"index": 1, "reason": "publisher_id is outside the scope of ingest key 'squatter'"},
        {"index": 2, "reason": "agent_name is outside the scope of ingest key 'squatter'"},
    ]
    # a batch refused whole writes nothing
    only_foreign = server.post({"events": [marketplace_event("inv-3")]}, headers=squatter)
    assert only_foreign.status == 200
    assert (only_foreign.json["accepted"], only_foreign.json["file"]) == (0, None)
    # an unbound key writes for anyone, as before
    free = server.post(
        {"events": [marketplace_event("inv-4")]}, headers={"Authorization": f"Bearer {KEY_B}"}
    )
    assert free.json["accepted"] == 1

    metrics = request(server.url + "/metrics").body.decode()
    assert re.search(r"^agent_loader_events_refused_total 3\.0$", metrics, re.MULTILINE)
    assert re.search(r"^agent_loader_events_accepted_total 3\.0$", metrics, re.MULTILINE)

    run_loader(db, "load", str(server.landing))
    assert db.query("select id, publisher_id from raw.marketplace_events order by id") == [
        ("inv-1", "pub-squat"),
        ("inv-4", "pub-01"),
    ]
    assert db.query("select event_id from raw.agent_events") == [("e-3",)]
    # the quarantined record keeps its position: refused lines are blank in the file
    position = db.scalar("select position from raw.quarantine")
    assert position == answer.json["first_line"] + 3
    assert db.scalar("select sum(records_read) from raw.load_batches") == 4


def _wait_for(check, timeout: float = 30.0) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.05)


def test_a_conflicting_resend_through_the_endpoint_is_kept_by_the_follower(
    start_serve, tmp_path: Path, db: Database
) -> None:
    """A collector re-sends an event it changed meanwhile, under a rotated key: the first
    copy stays in raw, the second is kept in raw.conflicts and the follower's log counts it."""
    keys = tmp_path / "keys"
    keys.write_text(f"old:{KEY_A} agent=support\nnew:{KEY_C} agent=support\n")
    server = start_serve("--keys-file", str(keys))
    follower = start_follow(
        db, str(server.landing), "--poll-interval", "0.05", "--json", "--connections", "1"
    )
    try:
        first = agent_event("r-1", payload={"text": "hello", "role": "user"})
        assert server.post([first], headers={"Authorization": f"Bearer {KEY_A}"}).status == 200
        _wait_for(lambda: db.scalar("select count(*) from raw.agent_events") == 1)
        changed = agent_event("r-1", payload={"text": "hello again", "role": "user"})
        same = agent_event("r-2")
        for body in ([changed, same], [same]):
            reply = server.post(body, headers={"Authorization": f"Bearer {KEY_C}"})
            assert reply.status == 200
        _wait_for(lambda: db.scalar("select count(*) from raw.load_batches") == 3)
    finally:
        follower.send_signal(signal.SIGTERM)
        output, errors = follower.communicate(timeout=30)
    assert follower.returncode == 0, errors
    results = [json.loads(line) for line in output.splitlines()]
    assert [(r["loaded"], r["duplicates"], r["conflicts"]) for r in results] == [
        (1, 0, 0),
        (1, 1, 1),
        (0, 1, 0),
    ]
    assert db.scalar("select payload->>'text' from raw.agent_events where event_id = 'r-1'") == (
        "hello"
    )
    [(sender, record)] = db.query("select sender, record from raw.conflicts")
    assert sender == "support"
    assert record["payload"]["text"] == "hello again"
