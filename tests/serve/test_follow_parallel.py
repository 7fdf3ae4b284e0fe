"""The follow loop with several loaders (`load --follow --connections N`), without a database:
files load at once, each is reported and moved once, stopping waits for every file being
loaded, and a transaction PostgreSQL rolled back (a deadlock) is loaded again."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg2.errors
import pytest

from loader.errors import DatabaseError
from loader.ingest.load import FileResult
from loader.live.follow import Loader, Session, Stop, follow, retry_rolled_back


def _session(*loads) -> Session:
    return Session([Loader(load) for load in loads])


def _loaded(path: Path) -> FileResult:
    """What a load of the whole file reports (the follower checks the size loaded)."""
    return FileResult(str(path), "loaded", bytes=path.stat().st_size, records_read=1, loaded=1)


def _files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = [folder / f"b{n}.ndjson" for n in range(count)]
    for path in paths:
        path.write_text("{}\n")
    return paths


class Recorder:
    """Loaders that record which files each loaded, and stop the loop after `until` files."""

    def __init__(self, stop: Stop, until: int) -> None:
        self.stop = stop
        self.until = until
        self.reported: list[str] = []
        self.lock = threading.Lock()

    def report(self, result: FileResult) -> None:
        with self.lock:
            self.reported.append(Path(result.path).name)
            if len(self.reported) == self.until:
                self.stop.event.set()


def test_two_loaders_load_two_files_at_once(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _files(landing, 4)
    stop = Stop()
    recorder = Recorder(stop, until=4)
    # Each load waits until the other loader is inside a load too: with files handed out one
    # at a time, the barrier would break (BrokenBarrierError) after its timeout.
    together = threading.Barrier(2, timeout=10)
    loaded_by: dict[str, list[str]] = {"first": [], "second": []}

    def loader(name: str):
        def load(path: Path) -> FileResult:
            together.wait()
            loaded_by[name].append(path.name)
            return _loaded(path)

        return load

    failed = follow(
        (landing,),
        _session(loader("first"), loader("second")),
        recorder.report,
        stop,
        poll_interval=0.01,
        move_to=tmp_path / "done",
    )
    assert failed == []
    names = ["b0.ndjson", "b1.ndjson", "b2.ndjson", "b3.ndjson"]
    assert sorted(recorder.reported) == names
    assert len(loaded_by["first"]) == 2 and len(loaded_by["second"]) == 2
    # Handed out in sorted order, two at a time: b0 and b1 together, then b2 and b3.
    assert {loaded_by["first"][0], loaded_by["second"][0]} == {"b0.ndjson", "b1.ndjson"}
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == names
    assert list(landing.iterdir()) == []


def test_stopping_waits_for_every_file_being_loaded(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _files(landing, 2)
    stop = Stop()
    both_started = threading.Barrier(3, timeout=10)
    release = threading.Event()
    finished: list[str] = []
    reported: list[str] = []

    def load(path: Path) -> FileResult:
        both_started.wait()
        release.wait(10)
        finished.append(path.name)
        return _loaded(path)

    def stop_while_loading() -> None:
        both_started.wait()
        stop.event.set()  # like SIGTERM while two files are loading
        release.set()

    threading.Thread(target=stop_while_loading).start()
    follow(
        (landing,),
        _session(load, load),
        lambda result: reported.append(Path(result.path).name),
        stop,
        poll_interval=0.01,
    )
    assert sorted(finished) == ["b0.ndjson", "b1.ndjson"]
    assert sorted(reported) == ["b0.ndjson", "b1.ndjson"]


def test_a_lost_connection_ends_the_run_after_the_other_file_finished(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _files(landing, 2)
    reported: list[str] = []
    other_started = threading.Event()

    def lost(path: Path) -> FileResult:
        other_started.wait(10)
        raise DatabaseError("lost the connection to PostgreSQL while loading")

    def fine(path: Path) -> FileResult:
        other_started.set()
        return _loaded(path)

    with pytest.raises(DatabaseError, match="lost the connection"):
        follow(
            (landing,),
            _session(lost, fine),
            lambda result: reported.append(Path(result.path).name),
            Stop(),
            poll_interval=0.01,
        )
    assert reported == ["b1.ndjson"]  # the second loader's file was reported, not lost


class FakeConnection:
    closed = 0

    def __init__(self) -> None:
        self.rollbacks = 0

    def rollback(self) -> None:
        self.rollbacks += 1


def _lost(cause: Exception) -> DatabaseError:
    """A DatabaseError raised while handling `cause`, as `load_file` raises it."""
    try:
        raise cause
    except Exception:
        try:
            raise DatabaseError("lost the connection to PostgreSQL while loading x") from None
        except DatabaseError as error:
            return error


def test_a_deadlocked_file_is_loaded_again() -> None:
    connection = FakeConnection()
    calls: list[str] = []

    def load_one(path: Path) -> FileResult:
        calls.append(path.name)
        if len(calls) == 1:
            raise _lost(psycopg2.errors.DeadlockDetected("deadlock detected"))
        return FileResult(str(path), "loaded")

    result = retry_rolled_back(connection, load_one)(Path("b0.ndjson"))
    assert result.status == "loaded"
    assert calls == ["b0.ndjson", "b0.ndjson"]
    assert connection.rollbacks == 1


def test_a_lost_connection_is_not_retried() -> None:
    connection = FakeConnection()
    calls: list[str] = []

    def load_one(path: Path) -> FileResult:
        calls.append(path.name)
        raise _lost(psycopg2.OperationalError("server closed the connection unexpectedly"))

    with pytest.raises(DatabaseError):
        retry_rolled_back(connection, load_one)(Path("b0.ndjson"))
    assert calls == ["b0.ndjson"]
    assert connection.rollbacks == 0


def test_a_file_that_keeps_deadlocking_fails_after_three_attempts() -> None:
    connection = FakeConnection()
    calls: list[str] = []

    def load_one(path: Path) -> FileResult:
        calls.append(path.name)
        raise _lost(psycopg2.errors.DeadlockDetected("deadlock detected"))

    with pytest.raises(DatabaseError):
        retry_rolled_back(connection, load_one)(Path("b0.ndjson"))
    assert len(calls) == 3


def test_an_archive_inside_the_followed_folder_is_never_loaded(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _files(landing, 2)
    stop = Stop()
    loaded: list[str] = []

    def load(path: Path) -> FileResult:
        loaded.append(str(path.relative_to(landing)))
        return _loaded(path)

    def report(result: FileResult) -> None:
        if len(loaded) == 2:
            threading.Timer(0.2, stop.event.set).start()  # a few more looks, then stop

    follow(
        (landing,), _session(load, load), report, stop, poll_interval=0.01, move_to=landing / "done"
    )
    assert sorted(loaded) == ["b0.ndjson", "b1.ndjson"]
    assert sorted(p.name for p in (landing / "done").iterdir()) == ["b0.ndjson", "b1.ndjson"]


class Recording(Stop):
    """A Stop that records how long the loop waited each time, without waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.is_set()


