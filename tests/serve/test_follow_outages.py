"""`load --follow` across PostgreSQL outages: a restarted server and terminated backends
(SQLSTATE 57P01) are each one line in the log, no traceback; the follower reconnects with
backoff, takes the load lock again, and every event of every file is in raw exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg2.extensions
import pytest

from tests.conftest import Database, run_loader
from tests.serve.conftest import agent_event, start_follow

FILES, EVENTS_PER_FILE = 24, 2_000


def _wait_for(check, timeout: float = 60.0) -> None:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.05)


def _eventually(check, timeout: float) -> bool:
    """Whether `check()` became true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Collector(threading.Thread):
    """Writes FILES batch files the way serve does (hidden, then renamed), one every
    `every` seconds, so files keep arriving across the outages."""

    def __init__(self, landing: Path, every: float) -> None:
        super().__init__(daemon=True)
        self.landing = landing
        self.every = every
        self.written = 0

    def run(self) -> None:
        for n in range(FILES):
            events = [agent_event(f"o-{n}-{i}") for i in range(EVENTS_PER_FILE)]
            part = self.landing / f".b{n:03d}.part"
            part.write_text("".join(json.dumps(event) + "\n" for event in events))
            part.rename(self.landing / f"b{n:03d}.ndjson")
            self.written += 1
            time.sleep(self.every)


def _loaded_exactly_once(db: Database) -> None:
    total = FILES * EVENTS_PER_FILE
    assert db.query("select count(*), count(distinct event_id) from raw.agent_events") == [
        (total, total)
    ]
    assert db.query(
        "select count(*), count(distinct path) from raw.load_batches where status = 'loaded'"
    ) == [(FILES, FILES)]


def _backends(db: Database, admin: Database) -> list[int]:
    return [
        pid
        for (pid,) in admin.query(
            "select pid from pg_stat_activity"
            " where datname = %s and application_name = 'agent-loader'",
            (db.name,),
        )
    ]


def _stop(process: subprocess.Popen) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def _one_line_per_outage(errors: str, outages: int) -> None:
    assert "Traceback" not in errors
    assert "psycopg2" not in errors and "SystemError" not in errors  # no fragments
    lines = errors.splitlines()
    assert sum(line.startswith("lost the connection to PostgreSQL") for line in lines) == outages
    assert sum(line.startswith("reconnected to PostgreSQL after") for line in lines) == outages


def test_terminated_backends_are_reconnected_and_every_event_lands_once(
    tmp_path: Path, db: Database
) -> None:
    admin = Database({**db.params, "dbname": "postgres"})
    landing, archive = tmp_path / "landing", tmp_path / "archive"
    landing.mkdir()
    follower = start_follow(
        db, str(landing), "--move-loaded-to", str(archive), "--connections", "2", "--json"
    )
    collector = Collector(landing, every=0.15)
    outages = 3
    try:
        _wait_for(lambda: len(_backends(db, admin)) == 2)
        collector.start()
        for outage in range(outages):
            _wait_for(lambda o=outage: collector.written >= 4 * (o + 1))
            killed = _backends(db, admin)
            assert len(killed) == 2
            admin.query("select pg_terminate_backend(pid) from unnest(%s::int[]) pid", (killed,))
            # Reconnected: two new backends, one of them holding the load lock again.
            _wait_for(
                lambda k=killed: len(pids := _backends(db, admin)) == 2 and not set(pids) & set(k)
            )
        collector.join()
        _wait_for(lambda: len(list(archive.glob("*.ndjson"))) == FILES, timeout=120)
        busy = run_loader(db, "load", "--no-wait", str(archive), check=False)
        assert busy.returncode == 4  # the lock is held again after the last outage
    finally:
        code, _, errors = _stop(follower)
    assert code == 0, errors
    _loaded_exactly_once(db)
    _one_line_per_outage(errors, outages)


@pytest.fixture
def private_server() -> Iterator[tuple[Database, list[str]]]:
    """A throwaway PostgreSQL of our own (pgserver), to stop and start for real; yields the
    database and the pg_ctl command line that controls it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import POSTGRES_BIN_PATH

    folder = Path(tempfile.mkdtemp(prefix="aa-follow-pg-"))
    server = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    params = dict(psycopg2.extensions.parse_dsn(server.get_uri()))
    pgdata = folder / "pgdata"
    pg_ctl = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "log"), "-w"]
    if server.system_user is not None:  # running as root: pgserver runs postgres as its user
        pg_ctl = ["runuser", "-u", server.system_user, "--", *pg_ctl]
    try:
        yield Database({key: value for key, value in params.items() if value}), pg_ctl
    finally:
        # pgserver stops the server it started; the test restarted it.
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], stdout=subprocess.DEVNULL)
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_restarted_server_is_one_line_and_every_event_lands_once(
    tmp_path: Path, private_server: tuple[Database, list[str]]
) -> None:
    db, pg_ctl = private_server
    run_loader(db, "init")
    landing, archive = tmp_path / "landing", tmp_path / "archive"
    landing.mkdir()
    follower = start_follow(
        db, str(landing), "--move-loaded-to", str(archive), "--connections", "2", "--json"
    )
    collector = Collector(landing, every=0.1)
    try:
        _wait_for(lambda: len(_backends(db, db)) == 2)  # following (the start is not tested)
        collector.start()
        _wait_for(lambda: db.scalar("select count(*) from raw.load_batches") >= 3)
        # Down for 3 s (several attempts to reconnect), then up again.
        # (pg_ctl's output to /dev/null: the server it starts would hold a pipe open.)
        quiet = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], **quiet)
        time.sleep(3)
        subprocess.run([*pg_ctl, "restart"], **quiet, timeout=60)
        collector.join()
        archived = _eventually(lambda: len(list(archive.glob("*.ndjson"))) == FILES, 120)
    finally:
        code, _, errors = _stop(follower)
    assert archived and code == 0, errors
    _loaded_exactly_once(db)
    _one_line_per_outage(errors, 1)
    assert os.path.isdir(landing) and not list(landing.glob("*.ndjson"))
