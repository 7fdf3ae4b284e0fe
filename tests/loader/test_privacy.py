"""PII protection in the loader: keyed deterministic tokens, redaction, quarantine included."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from loader.ingest.load import load_file
from loader.ingest.privacy import TOKEN_KEY_VARIABLE, Privacy, PrivacyConfigError, mask_text
from tests.factories import agent_event, marketplace_event, write_ndjson

KEY = "0123456789abcdef-test-key"
PLANTED = (
    "Mail me at jane.doe+orders@example.co.uk or call +1 (415) 555-0134 / 020 7946 0958;"
    " card 4111 1111 1111 1111 and 5500-0000-0000-0004 expire soon. Order 12345 is late."
)


def load(db, path, privacy):
    conn = db.connect()
    try:
        return load_file(conn, path, privacy=privacy)
    finally:
        conn.close()


def test_masking_removes_planted_emails_phones_and_cards_and_keeps_the_rest():
    masked = mask_text(PLANTED)
    assert masked == (
        "Mail me at [EMAIL] or call [PHONE] / [PHONE]; card [CARD] and [CARD] expire soon."
        " Order 12345 is late."
    )


def test_tokens_are_deterministic_keyed_hmac_sha256():
    privacy = Privacy(key=KEY.encode())
    expected = "tok_" + hmac.new(KEY.encode(), b"user-42", hashlib.sha256).hexdigest()[:32]
    assert privacy.token("user-42") == privacy.token("user-42") == expected
    assert Privacy(key=b"another-key-of-16-bytes").token("user-42") != expected
    assert expected != "tok_" + hashlib.sha256(b"user-42").hexdigest()[:32]  # never unkeyed


def test_tokenizing_without_a_key_is_refused(monkeypatch):
    monkeypatch.delenv(TOKEN_KEY_VARIABLE, raising=False)
    with pytest.raises(PrivacyConfigError, match="AGENT_ANALYTICS_TOKEN_KEY"):
        Privacy.from_options(tokenize_users=True, redact="none")
    monkeypatch.setenv(TOKEN_KEY_VARIABLE, "short")
    with pytest.raises(PrivacyConfigError, match="at least 16 bytes"):
        Privacy.from_options(tokenize_users=True, redact="none")


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_loaded_rows_hold_tokens_and_no_planted_pii(db, tmp_path, mode):
    privacy = Privacy(key=KEY.encode(), redact=mode)
    events = [
        agent_event(user_id="jane@example.com", payload={"text": PLANTED, "role": "user"}),
        agent_event(
            user_id="jane@example.com",
            event_type="error",
            payload={"error_type": "timeout", "message": f"failed for {PLANTED}"},
        ),
        marketplace_event(event_type="user_feedback", properties={"rating": 2, "comment": PLANTED}),
    ]
    result = load(db, write_ndjson(tmp_path / "b.ndjson", events), privacy)
    assert result.loaded == 3
    users = db.query("select distinct user_id from raw.agent_events")
    assert users == [(privacy.token("jane@example.com"),)]
    stored = json.dumps(
        db.query(
            "select payload from raw.agent_events"
            " union all select properties from raw.marketplace_events"
        )
    )
    for secret in ("jane", "555-0134", "7946", "4111", "5500"):
        assert secret not in stored
    text = db.scalar("select payload->>'text' from raw.agent_events where event_type = 'message'")
    assert text == (None if mode == "drop" else mask_text(PLANTED))
    assert db.scalar("select privacy from raw.load_batches") == f"tokenize_users,redact={mode}"


def test_quarantined_records_keep_no_raw_pii_either(db, tmp_path):
    privacy = Privacy(key=KEY.encode(), redact="mask")
    path = tmp_path / "bad.ndjson"
    bad_shape = json.dumps(
        agent_event(user_id="jane@example.com", event_type="oops", payload={"text": PLANTED})
    )
    broken = '{"user_id": "jane@example.com", "note": "call +1 (415) 555-0134", '
    path.write_text(bad_shape + "\n" + broken + "\n")
    assert load(db, path, privacy).quarantined == 2
    stored = " ".join(text for (text,) in db.query("select raw_text from raw.quarantine"))
    assert "jane" not in stored and "555-0134" not in stored and "4111" not in stored
    assert privacy.token("jane@example.com") in stored


def test_protection_is_off_by_default(db, tmp_path):
    load(db, write_ndjson(tmp_path / "b.ndjson", [agent_event(user_id="u-1")]), Privacy())
    assert db.scalar("select user_id from raw.agent_events") == "u-1"
    assert db.scalar("select privacy from raw.load_batches") is None
