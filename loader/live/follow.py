"""`agent-loader load --follow`: keep loading new batch files as they appear.

The folders are polled (a directory listing every `poll_interval` seconds: portable, and
cheap while loaded files are moved out with `--move-loaded-to`). Each new file is loaded by
the same per-file function as `load`, one transaction per file, while the caller holds the
load lock for the whole run. SIGTERM or SIGINT stops the loop after the files being loaded.

Several files may be loading at once, each in its own transaction on its own connection
(`loaders`, one per connection; `load --follow --connections N`). A file's load is
mostly Python work (reading and validating records) followed by mostly PostgreSQL work
(storing them): with two connections one file is validated while the server stores the
other, so a follower keeps up with about twice the events a second on two cores. Files are
handed out in sorted (arrival) order; they may commit out of that order, which changes
nothing that is stored: an event id in two files loading at once is stored once (the second
insert waits for the first transaction, then counts a duplicate), and every `loaded_at` lies
within the dbt models' `lookback_hours` of the others.

**A file loads once it has stopped changing.** A collector may write a file in place: a
file is loaded only after its size, modification time and inode stayed the same for
`settle` seconds, except a file `agent-loader serve` wrote (its name says so, `SERVE_NAME`),
which is renamed into the folder complete and loads at once. A file is moved to the archive
only when it is still, right before the move, the file that was loaded (same identity, as
many bytes as were loaded); a file that changed after it was loaded is reported (a failed
ledger row and a line), left in place, and loaded again as a new batch once it is still:
its events stored before count as duplicates, so each event is stored once.

A file is new when its path and identity have not been seen in this run; a file already in
the ledger is skipped by `load_file` as usual. A file that failed is retried after
`retry_failed_after` seconds, or at once when it changes.

**A lost connection is an outage, not the end.** When PostgreSQL goes away (a restart, a
terminated backend), the files being loaded roll back, the follower says so in one line,
reconnects with exponential backoff (`RECONNECT_FIRST_WAIT`, doubling up to
`RECONNECT_MAX_WAIT`), takes the load lock again and goes on; the files rolled back load
again (exactly once: their ledger rows never committed).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psycopg2
from psycopg2.errors import TransactionRollbackError

from loader.errors import DatabaseError
from loader.ingest.load import FileResult, batch_files
from loader.ingest.privacy import NO_PRIVACY, Privacy, archive_file
from loader.shown import shown, shown_path

DEFAULT_POLL_INTERVAL = 0.1
DEFAULT_RETRY_FAILED_AFTER = 30.0
DEFAULT_CONNECTIONS = 2
DEFAULT_SETTLE = 1.0
"""Seconds a file's size, modification time and inode must stay the same before it loads
(`load --follow --settle`): a collector writing in place is assumed done after that long."""

RECONNECT_FIRST_WAIT = 0.5
"""Seconds before the first attempt to reconnect after PostgreSQL went away; doubled after
each failed attempt, up to RECONNECT_MAX_WAIT."""
RECONNECT_MAX_WAIT = 30.0

SERVE_NAME = re.compile(r"\d{8}T\d{12}Z-[A-Za-z0-9_-]+-[0-9a-f]{6}-\d{6,}\.ndjson")
"""The name `agent-loader serve` gives a batch file (`loader/live/serve.py`, `Spool._write`:
UTC time, key label, the server's token, sequence). Serve writes it as a hidden `.part`,
fsyncs and renames it: under this name it is complete, so it loads without settling."""


class Identity(NamedTuple):
    """What tells one state of a file from another: a write changes size or mtime, a
    replacement (rename over, delete and recreate) the inode."""

    size: int
    mtime_ns: int
    inode: int


def identity(path: Path) -> Identity | None:
    """The file's identity now (the link itself for a symlink); None when it is gone."""
    try:
        stat = os.lstat(path)
    except OSError:
        return None
    return Identity(stat.st_size, stat.st_mtime_ns, stat.st_ino)


class Stop:
    """Set by SIGTERM/SIGINT (or by a test); the loop checks it between files."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.event.set())
        # A writer opening a file the follower holds a lease on (`_unwritten`) is announced
        # by SIGIO, which would end the process: the writer just waits for the release.
        signal.signal(signal.SIGIO, signal.SIG_IGN)

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)


def move_loaded(
    path: Path, roots: Iterable[Path], target: Path, *, privacy: Privacy = NO_PRIVACY
) -> Path:
    """Move a loaded file under `target`, keeping its path relative to the folder given.

    The move happens after the file's transaction committed: a crash in between leaves the
    file in place, and the next run skips it (the ledger knows it) and moves it then. Under
    the warehouse's `privacy`, the archive gets the records as raw holds them, not the file
    (`archive_file`).
    """
    relative = Path(path.name)
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            relative = path.relative_to(root)
            break
    destination = target / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    archive_file(path, destination, privacy)
    return destination


def retry_rolled_back(
    connection: Any, load_one: Callable[[Path], FileResult], attempts: int = 3
) -> Callable[[Path], FileResult]:
    """`load_one`, loading a file again when PostgreSQL rolled its transaction back.

    Two files loading at once that hold the same events in opposite orders can deadlock;
    PostgreSQL then rolls one of them back (the load reports it as a lost connection, with
    the deadlock as its cause). Nothing of that file was stored: it is loaded again.
    """

    def load(path: Path) -> FileResult:
        for attempt in range(1, attempts + 1):
            try:
                return load_one(path)
            except DatabaseError as error:
                rolled_back = isinstance(error.__context__, TransactionRollbackError)
                if not rolled_back or connection.closed or attempt == attempts:
                    raise
                connection.rollback()
        raise AssertionError("unreachable")

    return load


def _no_ledger(result: FileResult) -> None:
    """A loader without a ledger (tests): nothing to record."""


@dataclass
class Loader:
    """One connection's work: load a file (one transaction), or record a failed file in
    the ledger (`raw.load_batches`), which `load_file` does itself for the files it fails."""

    load: Callable[[Path], FileResult]
    record_failure: Callable[[FileResult], None] = _no_ledger


@dataclass
class Session:
    """The follower's connections: `loaders` (the first holds the load lock) and `close`;
    `privacy`, the warehouse's, which the archive applies too (`move_loaded`)."""

    loaders: Sequence[Loader]
    close: Callable[[], None] = lambda: None
    privacy: Privacy = NO_PRIVACY


class Lost(Exception):
    """PostgreSQL went away while following: `error` is what the load or statement raised,
    `detail` says how in one line."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.detail = _lost_detail(error)
        super().__init__(self.detail)


@dataclass
class _Loading:
    """A file handed to a loader: which loader, and the file's identity when it was handed."""

    loader: Loader
    identity: Identity | None


@dataclass
class _Watch:
    """What the follower knows between looks, kept across reconnections."""

    seen: dict[Path, tuple[Identity | None, FileResult]] = field(default_factory=dict)
    """Loaded files still in place (no archive, or a writer still has them open): their
    identity when loaded and the load's result; skipped while unchanged."""
    still: dict[Path, tuple[Identity, float]] = field(default_factory=dict)
    """Files waiting to settle: identity and since when (monotonic) it has not changed."""
    failed: dict[Path, tuple[Identity | None, float, FileResult]] = field(default_factory=dict)
    """Failed files: identity then, when to retry (monotonic), the result."""


def _lost_detail(error: BaseException) -> str:
    """One line saying how the connection was lost, from a load's or a statement's error."""
    cause = error.__context__ if isinstance(error, DatabaseError) else error
    if not isinstance(cause, psycopg2.Error):
        cause = error
    return shown((str(cause).strip().splitlines() or [type(cause).__name__])[0])


@contextmanager
def _unwritten(path: Path) -> Iterator[bool | None]:
    """Whether no process has the file open for writing, held while the block runs.

    Linux grants a read lease (fcntl F_SETLEASE) only when nobody has the file open for
    writing, and a process that opens it for writing meanwhile waits until the lease is
    released (the follower ignores the SIGIO that announces it): True then. False: a
    process has it open for writing, so it may still grow. None: cannot tell (not the
    file's owner, a file system without leases, not Linux): the identity check alone.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except (OSError, AttributeError) as error:
            yield False if getattr(error, "errno", None) == errno.EAGAIN else None
            return
        try:
            yield True
        finally:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    finally:
        os.close(fd)


@contextmanager
def _quiet_copy_errors() -> Iterator[None]:
    """psycopg2 prints a broken COPY's error chain itself (PyErr_Print, through
    `sys.excepthook`) when the server goes away mid-COPY: the load reports it in one line,
    and an outage is said once, so those fragments are silenced while following."""

    def quiet(*exc_info: object) -> None:
        """The COPY's error reaches the loader as an exception too; it reports it."""

    previous, sys.excepthook = sys.excepthook, quiet
    try:
        yield
    finally:
        sys.excepthook = previous


