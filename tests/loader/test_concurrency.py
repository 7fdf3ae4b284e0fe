"""Two loaders at once, and a loader killed mid-COPY: every event still lands exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO
from tests.factories import agent_event, marketplace_event, write_ndjson


def start_load(db, *paths):
    return subprocess.Popen(
        [sys.executable, "-m", "loader", "load", *map(str, paths), "--json"],
        env=db.env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_loads_started_at_once_load_each_event_once(db, tmp_path):
    events = [agent_event() for _ in range(3000)] + [marketplace_event() for _ in range(3000)]
    for index in range(6):
        # Overlapping files: each shares half its events with the next.
        write_ndjson(tmp_path / f"{index}.ndjson", events[index * 750 : index * 750 + 1500])
    first, second = start_load(db, tmp_path), start_load(db, tmp_path)
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    results = [file for stdout, _ in outputs for file in json.loads(stdout)]
    assert sorted(file["status"] for file in results) == ["loaded"] * 6 + ["skipped"] * 6
    distinct = len({event.get("event_id") or event["id"] for event in events[: 5 * 750 + 1500]})
    assert (
        db.scalar("select count(*) from raw.agent_events")
        + db.scalar("select count(*) from raw.marketplace_events")
        == distinct
    )
    assert db.scalar("select sum(loaded) from raw.load_batches") == distinct
    assert db.scalar("select count(*) from raw.load_batches") == 6


def _copy_in_progress(db):
    return db.scalar(
        "select count(*) from pg_stat_progress_copy where datname = %s and tuples_processed > 0",
        (db.name,),
    )


def test_a_load_killed_mid_copy_then_rerun_loads_every_event_exactly_once(db, tmp_path):
    events = [agent_event(payload={"text": "x" * 200}) for _ in range(150_000)]
    big = write_ndjson(tmp_path / "big.ndjson", events)
    small = write_ndjson(tmp_path / "small.ndjson", [*events[:10], agent_event()])
    process = start_load(db, big, small)
    deadline = time.monotonic() + 60
    while not _copy_in_progress(db):
        assert process.poll() is None, "the load finished before it could be killed"
        assert time.monotonic() < deadline, "no COPY seen within 60 s"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert db.scalar("select count(*) from raw.load_batches") == 0
    assert db.scalar("select count(*) from raw.agent_events") == 0

    rerun = start_load(db, big, small)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert [(f["status"], f["loaded"], f["duplicates"]) for f in json.loads(stdout)] == [
        ("loaded", 150_000, 0),
        ("loaded", 1, 10),
    ]
    assert db.scalar("select count(*) from raw.agent_events") == 150_001
