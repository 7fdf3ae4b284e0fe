"""Collectors that write files in place, against `load --follow` (docs/live.md): a file
loads once it is still, is archived only while it is what was loaded and nobody has it open
for writing, and a file that changed after its load is reported and loaded again, so every
event reaches raw once and nothing is archived unloaded."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from loader.live.follow import SERVE_NAME
from tests.conftest import Database
from tests.serve.conftest import agent_event, start_follow


def _wait_for(check, timeout: float = 30.0) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)


def _stop(process: subprocess.Popen) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def _lines(prefix: str, count: int) -> str:
    return "".join(json.dumps(agent_event(f"{prefix}-{i}")) + "\n" for i in range(count))


def _events(db: Database) -> tuple[int, int]:
    return db.query("select count(*), count(distinct event_id) from raw.agent_events")[0]


def test_a_file_appended_to_after_a_pause_is_reported_loaded_whole_and_archived_whole(
    tmp_path: Path, db: Database
) -> None:
    # The collector writes 30 events, pauses longer than --settle with the file still open
    # (the follower loads those 30), then appends 30 more and closes the file.
    landing, archive = tmp_path / "landing", tmp_path / "archive"
    landing.mkdir()
    follower = start_follow(
        db, str(landing), "--move-loaded-to", str(archive), "--settle", "0.3", "--json"
    )
    try:
        with (landing / "app.ndjson").open("w") as handle:
            handle.write(_lines("first", 30))
            handle.flush()
            _wait_for(lambda: _events(db)[0] == 30)
            time.sleep(1.0)  # many polls: held open, so it may still grow and is not moved
            assert (landing / "app.ndjson").exists() and not archive.exists()
            handle.write(_lines("second", 30))
        _wait_for(lambda: _events(db)[0] == 60 and not (landing / "app.ndjson").exists())
    finally:
        code, output, errors = _stop(follower)
    assert code == 0, errors
    assert _events(db) == (60, 60)
    assert (archive / "app.ndjson").read_text().count("\n") == 60  # archived whole
    ledger = db.query(
        "select status, loaded, duplicates, error from raw.load_batches order by batch_id"
    )
    assert [row[:3] for row in ledger] == [
        ("loaded", 30, 0),
        ("failed", 0, 0),
        ("loaded", 30, 30),
    ]
    assert ledger[1][3].startswith("changed after it was loaded as batch 1 (")
    assert "left in place, not archived" in ledger[1][3]
    statuses = [json.loads(line)["status"] for line in output.splitlines()]
    assert statuses == ["loaded", "failed", "loaded"]


def test_a_file_written_in_place_steadily_loads_once_when_it_is_still(
    tmp_path: Path, db: Database
) -> None:
    landing, archive = tmp_path / "landing", tmp_path / "archive"
    landing.mkdir()
    follower = start_follow(
        db, str(landing), "--move-loaded-to", str(archive), "--settle", "0.5", "--json"
    )
    try:
        with (landing / "steady.ndjson").open("w") as handle:
            for i in range(100):  # a line every 10 ms for about a second
                handle.write(_lines(f"steady-{i}", 1))
                handle.flush()
                time.sleep(0.01)
        _wait_for(lambda: (archive / "steady.ndjson").exists())
    finally:
        code, _, errors = _stop(follower)
    assert code == 0, errors
    assert _events(db) == (100, 100)
    assert db.query("select status, loaded from raw.load_batches") == [("loaded", 100)]


def test_a_file_truncated_and_rewritten_after_its_load_is_reported_and_its_new_events_load(
    tmp_path: Path, db: Database
) -> None:
    # Without an archive the file stays where it is; the collector later truncates it and
    # writes other events into the same file (same inode).
    landing = tmp_path / "landing"
    landing.mkdir()
    path = landing / "reused.ndjson"
    path.write_text(_lines("old", 20))
    follower = start_follow(db, str(landing), "--settle", "0.3", "--json")
    try:
        _wait_for(lambda: _events(db)[0] == 20)
        time.sleep(0.3)
        with path.open("r+") as handle:
            handle.truncate(0)
            handle.write(_lines("new", 25))
        _wait_for(lambda: _events(db)[0] == 45)
    finally:
        code, output, errors = _stop(follower)
    assert code == 0, errors
    assert _events(db) == (45, 45)
    ledger = db.query("select status, loaded, error from raw.load_batches order by batch_id")
    assert [row[:2] for row in ledger] == [("loaded", 20), ("failed", 0), ("loaded", 25)]
    assert ledger[1][2].startswith("changed after it was loaded as batch 1 (")
    assert "not archived" not in ledger[1][2]  # nothing is archived without --move-loaded-to
    assert [json.loads(line)["status"] for line in output.splitlines()] == [
        "loaded",
        "failed",
        "loaded",
    ]


def test_files_serve_writes_load_without_waiting_to_settle(
    start_serve, tmp_path: Path, db: Database
) -> None:
    server = start_serve()
    archive = tmp_path / "done"
    follower = start_follow(
        db, str(server.landing), "--move-loaded-to", str(archive), "--settle", "60"
    )
    try:
        reply = server.post({"events": [agent_event(f"served-{i}") for i in range(10)]})
        assert reply.status == 200
        assert SERVE_NAME.fullmatch(reply.json["file"])
        _wait_for(lambda: _events(db)[0] == 10, timeout=20)  # far less than --settle
        _wait_for(lambda: (archive / reply.json["file"]).exists(), timeout=20)
    finally:
        code, _, errors = _stop(follower)
    assert code == 0, errors
