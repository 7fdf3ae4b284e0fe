"""`agent-loader load --follow`: keep loading new batch files as they appear.

The folders are polled (a directory listing every `poll_interval` seconds: portable, and
cheap while loaded files are moved out with `--move-loaded-to`). Each new file is loaded by
the same per-file function as `load`, one transaction per file, while the caller holds the
load lock for the whole run. SIGTERM or SIGINT stops the loop after the current file.

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
from collections.abc import Callable, Iterable
from pathlib import Path

from loader.ingest.load import FileResult, batch_files

DEFAULT_POLL_INTERVAL = 0.2
DEFAULT_RETRY_FAILED_AFTER = 30.0


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


def follow(
    paths: tuple[Path, ...],
    load_one: Callable[[Path], FileResult],
    report: Callable[[FileResult], None],
    stop: Stop,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    move_to: Path | None = None,
    retry_failed_after: float = DEFAULT_RETRY_FAILED_AFTER,
) -> list[FileResult]:
    """Load new files until `stop` is set; returns the results of the failed files."""
    seen: dict[Path, tuple[int, int]] = {}
    failed: dict[Path, tuple[tuple[int, int], float, FileResult]] = {}
    target = move_to.resolve() if move_to is not None else None
    while not stop.is_set():
        for path in batch_files(paths):
            if stop.is_set():
                break
            if target is not None and path.resolve().is_relative_to(target):
                continue  # the archive may sit inside a folder being followed
            try:
                stat = os.stat(path)
                identity = (stat.st_size, stat.st_mtime_ns)
            except OSError:
                identity = (-1, -1)  # vanished or a broken symlink: load_file reports it
            if seen.get(path) == identity:
                continue
            earlier = failed.get(path)
            if earlier and earlier[0] == identity and time.monotonic() < earlier[1]:
                continue
            result = load_one(path)
            report(result)
            if result.status == "failed":
                failed[path] = (identity, time.monotonic() + retry_failed_after, result)
                continue
            failed.pop(path, None)
            if target is not None:
                move_loaded(path, paths, target)
            else:
                seen[path] = identity
        stop.wait(poll_interval)
    return [result for _, _, result in failed.values()]