def test_a_lost_connection_is_said_once_and_the_file_loads_on_the_new_session(
    tmp_path: Path,
) -> None:
    landing = tmp_path / "landing"
    _files(landing, 2)
    stop = Stop()
    recorder = Recorder(stop, until=2)
    said: list[str] = []
    first_calls: list[str] = []
    second_calls: list[str] = []

    def lost(path: Path) -> FileResult:
        first_calls.append(path.name)
        raise _lost(
            psycopg2.OperationalError("terminating connection due to administrator command")
        )

    def fine(path: Path) -> FileResult:
        second_calls.append(path.name)
        return _loaded(path)

    closed: list[str] = []
    failed = follow(
        (landing,),
        Session([Loader(lost)], close=lambda: closed.append("first")),
        recorder.report,
        stop,
        poll_interval=0.01,
        settle=0,
        reconnect=lambda: Session([Loader(fine)]),
        say=said.append,
    )
    assert failed == []
    assert first_calls == ["b0.ndjson"]  # rolled back there, loaded again on the new session
    assert second_calls == ["b0.ndjson", "b1.ndjson"]
    assert sorted(recorder.reported) == ["b0.ndjson", "b1.ndjson"]
    assert closed == ["first"]
    assert len(said) == 2
    assert said[0].startswith("lost the connection to PostgreSQL (terminating connection")
    assert said[1].startswith("reconnected to PostgreSQL after")


def test_reconnecting_backs_off_exponentially_up_to_a_cap_and_says_nothing_per_attempt(
    tmp_path: Path,
) -> None:
    landing = tmp_path / "landing"
    _files(landing, 1)
    stop = Recording()
    attempts: list[int] = []
    said: list[str] = []

    def reconnect() -> Session:
        attempts.append(1)
        if len(attempts) < 9:
            raise DatabaseError("cannot connect to PostgreSQL (connection refused)")
        return Session([Loader(loaded_then_stop)])

    def loaded_then_stop(path: Path) -> FileResult:
        stop.event.set()
        return _loaded(path)

    def lost(path: Path) -> FileResult:
        raise _lost(psycopg2.OperationalError("server closed the connection unexpectedly"))

    follow(
        (landing,),
        Session([Loader(lost)]),
        lambda result: None,
        stop,
        poll_interval=0.01,
        settle=0,
        reconnect=reconnect,
        say=said.append,
    )
    backoff = [seconds for seconds in stop.waits if seconds != 0.01]
    assert backoff == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert len(attempts) == 9
    assert len(said) == 2  # lost, reconnected: nothing per attempt
    assert "(9 attempt(s))" in said[1]


def test_without_reconnect_a_lost_connection_still_ends_the_run(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _files(landing, 1)

    def lost(path: Path) -> FileResult:
        raise DatabaseError("lost the connection to PostgreSQL while loading b0.ndjson")

    with pytest.raises(DatabaseError, match=r"while loading b0\.ndjson"):
        follow((landing,), _session(lost), lambda result: None, Stop(), settle=0)
