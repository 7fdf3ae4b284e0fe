"""How long a cron `load` spends on a landing folder whose files are all loaded already.

    python bench/skip_bench.py                    # 5,000 and 50,000 files
    python bench/skip_bench.py --files 5000       # one size (repeatable)

For each size it writes that many one-event NDJSON files into a temporary folder and gives
a fresh database the ledger rows a load of them leaves (path, sha256, size, mtime, inode,
device, ctime: written directly, so the set-up takes seconds, not a load per file). Then it
times, three times each, median shown:

  cli        `agent-loader load FOLDER` as a subprocess, as cron runs it (every file must
             come out skipped): start-up, the walk, one ledger query, a `stat` and a printed
             line per file;
  start-up   the same command on an empty folder: what any run costs before the first file;
  per-file   in-process, `load_file` with no ledger snapshot for each file: a lookup query
             per file, as every `load` did before the snapshot (`known_files`).

It prints seconds and microseconds per file, the machine, the load average and the commit.
Connection: the PG* variables, or the embedded server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loader_bench import REPO, Scratch, _server_dsn
from loader import __version__
from loader.ingest.load import _signed, load_file
from loader.shown import shown_path


def _landing(folder: Path, files: int) -> list[tuple]:
    """Write the files; return the ledger rows a load of them leaves."""
    rows = []
    for number in range(files):
        path = folder / f"{number // 1000:03d}" / f"batch-{number:06d}.ndjson"
        path.parent.mkdir(exist_ok=True)
        data = json.dumps({"event_id": f"skip-{number}", "n": number}).encode() + b"\n"
        path.write_bytes(data)
        stat = path.stat()
        rows.append(
            (
                shown_path(path),
                hashlib.sha256(data).hexdigest(),
                len(data),
                stat.st_mtime_ns,
                _signed(stat.st_ino),
                _signed(stat.st_dev),
                stat.st_ctime_ns,
            )
        )
    return rows


def _ledger(dsn: str, rows: list[tuple]) -> None:
    text = "".join(
        "\t".join(map(str, row)) + f"\tloaded\tndjson\t1\t1\t1\t{__version__}\tnow\tnow\n"
        for row in rows
    )
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.copy_expert(
            "copy raw.load_batches (path, sha256, bytes, modified_ns, inode, device,"
            " changed_ns, status, file_format, records_read, loaded, agent_events_loaded,"
            " loader_version, started_at, finished_at) from stdin",
            io.StringIO(text),
        )
        cur.execute("analyze raw.load_batches")
    conn.commit()
    conn.close()


def _cli(dsn: str, folder: Path, files: int) -> float:
    env = {**os.environ, "AGENT_ANALYTICS_DSN": dsn}
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "loader", "load", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    seconds = time.perf_counter() - started
    summary = run.stdout.splitlines()[-1] if run.stdout else run.stderr
    if files and f"{files} file(s) ({files} skipped)" not in summary:
        raise SystemExit(f"expected {files} skipped files: {summary}")
    return seconds


def _per_file(dsn: str, folder: Path, files: int) -> float:
    conn = psycopg2.connect(dsn)
    paths = sorted(folder.rglob("*.ndjson"))
    started = time.perf_counter()
    skipped = sum(load_file(conn, path).status == "skipped" for path in paths)
    seconds = time.perf_counter() - started
    conn.close()
    if skipped != files:
        raise SystemExit(f"expected {files} skipped files, got {skipped}")
    return seconds


@click.command()
@click.option("--files", "sizes", type=int, multiple=True, default=[5_000, 50_000])
@click.option("--repeat", type=int, default=3, show_default=True)
def main(sizes: tuple[int, ...], repeat: int) -> None:
    server = _server_dsn()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, commit {commit}")
    for files in sizes:
        scratch = Scratch(server)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder, empty = Path(tmp) / "landing", Path(tmp) / "empty"
                folder.mkdir()
                empty.mkdir()
                _ledger(scratch.dsn, _landing(folder, files))
                timings = {
                    "cli": [_cli(scratch.dsn, folder, files) for _ in range(repeat)],
                    "start-up": [_cli(scratch.dsn, empty, 0) for _ in range(repeat)],
                    "per-file": [_per_file(scratch.dsn, folder, files) for _ in range(repeat)],
                }
        finally:
            scratch.drop()
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
        for name, values in timings.items():
            median = statistics.median(values)
            per_file = f"{median / files * 1e6:7.1f} µs/file" if name != "start-up" else ""
            print(f"{files:>7} files  {name:<9} {median:7.3f} s  {per_file}  (load avg {load})")


if __name__ == "__main__":
    main()
