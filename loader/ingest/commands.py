"""The ingest commands: init, load (also --follow), validate, history."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import click

from loader.console import (
    EXIT_INTERRUPTED,
    EXIT_PROBLEMS,
    EXIT_TERMINATED,
    database_errors,
    dsn_option,
    file_line,
    ignore_further_signals,
    json_option,
    max_record_option,
    paths_argument,
    print_results,
    privacy_errors,
    resolve_dsn,
    shown,
)
from loader.errors import MissingExtra
from loader.ingest import warehouse
from loader.ingest.load import (
    THREAD_SWITCH_SECONDS,
    FileResult,
    Interrupted,
    batch_files,
    ignored_files,
    known_files,
    load_file,
    stop_on_signals,
    validate_file,
)
from loader.ingest.privacy import Privacy, store_settings, warehouse_privacy
from loader.live.commands import follow_files, follow_options
from loader.shown import shown_path

tokenize_option = click.option(
    "--tokenize-users/--no-tokenize-users",
    default=None,
    envvar="AGENT_ANALYTICS_TOKENIZE_USERS",
    help=(
        "Replace user ids with keyed HMAC-SHA256 tokens before writing; the key comes from"
        " $AGENT_ANALYTICS_TOKEN_KEY (at least 16 bytes). A warehouse setting: stored by"
        " `init`, applied by every load."
    ),
)
redact_option = click.option(
    "--redact",
    type=click.Choice(["none", "mask", "drop"]),
    default=None,
    envvar="AGENT_ANALYTICS_REDACT",
    help=(
        "Text: keep it, mask e-mails/phones/cards in every string, or drop free-text"
        " fields (and mask the rest). A warehouse setting: stored by `init`, applied by"
        " every load. [default: none]"
    ),
)


@click.command(name="init")
@dsn_option
@json_option
@tokenize_option
@redact_option
@database_errors
def init(dsn: str | None, as_json: bool, tokenize_users: bool | None, redact: str | None) -> None:
    """Create the raw schema, or migrate it to this version. Safe to rerun.

    With --tokenize-users and/or --redact, also store the warehouse's privacy settings,
    which every later load applies (refused once events are loaded under other settings).
    """
    with warehouse.connected(resolve_dsn(dsn)) as conn:
        applied = warehouse.migrate(conn)
        version = warehouse.schema_version(conn)
        if tokenize_users is not None or redact is not None:
            privacy_errors(lambda: store_settings(conn, bool(tokenize_users), redact or "none"))
    if as_json:
        click.echo(json.dumps({"schema_version": version, "applied": [m.version for m in applied]}))
    elif applied:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
        click.echo(f"raw schema at version {version} (applied {names})")
    else:
        click.echo(f"raw schema already at version {version}; nothing to do")


@click.command(name="load")
@paths_argument
@dsn_option
@json_option
@max_record_option
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="When another load is running: wait for it to finish, or exit at once with code 4.",
)
@click.option(
    "--fail-on-quarantine",
    is_flag=True,
    help="Exit 1 when any record was quarantined (by default quarantining is not a failure).",
)
@click.option(
    "--fail-on-empty",
    is_flag=True,
    help=(
        "Exit 1 when the paths hold no batch file at all (a wrong path, a collector that"
        " stopped); by default that is one line on stderr and exit 0."
    ),
)
@tokenize_option
@redact_option
@click.option(
    "--rehash",
    is_flag=True,
    help="Checksum every file, even one whose path, size and mtime match a loaded batch.",
)
@follow_options
@click.option(
    "--lake",
    type=click.Path(file_okay=False, path_type=Path),
    help=(
        "Load into this folder of Parquet tables for Spark (`dbt build --target spark`)"
        " instead of PostgreSQL: the same contract, quarantine, privacy and ledger."
    ),
)
@database_errors
def load(
    paths: tuple[Path, ...],
    dsn: str | None,
    as_json: bool,
    max_record_bytes: int,
    wait: bool,
    fail_on_quarantine: bool,
    fail_on_empty: bool,
    tokenize_users: bool | None,
    redact: str | None,
    rehash: bool,
    follow: bool,
    poll_interval: float,
    settle: float,
    connections: int,
    move_loaded_to: Path | None,
    lake: Path | None,
) -> None:
    """Load every new batch file under PATHS, exactly once.

    A file already in the ledger is skipped (same path, size, mtime and inode; else same
    sha256); an event seen before is counted as a duplicate; an invalid record goes to
    raw.quarantine with its reason. Directories are read recursively in sorted order for
    .ndjson, .jsonl and .json files (and their .gz), hidden files left out; other files there
    are listed as ignored. A file named on the command line is read whatever its name.
    """
    if move_loaded_to is not None and not follow:
        raise click.UsageError("--move-loaded-to works with --follow only")
    if tokenize_users:  # a missing key is a usage error before anything is opened
        privacy_errors(lambda: Privacy.from_options(True, redact or "none"))
    if lake is not None:
        if follow or dsn:
            raise click.UsageError("--lake loads into a folder: drop --follow and --dsn")
        in_lake = _load_lake(
            lake, paths, as_json, max_record_bytes, wait, rehash, tokenize_users, redact
        )
        _exit_status(in_lake, paths, fail_on_quarantine, fail_on_empty)
        return
    dsn = resolve_dsn(dsn)
    results: list[FileResult] = []
    sys.setswitchinterval(THREAD_SWITCH_SECONDS)
    with warehouse.connected(dsn) as conn:
        warehouse.require_current_schema(conn)
        with warehouse.load_lock(dsn, wait) as lock:
            privacy = privacy_errors(lambda: warehouse_privacy(conn, tokenize_users, redact))
            if follow:  # SIGTERM finishes the current file, then stops (loader/live/)
                follow_files(
                    conn,
                    lock,
                    dsn,
                    connections,
                    paths,
                    max_record_bytes,
                    rehash,
                    privacy,
                    poll_interval,
                    settle,
                    move_loaded_to,
                    as_json,
                    tokenize_users,
                    redact,
                )
                return
            try:
                known = known_files(conn, paths)  # one query: the unchanged files skip on a stat
                ignored: list[Path] = []
                with stop_on_signals():
                    for path in batch_files(paths, ignored):
                        result = load_file(conn, path, max_record_bytes, rehash, privacy, known)
                        results.append(result)
                        if not as_json:
                            click.echo(file_line(result))
                results.extend(_reported(ignored_files(ignored), as_json))
            except Interrupted as interrupt:
                _interrupted(interrupt, results, as_json)
    print_results(results, as_json)
    _exit_status(results, paths, fail_on_quarantine, fail_on_empty)


def _interrupted(interrupt: Interrupted, results: list[FileResult], as_json: bool) -> NoReturn:
    """The files done so far, a line on stderr, and exit 130 (SIGINT) or 143 (SIGTERM)."""
    print_results(results, as_json)
    click.echo(
        f"Error: interrupted by {interrupt}: the file being loaded was rolled back and"
        " loads on the next run; the files listed above are done",
        err=True,
    )
    # Exit now, without interpreter teardown: the validating thread may still be inside
    # C code, and finalising around it can crash (SIGSEGV seen in CI). The transaction
    # was never committed; the server rolls it back when the socket closes.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_TERMINATED if interrupt.signum == signal.SIGTERM else EXIT_INTERRUPTED)


def _reported(results: list[FileResult], as_json: bool) -> list[FileResult]:
    """Print a line per result (unless --json, where they are in the final document)."""
    if not as_json:
        for result in results:
            click.echo(file_line(result))
    return results


def _exit_status(
    results: list[FileResult],
    paths: tuple[Path, ...],
    fail_on_quarantine: bool,
    fail_on_empty: bool = False,
) -> None:
    """Exit 1 when a file failed, or as --fail-on-quarantine / --fail-on-empty ask; a run
    that found no batch file says so on stderr whatever the options."""
    empty = all(result.status == "ignored" for result in results)
    if empty:
        where = ", ".join(shown_path(path) for path in paths)
        click.echo(f"no batch file found under {where}: nothing to load", err=True)
    failed = any(result.status == "failed" for result in results)
    if failed or (fail_on_quarantine and any(result.quarantined for result in results)):
        sys.exit(EXIT_PROBLEMS)
    if empty and fail_on_empty:
        sys.exit(EXIT_PROBLEMS)


def _load_lake(
    root: Path,
    paths: tuple[Path, ...],
    as_json: bool,
    max_record_bytes: int,
    wait: bool,
    rehash: bool,
    tokenize_users: bool | None,
    redact: str | None,
) -> list[FileResult]:
    """`load --lake`: the same loop as for PostgreSQL, into Parquet (loader/ingest/lake.py).

    An interrupt stops between files: the file being written is discarded (its partitions
    have no ledger row yet) and loads on the next run.
    """
    try:
        from loader.ingest.lake import open_lake
    except ModuleNotFoundError as error:
        if (error.name or "loader").partition(".")[0] == "loader":
            raise
        raise MissingExtra(
            f"--lake needs the [spark] extra (module {error.name} is not installed):"
            " pip install 'agent-analytics[spark]'"
        ) from None

    results: list[FileResult] = []
    ignored: list[Path] = []
    with open_lake(root, wait) as lake:
        privacy = privacy_errors(lambda: lake.privacy(tokenize_users, redact))
        try:
            for path in batch_files(paths, ignored):
                result = lake.load_file(path, max_record_bytes, rehash, privacy)
                results.append(result)
                if not as_json:
                    click.echo(file_line(result))
            results.extend(_reported(ignored_files(ignored), as_json))
        except KeyboardInterrupt:
            ignore_further_signals()
            print_results(results, as_json)
            click.echo(
                "Error: interrupted: the file being loaded was discarded and loads on the next"
                " run; the files listed above are done",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
    print_results(results, as_json)
    return results


@click.command(name="validate")
@paths_argument
@json_option
@max_record_option
def validate(paths: tuple[Path, ...], as_json: bool, max_record_bytes: int) -> None:
    """Check batch files against the event contract without a database (a dry run).

    Exits 1 when any record would be quarantined or a file cannot be read. Folders are read
    as by `load` (other files listed as ignored).
    """
    results = []
    ignored: list[Path] = []
    for path in batch_files(paths, ignored):
        try:
            result = validate_file(path, max_record_bytes)
        except OSError as error:
            reason = f"cannot read the file: {error.strerror or error}"
            result = FileResult(shown_path(path), "failed", error=reason)
        results.append(result)
        if not as_json:
            click.echo(file_line(result))
            for reason, count in result.reasons.items():
                click.echo(f"    {count:>8}  {reason}")
            for problem in result.problems[:10]:
                click.echo(f"    at {problem['position']}: {shown(problem['reason'])}")
            if len(result.problems) > 10:
                click.echo("    ... (--json lists the first 1,000 positions and reasons)")
    results.extend(_reported(ignored_files(ignored), as_json))
    print_results(results, as_json)
    if any(result.status == "failed" or result.quarantined for result in results):
        sys.exit(EXIT_PROBLEMS)


@click.command(name="history")
@dsn_option
@json_option
@click.option("--limit", default=20, show_default=True, help="How many ledger rows to show.")
@database_errors
def history(dsn: str | None, as_json: bool, limit: int) -> None:
    """Show the newest rows of the load ledger (raw.load_batches)."""
    with warehouse.connected(resolve_dsn(dsn)) as conn:
        warehouse.require_current_schema(conn)
        rows = warehouse.recent_batches(conn, limit)
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    click.echo(
        f"{'batch':>7}  {'status':<7} {'read':>9} {'loaded':>9} {'dups':>7} {'quar':>7}  "
        f"{'finished (UTC)':<19}  path"
    )
    for row in rows:
        finished = row["finished_at"].strftime("%Y-%m-%d %H:%M:%S") if row["finished_at"] else ""
        click.echo(
            f"{row['batch_id']:>7}  {row['status']:<7} {row['records_read']:>9} "
            f"{row['loaded']:>9} {row['duplicates']:>7} {row['quarantined']:>7}  "
            f"{finished:<19}  {shown(row['path'])}"
            + (f"  ({shown(row['error'])})" if row["error"] else "")
        )
