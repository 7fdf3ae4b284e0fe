"""`agent-loader load --follow`: keep loading new batch files as they appear.

The folders are polled (a directory listing every `poll_interval` seconds: portable, and
cheap while loaded files are moved out with `--move-loaded-to`). Each new file is loaded by
the same per-file function as `load`, one transaction per file, while the caller holds the
load lock for the whole run. SIGTERM or SIGINT stops the loop after the files being loaded.

Several files may be loading at once, each in its own transaction on its own connection
(`loaders`, one callable per connection; `load --follow --connections N`). A file's load is
mostly Python work (reading and validating records) followed by mostly PostgreSQL work
(storing them): with two connections one file is validated while the server stores the
other, so a follower keeps up with about twice the events a second on two cores. Files are
handed out in sorted (arrival) order; they may commit out of that order, which changes
nothing that is stored: an event id in two files loading at once is stored once (the second
insert waits for the first transaction, then counts a duplicate), and every `loaded_at` lies
within the dbt models' `lookback_hours` of the others.

A file is new when its path, size and modification time have not been seen in this run; a
file already in the ledger is skipped by `load_file` as usual. A file that failed is retried
after `retry_failed_after` seconds, or at once when it changes.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg2.errors import TransactionRollbackError

from loader.errors import DatabaseError
from loader.ingest.load import FileResult, batch_files

DEFAULT_POLL_INTERVAL = 0.1
DEFAULT_RETRY_FAILED_AFTER = 30.0
DEFAULT_CONNECTIONS = 2


class Stop:
    """Set by SIGTERM/SIGINT (or by a test); the loop checks it between files."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.event.set())

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)


def move_loaded(path: Path, roots: Iterable[Path], target: Path) -> Path:
    """Move a loaded file under `target`, keeping its path relative to the folder given.

    The move happens after the file's transaction committed: a crash in between leaves the
    file in place, and the next run skips it (the ledger knows it) and moves it then.
    """
    relative = Path(path.name)
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            relative = path.relative_to(root)
            break
    destination = target / relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(destination))
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


@dataclass
class _Loading:
    """A file handed to a loader: which loader, and the file's identity when it was listed."""

    loader: Callable[[Path], FileResult]
    identity: tuple[int, int]


def follow(
    paths: tuple[Path, ...],
    loaders: Sequence[Callable[[Path], FileResult]],
    report: Callable[[FileResult], None],
    stop: Stop,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    move_to: Path | None = None,
    retry_failed_after: float = DEFAULT_RETRY_FAILED_AFTER,
) -> list[FileResult]:
    """Load new files until `stop` is set; returns the results of the failed files.

    Each loader loads one file at a time (each has its own connection); with several,
    files load at once, handed out in sorted order. An exception from a loader (a lost
    connection) ends the run after the other files loading meanwhile have finished.
    """
    if not loaders:
        raise ValueError("follow needs at least one loader")
    seen: dict[Path, tuple[int, int]] = {}
    failed: dict[Path, tuple[tuple[int, int], float, FileResult]] = {}
    target = move_to.resolve() if move_to is not None else None
    # Resolving every listed path costs a few syscalls each, at every look: only when the
    # archive sits inside a followed folder can a listed file be in it.
    archive_inside = target is not None and any(
        target.is_relative_to(root.resolve()) for root in paths
    )
    idle = list(reversed(loaders))  # the first loader (the lock's connection) is used first
    loading: dict[Future[FileResult], tuple[Path, _Loading]] = {}

    def finish(future: Future[FileResult]) -> None:
        path, started = loading.pop(future)
        idle.append(started.loader)
        result = future.result()  # a loader's exception (lost connection) propagates
        report(result)
        if result.status == "failed":
            failed[path] = (started.identity, time.monotonic() + retry_failed_after, result)
            return
        failed.pop(path, None)
        if target is not None:
            move_loaded(path, paths, target)
        else:
            seen[path] = started.identity

    def wait_for_one(timeout: float | None) -> None:
        done, _ = wait(list(loading), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            finish(future)

    with ThreadPoolExecutor(len(loaders), thread_name_prefix="load") as pool:
        try:
            while not stop.is_set():
                busy = {path for path, _ in loading.values()}
                for path in batch_files(paths):
                    if stop.is_set():
                        break
                    if path in busy:
                        continue
                    if archive_inside and path.resolve().is_relative_to(target):
                        continue  # the archive may sit inside a folder being followed
                    try:
                        stat = os.stat(path)
                        identity = (stat.st_size, stat.st_mtime_ns)
                    except OSError:
                        identity = (-1, -1)  # vanished or a broken symlink: load_file says so
                    if seen.get(path) == identity:
                        continue
                    earlier = failed.get(path)
                    if earlier and earlier[0] == identity and time.monotonic() < earlier[1]:
                        continue
                    while not idle:
                        wait_for_one(None)
                    if stop.is_set():
                        break
                    loader = idle.pop()
                    loading[pool.submit(loader, path)] = (path, _Loading(loader, identity))
                    busy.add(path)
                if loading:
                    wait_for_one(poll_interval)  # wake up when a file is done, or to look
                else:
                    stop.wait(poll_interval)
        finally:
            # Stopping (or a loader failed): let the files being loaded finish and report.
            errors = []
            while loading:
                for future in wait(list(loading))[0]:
                    try:
                        finish(future)
                    except BaseException as error:  # re-raised below, after the others
                        errors.append(error)
            if errors:
                raise errors[0]
    return [result for _, _, result in failed.values()]
