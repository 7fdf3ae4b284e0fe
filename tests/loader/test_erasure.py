"""Erasure: `purge --user/--tenant` removes a person's or a tenant's records from raw, the
quarantine, the `--move-loaded-to` archive and the lake, and nobody else's."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from loader.ingest.privacy import TOKEN_KEY_VARIABLE, Privacy
from tests.conftest import REPO, Database
from tests.factories import agent_event, marketplace_event, spans_request, write_ndjson

KEY = "erasure-test-key-0123456789"
ERASED = "sofia.k@example.com"  # a user id that is an address: masking must not hide it
KEPT = "user-kept"


def environment(db: Database, key: bool = True) -> dict[str, str]:
    env = db.env
    if key:
        env[TOKEN_KEY_VARIABLE] = KEY
    return env


def run(db: Database, *args: str, key: bool = True, check: bool = True):
    """The CLI against `db`, with the token key in its environment (or without)."""
    result = subprocess.run(
        [sys.executable, "-m", "loader", *args],
        env=environment(db, key),
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert "Traceback" not in result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def conversation_events(user: str, prefix: str, count: int) -> list[dict]:
    return [
        agent_event(event_id=f"{prefix}-{i}", conversation_id=f"{prefix}-conv", user_id=user)
        for i in range(count)
    ]


def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Three batch files: mixed users, only the erased user (gzipped), only the kept user."""
    mixed = conversation_events(ERASED, "mixed-erased", 3) + conversation_events(KEPT, "mixed", 2)
    mixed.append(agent_event(event_id="bad-erased", user_id=ERASED, agent_name=3))
    mixed.append(agent_event(event_id="bad-kept", user_id=KEPT, agent_name=3))
    landing = tmp_path / "landing"
    landing.mkdir()
    only_erased = conversation_events(ERASED, "alone", 2)
    only_kept = conversation_events(KEPT, "kept", 2)
    return (
        write_ndjson(landing / "a-mixed.ndjson", mixed),
        write_ndjson(landing / "b-erased.ndjson.gz", only_erased, compress=True),
        write_ndjson(landing / "c-kept.ndjson", only_kept),
    )


def archived_text(folder: Path) -> str:
    texts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            texts.append((gzip.decompress(data) if path.suffix == ".gz" else data).decode())
    return "\n".join(texts)


