"""PII protection in the loader: keyed deterministic tokens, redaction, quarantine included."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import time

import pytest

from loader.ingest.load import known_files, load_file
from loader.ingest.privacy import TOKEN_KEY_VARIABLE, Privacy, PrivacyConfigError, mask_text
from loader.live.follow import move_loaded
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


# --- e-mail addresses in every spelling a collector writes --------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "frank%40mail.example.org",  # URL-encoded (a query string, a logged URL)
        "frank%2540mail.example.org",  # URL-encoded twice
        "FRANK%40MAIL.EXAMPLE.ORG",
        "jürgen.müller@straße.de",  # internationalised local part and domain
        "олег@пример.рф",  # Cyrillic, Cyrillic top-level domain
        "用户@例子.广告",
        "ivan@xn--80ak6aa92e.xn--p1ai",  # the same kind of domain in punycode
        "a.b-c_d+tag@sub-1.example.co.uk",
    ],
)
def test_masking_covers_url_encoded_and_internationalised_addresses(address):
    assert mask_text(f"from {address}, thanks") == "from [EMAIL], thanks"
    assert mask_text(f"/search?q=x&from={address}&page=2") == "/search?q=x&from=[EMAIL]&page=2"


@pytest.mark.parametrize(
    "text",
    [
        "icon@2x.",  # a retina image suffix: no top-level domain
        "release v1.2@3.4",  # digits are not a top-level domain
        "/search?q=%40home.com",  # an encoded @ with nothing before it
        "report%2520final.pdf",  # a twice-encoded space, not an @
        "ssh deploy@localhost",  # no dot in the domain
        "ping @dörte in the channel",  # a mention
        "50%40 off",  # digits after a percent sign
        "Straße 12, 10115 Berlin",
        "git@ alone",
    ],
)
def test_masking_leaves_what_is_not_an_address(text):
    assert mask_text(text) == text


def test_masking_a_long_run_of_word_characters_is_linear():
    # Before, every start position rescanned the run: 100,000 letters took about 40 s.
    for text in ("x" * 100_000 + "@", "x" * 100_000 + "1", "a." * 50_000 + "%40"):
        started = time.perf_counter()
        assert mask_text(text) == text
        assert time.perf_counter() - started < 2


# --- the ledger and the archive are stored like raw ---------------------------------------


def test_the_ledger_stores_a_file_name_masked(db, tmp_path):
    privacy = Privacy(redact="mask")
    folder = tmp_path / "from-ana@example.org"
    folder.mkdir()
    path = write_ndjson(folder / "export-maria.rossi@example.net.ndjson", [agent_event()])
    assert load(db, path, privacy).status == "loaded"
    (stored,) = db.query("select path from raw.load_batches")[0]
    assert stored == mask_text(str(path)) and "maria" not in stored and "ana@" not in stored
    assert load(db, path, privacy).status == "skipped"  # found again by its stored path
    # and by a cron run's one query for the folder (its prefix masked alike)
    conn = db.connect()
    known = known_files(conn, [folder], privacy)
    conn.close()
    assert known.batch(stored, os.lstat(path)) is not None
    broken = tmp_path / "from-luis%40example.org.ndjson"
    broken.symlink_to(tmp_path / "missing")
    assert load(db, broken, privacy).status == "failed"
    failed = db.scalar("select path from raw.load_batches where status = 'failed'")
    assert failed == mask_text(str(broken)) and "luis" not in failed


def test_the_archive_holds_each_record_as_raw_holds_it_never_the_file(db, tmp_path):
    privacy = Privacy(key=KEY.encode(), redact="mask")
    landing, archive = tmp_path / "landing", tmp_path / "archive"
    valid = agent_event(
        event_id="e-1",
        user_id="lena@example.org",
        agent_name="Rene\u0301",  # decomposed: raw stores the NFC form, so must the archive
        payload={"text": PLANTED, "role": "user"},
    )
    refused = agent_event(event_id="e-2", user_id="lena@example.org", agent_name=7)
    not_json = '{"user_id": "lena@example.org", "note": "call +1 (415) 555-0134", '
    path = landing / "day" / "b.ndjson.gz"
    path.parent.mkdir(parents=True)
    text = json.dumps(valid) + "\n" + json.dumps(refused) + "\n" + not_json + "\n"
    path.write_bytes(gzip.compress(text.encode()))
    assert load(db, path, privacy).quarantined == 2

    moved = move_loaded(path, [landing], archive, privacy=privacy)
    assert moved == archive / "day" / "b.ndjson.gz" and not path.exists()
    archived = gzip.decompress(moved.read_bytes()).decode()
    for secret in ("lena", "555-0134", "4111", "5500", "jane"):
        assert secret not in archived
    first, *quarantined = archived.splitlines()
    stored = db.query("select event_id, user_id, agent_name, payload from raw.agent_events")[0]
    event = json.loads(first)
    assert stored[2] == "Ren\u00e9"
    assert (event["event_id"], event["user_id"], event["agent_name"], event["payload"]) == stored
    assert quarantined == [
        text for (text,) in db.query("select raw_text from raw.quarantine order by position")
    ]


def test_without_protection_the_archive_gets_the_file_as_it_is(tmp_path):
    (tmp_path / "in").mkdir()
    path = write_ndjson(tmp_path / "in" / "b.ndjson", [agent_event(user_id="lena@example.org")])
    original = path.read_bytes()
    moved = move_loaded(path, [tmp_path / "in"], tmp_path / "archive", privacy=Privacy())
    assert moved.read_bytes() == original


def test_the_archive_writes_a_lone_surrogate_escaped_not_a_crash(tmp_path):
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "b.ndjson"
    valid = json.dumps(agent_event(payload={"text": "a\ud800 to ida@example.net", "role": "x"}))
    path.write_text(valid + "\n" + '{"broken": "\\udc80 ida@example.net"\n')
    moved = move_loaded(path, [tmp_path / "in"], tmp_path / "out", privacy=Privacy(redact="mask"))
    first, second = moved.read_text().splitlines()
    assert json.loads(first)["payload"]["text"] == "a\ud800 to [EMAIL]"
    assert second == '{"broken": "\\udc80 [EMAIL]"'