def _changed_after_load(
    path: Path, result: FileResult, loaded: Identity | None, now: Identity | None, moving: bool
) -> FileResult:
    """The failed result for a file that changed after (or while) it was loaded."""
    size = f"{result.bytes} bytes" if result.status == "loaded" else "the file as it was"
    if now is None:
        state, then = "it is gone", "whatever was written after the load is not in raw"
    else:
        replaced = loaded is not None and now.inode != loaded.inode
        state = f"{'another file of' if replaced else 'it has'} {now.size} bytes now"
        then = (
            ("left in place, not archived; " if moving else "")
            + "it loads again as a new batch once it stops changing (events loaded before"
            " count as duplicates); a collector should write a hidden file and rename it"
        )
    batch = result.batch_id
    error = f"changed after it was loaded as batch {batch} ({size} loaded, {state}): {then}"
    return FileResult(shown_path(path), "failed", bytes=now.size if now else 0, error=error)


def follow(
    paths: tuple[Path, ...],
    session: Session,
    report: Callable[[FileResult], None],
    stop: Stop,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    move_to: Path | None = None,
    retry_failed_after: float = DEFAULT_RETRY_FAILED_AFTER,
    settle: float = DEFAULT_SETTLE,
    reconnect: Callable[[], Session] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> list[FileResult]:
    """Load new files until `stop` is set; returns the results of the failed files.

    Each loader loads one file at a time (each has its own connection); with several,
    files load at once, handed out in sorted order. When a connection is lost, the run
    waits for the other files loading meanwhile, then (with `reconnect`) opens a new
    session with backoff and goes on; without `reconnect` the error ends the run.
    """
    if not session.loaders:
        raise ValueError("follow needs at least one loader")
    watch = _Watch()
    with _quiet_copy_errors():
        try:
            while True:
                try:
                    _SessionFollower(
                        paths,
                        session,
                        report,
                        stop,
                        poll_interval,
                        move_to,
                        retry_failed_after,
                        settle,
                        watch,
                    ).run()
                    break
                except Lost as lost:
                    session.close()
                    if reconnect is None:
                        raise lost.error from None
                    opened = _reconnect(reconnect, stop, lost.detail, say)
                    if opened is None:
                        break  # stopped while waiting
                    session = opened
        finally:
            session.close()
    return [result for _, _, result in watch.failed.values()]


def _reconnect(
    reconnect: Callable[[], Session], stop: Stop, detail: str, say: Callable[[str], None]
) -> Session | None:
    """A new session, trying with exponential backoff; None when stopped meanwhile.

    One line when the outage starts and one when it ends, none per attempt."""
    say(
        f"lost the connection to PostgreSQL ({detail}); any file being loaded was rolled back"
        f" and loads again; reconnecting every {RECONNECT_FIRST_WAIT:g} s doubling up to"
        f" {RECONNECT_MAX_WAIT:g} s"
    )
    started = time.monotonic()
    pause = RECONNECT_FIRST_WAIT
    attempts = 0
    while not stop.wait(pause):
        attempts += 1
        try:
            session = reconnect()
        except (DatabaseError, psycopg2.OperationalError, psycopg2.InterfaceError):
            pause = min(pause * 2, RECONNECT_MAX_WAIT)
            continue
        say(
            f"reconnected to PostgreSQL after {time.monotonic() - started:.1f} s"
            f" ({attempts} attempt(s)); following again"
        )
        return session
    return None


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


class _SessionFollower:
    """Follows on one session's connections until stopped; `run` raises Lost when one is
    lost. `watch` outlives it (the next session takes it over); the rest is this session's."""

    def __init__(
        self,
        paths: tuple[Path, ...],
        session: Session,
        report: Callable[[FileResult], None],
        stop: Stop,
        poll_interval: float,
        move_to: Path | None,
        retry_failed_after: float,
        settle: float,
        watch: _Watch,
    ) -> None:
        self.paths = paths
        self.session = session
        self.report = report
        self.stop = stop
        self.poll_interval = poll_interval
        self.retry_failed_after = retry_failed_after
        self.settle = settle
        self.watch = watch
        self.target = move_to.resolve() if move_to is not None else None
        # Resolving every listed path costs a few syscalls each, at every look: only when
        # the archive sits inside a followed folder can a listed file be in it.
        self.archive_inside = self.target is not None and any(
            self.target.is_relative_to(root.resolve()) for root in paths
        )
        self.idle = list(reversed(session.loaders))  # the first (the lock's) is used first
        self.loading: dict[Future[FileResult], tuple[Path, _Loading]] = {}
        self.lost: list[Lost] = []

    def run(self) -> None:
        with ThreadPoolExecutor(len(self.session.loaders), thread_name_prefix="load") as pool:
            try:
                while not self.stop.is_set() and not self.lost:
                    self._look(pool)
                    if self.lost:
                        break
                    if self.loading:
                        self._wait_for_one(self.poll_interval)  # a file done, or look again
                    else:
                        self.stop.wait(self.poll_interval)
            finally:
                self._finish_loading()
        if self.lost:
            raise self.lost[0]

    def _look(self, pool: ThreadPoolExecutor) -> None:
        """One look at the followed paths: each file that may load goes to an idle loader
        (waiting for one when all are busy)."""
        watch = self.watch
        busy = {path for path, _ in self.loading.values()}
        listed: set[Path] = set()
        for path in batch_files(self.paths):
            if self.stop.is_set() or self.lost:
                break
            listed.add(path)
            if path in busy:
                continue
            if self.archive_inside and _inside(path, self.target):
                continue  # the archive may sit inside a folder being followed
            now = identity(path)
            seen = watch.seen.get(path)
            if seen is not None:
                if seen[0] == now:
                    self._archive(path)  # waiting for its writer to close it
                    continue
                # Loaded (not yet moved, or left in place) and changed since: say so; it
                # loads again (a new batch) once still.
                del watch.seen[path]
                self._wait_for_idle()
                if self.lost:
                    break
                try:
                    self._changed_after_load(self.idle[-1], path, seen[1], seen[0], now)
                except Lost as error:
                    self.lost.append(error)
                    break
            earlier = watch.failed.get(path)
            if earlier and earlier[0] == now and time.monotonic() < earlier[1]:
                continue
            if not self._still(path, now, time.monotonic()):
                continue
            self._wait_for_idle()
            if self.stop.is_set() or self.lost:
                break
            watch.still.pop(path, None)
            loader = self.idle.pop()
            self.loading[pool.submit(loader.load, path)] = (path, _Loading(loader, now))
            busy.add(path)
        for gone in [p for p in watch.still if p not in listed]:
            del watch.still[gone]  # gone before it settled
        for gone in [p for p in watch.seen if p not in listed]:
            del watch.seen[gone]  # removed after it was loaded

    def _finish_loading(self) -> None:
        """Stopping (or a connection was lost): let the files being loaded finish and
        report; the first other error is re-raised after them."""
        errors: list[BaseException] = []
        while self.loading:
            for future in wait(list(self.loading))[0]:
                try:
                    self._finish(future)
                except Lost as error:
                    self.lost.append(error)
                except BaseException as error:  # re-raised below, after the others
                    errors.append(error)
        if errors:
            raise errors[0]

    def _record(self, loader: Loader, failure: FileResult) -> None:
        try:
            loader.record_failure(failure)
        except psycopg2.Error as error:
            raise Lost(error) from None
        self.report(failure)

    def _finish(self, future: Future[FileResult]) -> None:
        path, started = self.loading.pop(future)
        self.idle.append(started.loader)
        try:
            result = future.result()
        except DatabaseError as error:  # the file was rolled back: it loads again
            if not isinstance(error.__context__, TransactionRollbackError):
                raise Lost(error) from None
            # Deadlocked every time `retry_rolled_back` tried: a failed file, retried later.
            result = FileResult(shown_path(path), "failed", error=str(error))
            self._record(started.loader, result)
            self._failed(path, started.identity, result)
            return
        if result.status == "failed":
            self.report(result)
            self._failed(path, started.identity, result)
            return
        self.report(result)
        self.watch.failed.pop(path, None)
        # Still the file that was loaded? A collector writing in place may have gone on.
        now = identity(path)
        changed = now != started.identity or (
            result.status == "loaded" and now is not None and now.size != result.bytes
        )
        if changed:
            self._changed_after_load(started.loader, path, result, started.identity, now)
            return
        self.watch.seen[path] = (now, result)
        self._archive(path)

    def _failed(self, path: Path, loaded: Identity | None, result: FileResult) -> None:
        """A failed file: tried again once `retry_failed_after` has passed, or once changed."""
        self.watch.failed[path] = (loaded, time.monotonic() + self.retry_failed_after, result)

    def _changed_after_load(
        self,
        loader: Loader,
        path: Path,
        result: FileResult,
        loaded: Identity | None,
        now: Identity | None,
    ) -> None:
        """Report a file that changed after it was loaded; it loads again once still."""
        failure = _changed_after_load(path, result, loaded, now, self.target is not None)
        self._record(loader, failure)
        if now is not None:  # loads again once still (settling starts now)
            self.watch.failed[path] = (now, float("-inf"), failure)

    def _archive(self, path: Path) -> None:
        """Move a loaded file to the archive if it is still what was loaded and no process
        has it open for writing; else it stays in `seen` and is looked at again."""
        if self.target is None:
            return
        loaded = self.watch.seen[path][0]
        with _unwritten(path) as free:
            if free is False or identity(path) != loaded:
                return  # may still grow: the next look moves it, or reports a change
            move_loaded(path, self.paths, self.target, privacy=self.session.privacy)
        del self.watch.seen[path]

    def _wait_for_idle(self) -> None:
        """Until a loader is idle (or a connection is lost)."""
        while not self.idle and not self.lost:
            self._wait_for_one(None)

    def _wait_for_one(self, timeout: float | None) -> None:
        done, _ = wait(list(self.loading), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            try:
                self._finish(future)
            except Lost as error:
                self.lost.append(error)

    def _still(self, path: Path, now: Identity | None, at: float) -> bool:
        """True when the file may load: gone (the load says so), written by serve, or
        unchanged for `settle` seconds."""
        if now is None or self.settle <= 0:
            return True
        if SERVE_NAME.fullmatch(path.name) and path not in self.watch.failed:
            return True  # complete when renamed in (unless it changed after a load)
        since = self.watch.still.get(path)
        if since is None or since[0] != now:
            self.watch.still[path] = (now, at)
            return False
        return at - since[1] >= self.settle
