"""What every command shares: connection options, exit codes, errors, and printing results."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg2

from loader.errors import (
    AlertRoutesInvalid,
    AlertRulesNotBuilt,
    DashboardsBuildFailed,
    DashboardsNotInstalled,
    DatabaseError,
    EmbeddedPortUnavailable,
    LoaderError,
    LockBusy,
    MalformedConnectionString,
    MissingExtra,
    NoConnection,
    PrivacySettingsDiffer,
    ProjectNotFound,
    SchemaOutOfDate,
)
from loader.ingest import warehouse
from loader.ingest.load import FileResult
from loader.ingest.privacy import Privacy, PrivacyConfigError, PrivacyMismatch
from loader.ingest.readers import DEFAULT_MAX_RECORD_BYTES
from loader.shown import shown

F = TypeVar("F", bound=Callable[..., Any])  # a command, as its decorators take and give it

# The exit codes; each one's cases are listed once, in docs/operating.md ("Exit codes").
EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_LOCK_BUSY = 4
EXIT_SCHEMA = 5
EXIT_PRIVACY = 6
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM: 128 + 15

EXIT_CODES: dict[type[LoaderError], int] = {
    NoConnection: EXIT_USAGE,
    MissingExtra: EXIT_USAGE,
    EmbeddedPortUnavailable: EXIT_USAGE,
    MalformedConnectionString: EXIT_USAGE,
    ProjectNotFound: EXIT_USAGE,
    AlertRoutesInvalid: EXIT_USAGE,
    DashboardsNotInstalled: EXIT_USAGE,
    DatabaseError: EXIT_DATABASE,
    LockBusy: EXIT_LOCK_BUSY,
    DashboardsBuildFailed: EXIT_PROBLEMS,
    SchemaOutOfDate: EXIT_SCHEMA,
    AlertRulesNotBuilt: EXIT_SCHEMA,
    PrivacySettingsDiffer: EXIT_PRIVACY,
    LoaderError: EXIT_PROBLEMS,  # any other: "the work found a problem"
}
"""The exit code of each of the library's expected failures (loader/errors.py)."""


class Failed(click.ClickException):
    """A LoaderError as click prints it: `Error: <message>` and its exit code."""

    def __init__(self, error: LoaderError) -> None:
        super().__init__(str(error))
        kinds = type(error).__mro__
        # click types `exit_code` as a class attribute; this one class carries every code.
        self.exit_code = next(EXIT_CODES[kind] for kind in kinds if kind in EXIT_CODES)  # type: ignore[misc]


class Commands(click.Group):
    """The command group: the one place where the library's expected failures become one
    line and an exit code, for every command and subcommand under it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LoaderError as error:
            raise Failed(error) from None


dsn_option = click.option(
    "--dsn",
    envvar="AGENT_ANALYTICS_DSN",
    help=(
        "PostgreSQL connection string (env AGENT_ANALYTICS_DSN). Default: the libpq variables"
        " PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; with none of those set, the embedded"
        " server under $AGENT_ANALYTICS_HOME (default ./.agent-analytics) when it runs."
    ),
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
max_record_option = click.option(
    "--max-record-bytes",
    type=click.IntRange(min=64),
    default=DEFAULT_MAX_RECORD_BYTES,
    show_default=True,
    help="Records larger than this are quarantined, never loaded.",
)
project_dir_option = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DBT_PROJECT_DIR",
    help="The dbt project (env DBT_PROJECT_DIR) [default: the current folder].",
)
paths_argument = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)


def resolve_dsn(dsn: str | None, start_embedded: bool = False) -> str:
    """--dsn, else the libpq environment, else the embedded server when it runs.

    Only `demo` (and `embedded start`) start the embedded server: any other command with no
    connection configured (under cron, say) refuses instead of starting a server somewhere.
    """
    check_connection_string(dsn or "")
    if dsn:
        return dsn
    if warehouse.libpq_configured():
        return ""
    from loader.devtools import embedded  # imported here: only used with no server configured

    uri = embedded.running_uri()
    if uri is None and not start_embedded:
        raise NoConnection(
            "no PostgreSQL configured: set --dsn (or $AGENT_ANALYTICS_DSN) or the PG* variables"
            " (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE); to use the embedded server,"
            f" run `agent-loader embedded start` (data in {embedded.pgdata()})"
        )
    click.echo(f"Using the embedded PostgreSQL in {embedded.pgdata()}", err=True)
    return uri or embedded.start()


def check_connection_string(dsn: str) -> None:
    """A DSN libpq cannot parse, or a port that is not a number, is a usage error (exit 2):
    connecting would report it as an unreachable server (exit 3). The DSN itself is not
    echoed: it may hold a password."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as error:
        detail = str(error).strip().splitlines()[0].removeprefix("invalid dsn: ")
        detail = re.sub(r' in URI: ".*$', " in the URI", detail)
        raise MalformedConnectionString(
            f"malformed --dsn (or $AGENT_ANALYTICS_DSN): {detail}; expected"
            " 'host=... port=... dbname=...' or 'postgresql://user@host:port/dbname'"
        ) from None
    source = "the port in --dsn" if params.get("port") else "$PGPORT"
    ports = params.get("port") or os.environ.get("PGPORT") or ""
    if any(not port.strip().isdigit() for port in ports.split(",")) and ports:
        raise MalformedConnectionString(f"{source} is {ports!r}, not a TCP port number")