@pytest.fixture
def tokenized(db: Database, tmp_path: Path) -> tuple[Database, Path, Path]:
    """A tokenizing, masking warehouse loaded by `load --follow --move-loaded-to`."""
    run(db, "init", "--tokenize-users", "--redact", "mask")
    landing = files(tmp_path)[0].parent
    archive = tmp_path / "archive"
    follower = subprocess.Popen(
        [
            *(sys.executable, "-m", "loader", "load", "--follow", str(landing)),
            *("--move-loaded-to", str(archive)),
        ],
        env=environment(db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 60
    while list(landing.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    follower.send_signal(signal.SIGTERM)
    _, errors = follower.communicate(timeout=30)
    assert follower.returncode == 0, errors
    assert not list(landing.iterdir())
    return db, archive, landing


def test_the_follow_archive_holds_tokens_never_the_clear_id(tokenized):
    db, archive, _ = tokenized
    text = archived_text(archive)
    assert ERASED not in text and "sofia" not in text
    assert Privacy(key=KEY.encode()).token(ERASED) in text
    assert db.scalar("select count(*) from raw.agent_events") == 9


def test_purge_user_erases_raw_quarantine_and_archive_by_the_clear_id(tokenized):
    db, archive, _ = tokenized
    token = Privacy(key=KEY.encode()).token(ERASED)
    dry = json.loads(
        run(db, "purge", "--user", ERASED, "--archive", str(archive), "--dry-run", "--json").stdout
    )
    assert (dry["agent_events"], dry["quarantine"], dry["archive"]["records"]) == (5, 1, 6)
    assert db.scalar("select count(*) from raw.agent_events where user_id = %s", (token,)) == 5

    result = json.loads(
        run(db, "purge", "--user", ERASED, "--archive", str(archive), "--json").stdout
    )
    assert (result["agent_events"], result["quarantine"]) == (5, 1)
    assert db.scalar("select count(*) from raw.agent_events where user_id = %s", (token,)) == 0
    assert db.scalar("select count(*) from raw.agent_events") == 4  # the kept user's
    assert db.query("select raw_text like '%%bad-kept%%' from raw.quarantine") == [(True,)]
    # the ledger still reconciles: the deleted rows are counted as purged per batch
    assert (
        db.query(
            """
        select b.batch_id from raw.load_batches as b
        where b.loaded <> b.purged_events
              + (select count(*) from raw.agent_events as a where a.batch_id = b.batch_id)
           or b.quarantined <> b.purged_quarantined
              + (select count(*) from raw.quarantine as q where q.batch_id = b.batch_id)
        """
        )
        == []
    )
    # the erasure is recorded for dbt, without the id
    assert db.query("select erased, older_than, cutoff::text, agent_events from raw.purges") == [
        ("user", None, "infinity", 5)
    ]
    # the archive: the mixed file rewritten, the user's own file removed, the other untouched
    assert result["archive"]["records"] == 6
    assert [Path(p).name for p in result["archive"]["files_rewritten"]] == ["a-mixed.ndjson"]
    assert [Path(p).name for p in result["archive"]["files_removed"]] == ["b-erased.ndjson.gz"]
    assert sorted(p.name for p in archive.iterdir()) == ["a-mixed.ndjson", "c-kept.ndjson"]
    text = archived_text(archive)
    assert token not in text and text.count(Privacy(key=KEY.encode()).token(KEPT)) == 5


def test_purge_user_on_a_tokenizing_warehouse_needs_the_key(tokenized):
    db, _, _ = tokenized
    refused = run(db, "purge", "--user", ERASED, key=False, check=False)
    assert refused.returncode == 2
    assert TOKEN_KEY_VARIABLE in refused.stderr
    assert db.scalar("select count(*) from raw.agent_events") == 9


def test_purge_tenant_erases_its_marketplace_events_and_quarantine_rows(db, tmp_path):
    # sent composed and decomposed (the contract stores NFC); the purge is given NFC
    decomposed = unicodedata.normalize("NFD", "tenant-ümlaut")
    events = [marketplace_event(id=f"t1-{i}", tenant_id="tenant-ümlaut") for i in range(2)]
    events.append(marketplace_event(id="t1-2", tenant_id=decomposed))
    events += [marketplace_event(id=f"t2-{i}", tenant_id="tenant-2") for i in range(2)]
    events.append(marketplace_event(id="t1-bad", tenant_id=decomposed, agent_id=5))
    events.append(marketplace_event(id="t2-bad", tenant_id="tenant-2", agent_id=5))
    path = write_ndjson(tmp_path / "m.ndjson", events)  # json.dumps: "tenant-\u00fcmlaut"
    run(db, "load", str(path))
    result = json.loads(run(db, "purge", "--tenant", "tenant-ümlaut", "--json").stdout)
    assert (result["marketplace_events"], result["quarantine"]) == (3, 1)
    assert db.query("select id from raw.marketplace_events order by id") == [("t2-0",), ("t2-1",)]
    assert db.scalar("select count(*) from raw.quarantine") == 1
    assert db.query("select erased from raw.purges") == [("tenant",)]


def test_purge_needs_exactly_one_of_its_modes(db):
    for args in ((), ("--user", "u", "--tenant", "t"), ("--older-than", "9d", "--user", "u")):
        refused = run(db, "purge", *args, check=False)
        assert refused.returncode == 2, args
        assert "one of --older-than, --user or --tenant" in refused.stderr
    refused = run(db, "purge", "--older-than", "9d", "--archive", str(REPO), check=False)
    assert refused.returncode == 2
    assert "--archive and --lake go with --user or --tenant" in refused.stderr


def test_purge_lake_rewrites_the_parquet_files_without_the_user(db, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    landing_files = files(tmp_path)
    lake = tmp_path / "lake"
    run(db, "load", "--lake", str(lake), "--tokenize-users", *map(str, landing_files))
    token = Privacy(key=KEY.encode()).token(ERASED)

    def users() -> list[str]:
        return [
            user
            for part in sorted((lake / "agent_events").rglob("*.parquet"))
            for user in pq.read_table(part, columns=["user_id"]).column("user_id").to_pylist()
        ]

    def quarantined() -> str:
        return " ".join(
            text
            for part in sorted((lake / "quarantine").rglob("*.parquet"))
            for text in pq.read_table(part, columns=["raw_text"]).column("raw_text").to_pylist()
        )

    assert users().count(token) == 5 and token in quarantined()
    result = json.loads(run(db, "purge", "--user", ERASED, "--lake", str(lake), "--json").stdout)
    assert result["lake_rows"] == 6
    assert users() == [Privacy(key=KEY.encode()).token(KEPT)] * 4
    assert token not in quarantined() and "bad-kept" in quarantined()


def test_purge_lake_removes_the_spans_that_name_the_user_or_the_tenant(db, tmp_path):
    """A user's spans go by `user.id` / `enduser.id` (tokenized in the lake), on the span or
    its resource; a tenant's by `tenant.id`: as in raw.spans."""
    pq = pytest.importorskip("pyarrow.parquet")

    def span(number: int, attributes: dict) -> dict:
        start = 1_780_000_000_000_000_000 + number
        return {
            "traceId": f"{number:032x}",
            "spanId": f"{number:016x}",
            "name": "chat",
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 1000),
            "attributes": [
                {"key": key, "value": {"stringValue": value}} for key, value in attributes.items()
            ],
        }

    lines = [
        spans_request({"tenant.id": "t-gone"}, span(1, {"user.id": KEPT}), span(2, {})),
        spans_request({"tenant.id": "t-stays", "user.id": ERASED}, span(3, {})),
        spans_request({}, span(4, {"enduser.id": ERASED}), span(5, {"user.id": KEPT})),
    ]
    lake = tmp_path / "lake"
    path = write_ndjson(tmp_path / "spans.jsonl", lines)
    run(db, "load", "--lake", str(lake), "--tokenize-users", str(path))

    def span_ids() -> list[int]:
        return sorted(
            int(span_id, 16)
            for part in sorted((lake / "spans").rglob("*.parquet"))
            for span_id in pq.read_table(part, columns=["span_id"]).column("span_id").to_pylist()
        )

    assert span_ids() == [1, 2, 3, 4, 5]
    result = json.loads(run(db, "purge", "--user", ERASED, "--lake", str(lake), "--json").stdout)
    assert result["lake_rows"] == 2
    assert span_ids() == [1, 2, 5]
    run(db, "purge", "--tenant", "t-gone", "--lake", str(lake))
    assert span_ids() == [5]


def test_purge_lake_without_pyarrow_says_which_extra_to_install(tmp_path, monkeypatch):
    from loader.operations.retention import LakeUnavailable, erase_lake

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(LakeUnavailable, match=r"agent-analytics\[spark\]"):
        erase_lake(tmp_path, "user", ERASED)