def privacy_errors(action: Callable[[], Privacy]) -> Privacy:
    """`action`'s privacy settings; a bad option or key is a usage error (exit 2), settings
    that differ from the warehouse's are PrivacySettingsDiffer (exit 6)."""
    try:
        return action()
    except PrivacyConfigError as error:
        raise click.UsageError(str(error)) from None
    except PrivacyMismatch as error:
        raise PrivacySettingsDiffer(str(error)) from None


def database_errors(command: F) -> F:
    """A PostgreSQL error in the middle of a command: one line and exit 3, no traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except psycopg2.Error as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise DatabaseError(f"PostgreSQL error: {first_line}") from None

    return wrapper  # type: ignore[return-value]


def file_line(result: FileResult) -> str:
    path = shown(result.path)
    if result.status == "failed":
        return f"failed     {path}: {shown(result.error or '')}"
    if result.status == "ignored":
        return f"ignored    {path} ({result.error})"
    if result.status == "skipped":
        return f"skipped    {path} (already loaded as batch {result.batch_id})"
    rate = result.records_read / result.seconds if result.seconds else 0.0
    if result.status == "validated":
        counts = f"valid={result.valid} "
    else:
        counts = f"loaded={result.loaded} duplicates={result.duplicates} "
        if result.conflicts:  # duplicates that differ from the stored copy: raw.conflicts
            counts += f"conflicts={result.conflicts} "
    return (
        f"{result.status:<10} {path}: read={result.records_read} {counts}"
        f"quarantined={result.quarantined} ({rate:,.0f} records/s)"
    )


def print_results(results: list[FileResult], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([result.as_dict() for result in results], indent=2))
        return
    by_status: dict[str, int] = {}
    for result in results:
        by_status[result.status] = by_status.get(result.status, 0) + 1
    files = ", ".join(f"{count} {status}" for status, count in sorted(by_status.items()))
    read = sum(result.records_read for result in results)
    loaded = sum(result.loaded for result in results)
    duplicates = sum(result.duplicates for result in results)
    quarantined = sum(result.quarantined for result in results)
    checked = [result for result in results if result.status != "ignored"]
    if checked and all(result.status in ("validated", "failed") for result in checked):
        counts = f"valid={sum(result.valid for result in results)}"  # a dry run loads nothing
    else:
        counts = f"loaded={loaded} duplicates={duplicates}"
        if conflicts := sum(result.conflicts for result in results):
            counts += f" conflicts={conflicts} (kept in raw.conflicts)"
    click.echo(
        f"{len(results)} file(s) ({files or 'none'}): read={read} {counts}"
        f" quarantined={quarantined}"
    )


def ignore_further_signals() -> None:
    """Once a signal has stopped the work, the next SIGINT or SIGTERM is ignored.

    An impatient second Ctrl-C would otherwise land in the closing message or the
    interpreter's teardown (closing dbt's connections takes a moment) and end the process
    by SIGINT instead of the documented exit code.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
