"""`agent-loader`: the command line. It parses options, calls the library and prints.

Exit codes (also in the README): 0 success; 1 the work found a problem (a file failed to
load, `validate` found invalid records, `--fail-on-quarantine` saw quarantined records);
2 usage error; 3 PostgreSQL unreachable, refused a statement or the connection was lost;
4 another load holds the lock (`--no-wait`); 5 the raw schema is missing or out of date
(run `agent-loader init`); 6 the load's privacy options or key differ from the warehouse's
stored privacy settings; 130 / 143 the load was stopped by SIGINT (Ctrl-C) / SIGTERM (the
file being loaded was rolled back and loads on the next run).
"""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg2

from loader import __version__, demo, embedded, warehouse
from loader.errors import (
    EXIT_INTERRUPTED,
    EXIT_PROBLEMS,
    EXIT_TERMINATED,
    DatabaseError,
    PrivacySettingsDiffer,
)
from loader.generate import Workload, generate
from loader.load import (
    FileResult,
    Interrupted,
    batch_files,
    load_file,
    stop_on_signals,
    validate_file,
)
from loader.privacy import (
    Privacy,
    PrivacyConfigError,
    PrivacyMismatch,
    store_settings,
    warehouse_privacy,
)
from loader.readers import DEFAULT_MAX_RECORD_BYTES
from loader.retention import parse_duration, purge
from loader.roles import RoleConfigError, create_roles

F = TypeVar("F", bound=Callable[..., Any])

dsn_option = click.option(
    "--dsn",
    envvar="AGENT_ANALYTICS_DSN",
    help=(
        "PostgreSQL connection string (env AGENT_ANALYTICS_DSN). Default: the libpq variables"
        " PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; with none of those set, the embedded"
        " server under $AGENT_ANALYTICS_HOME (default ./.agent-analytics)."
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
paths_argument = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)


def resolve_dsn(dsn: str | None) -> str:
    """--dsn, else the libpq environment, else the embedded server (started if needed)."""
    if dsn:
        return dsn
    if warehouse.libpq_configured():
        return ""
    click.echo(f"Using the embedded PostgreSQL in {embedded.pgdata()}", err=True)
    return embedded.start()


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agent-loader")
def main() -> None:
    """Load agent event batches into PostgreSQL, validated and exactly once.

    Typical cron use: `agent-loader init` once, then `agent-loader load DIR` every minute.
    """


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


def _privacy_errors(action: Callable[[], Privacy]) -> Privacy:
    try:
        return action()
    except PrivacyConfigError as error:
        raise click.UsageError(str(error)) from None
    except PrivacyMismatch as error:
        raise PrivacySettingsDiffer(str(error)) from None


@main.command()
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
    conn = warehouse.connect(resolve_dsn(dsn))
    applied = warehouse.migrate(conn)
    version = warehouse.schema_version(conn)
    if tokenize_users is not None or redact is not None:
        try:
            _privacy_errors(lambda: store_settings(conn, bool(tokenize_users), redact or "none"))
        finally:
            conn.close()
    conn.close()
    if as_json:
        click.echo(json.dumps({"schema_version": version, "applied": [m.version for m in applied]}))
    elif applied:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
        click.echo(f"raw schema at version {version} (applied {names})")
    else:
        click.echo(f"raw schema already at version {version}; nothing to do")


@main.command()
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
@tokenize_option
@redact_option
@click.option(
    "--rehash",
    is_flag=True,
    help="Checksum every file, even one whose path, size and mtime match a loaded batch.",
)
@database_errors
def load(
    paths: tuple[Path, ...],
    dsn: str | None,
    as_json: bool,
    max_record_bytes: int,
    wait: bool,
    fail_on_quarantine: bool,
    tokenize_users: bool | None,
    redact: str | None,
    rehash: bool,
) -> None:
    """Load every new batch file under PATHS, exactly once.

    A file already in the ledger is skipped (same path, size and mtime; else same sha256);
    an event seen before is counted as a duplicate; an invalid record goes to raw.quarantine
    with its reason. Directories are read recursively in sorted order, hidden files left out.
    """
    if tokenize_users:  # a missing key is a usage error before anything is opened
        _privacy_errors(lambda: Privacy.from_options(True, redact or "none"))
    conn = warehouse.connect(resolve_dsn(dsn))
    results: list[FileResult] = []
    try:
        warehouse.require_current_schema(conn)
        warehouse.acquire_load_lock(conn, wait)
        privacy = _privacy_errors(lambda: warehouse_privacy(conn, tokenize_users, redact))
        with stop_on_signals():
            for path in batch_files(paths):
                result = load_file(conn, path, max_record_bytes, rehash, privacy)
                results.append(result)
                if not as_json:
                    click.echo(_file_line(result))
    except Interrupted as interrupt:
        _print_results(results, as_json)
        click.echo(
            f"Error: interrupted by {interrupt}: the file being loaded was rolled back and"
            " loads on the next run; the files listed above are done",
            err=True,
        )
        sys.exit(EXIT_TERMINATED if interrupt.signum == signal.SIGTERM else EXIT_INTERRUPTED)
    finally:
        conn.close()
    _print_results(results, as_json)
    failed = any(result.status == "failed" for result in results)
    if failed or (fail_on_quarantine and any(result.quarantined for result in results)):
        sys.exit(EXIT_PROBLEMS)


@main.command()
@paths_argument
@json_option
@max_record_option
def validate(paths: tuple[Path, ...], as_json: bool, max_record_bytes: int) -> None:
    """Check batch files against the event contract without a database (a dry run).

    Exits 1 when any record would be quarantined or a file cannot be read.
    """
    results = []
    for path in batch_files(paths):
        try:
            result = validate_file(path, max_record_bytes)
        except OSError as error:
            result = FileResult(str(path), "failed", error=f"cannot read the file: {error}")
        results.append(result)
        if not as_json:
            click.echo(_file_line(result))
            for reason, count in result.reasons.items():
                click.echo(f"    {count:>8}  {reason}")
    _print_results(results, as_json)
    if any(result.status == "failed" or result.quarantined for result in results):
        sys.exit(EXIT_PROBLEMS)


@main.command()
@dsn_option
@json_option
@click.option("--limit", default=20, show_default=True, help="How many ledger rows to show.")
@database_errors
def history(dsn: str | None, as_json: bool, limit: int) -> None:
    """Show the newest rows of the load ledger (raw.load_batches)."""
    conn = warehouse.connect(resolve_dsn(dsn))
    warehouse.require_current_schema(conn)
    rows = warehouse.recent_batches(conn, limit)
    conn.close()
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


@main.command(name="purge")
@click.option(
    "--older-than",
    required=True,
    metavar="DURATION",
    help="Retention window, e.g. 90d, 12h or 2w: rows older than now minus this go.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option(
    "--batch-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows deleted per transaction.",
)
@dsn_option
@json_option
@database_errors
def purge_command(
    older_than: str, dry_run: bool, batch_size: int, dsn: str | None, as_json: bool
) -> None:
    """Delete raw events and quarantine rows older than the retention window.

    Events go by event time, quarantine rows by when they were quarantined, in batches of
    --batch-size rows. The ledger keeps reconciling (purged rows are counted per batch) and
    raw.purges records each purge; the next `dbt build` drops purged events from the marts.
    """
    try:
        window = parse_duration(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    conn = warehouse.connect(resolve_dsn(dsn))
    warehouse.require_current_schema(conn)
    result = purge(conn, window, batch_size, dry_run)
    conn.close()
    if as_json:
        click.echo(json.dumps(result.as_dict(), default=str))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.agent_events:,} agent events, {result.marketplace_events:,}"
        f" marketplace events and {result.quarantine:,} quarantine rows older than"
        f" {result.cutoff:%Y-%m-%d %H:%M:%S %Z}"
    )


@main.command(name="roles")
@click.option(
    "--prefix",
    default="aa_",
    show_default=True,
    envvar="AGENT_ANALYTICS_ROLE_PREFIX",
    help=(
        "Prefix of the five role names (env AGENT_ANALYTICS_ROLE_PREFIX); dbt must use the"
        " same one: --vars '{role_prefix: ...}'."
    ),
)
@dsn_option
@json_option
@database_errors
def roles_command(prefix: str, dsn: str | None, as_json: bool) -> None:
    """Create the loader, transformer and BI roles and their grants. Safe to rerun.

    Creates NOLOGIN group roles PREFIXloader (writes raw), PREFIXtransformer (runs dbt),
    PREFIXbi_operator, PREFIXbi_publisher and PREFIXbi_tenant (read marts, row-level
    security by app.publisher_id / app.tenant_id). Grant them to login roles. Run as the
    role that ran `agent-loader init`; the next `dbt build` grants the marts.
    """
    conn = warehouse.connect(resolve_dsn(dsn))
    warehouse.require_current_schema(conn)
    try:
        result = create_roles(conn, prefix)
    except RoleConfigError as error:
        raise click.BadParameter(str(error), param_hint="--prefix") from None
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    created = ", ".join(result.created) or "none (all existed)"
    click.echo(f"roles in database {result.database}: {', '.join(result.roles.values())}")
    click.echo(f"created: {created}")


def _rates(values: tuple[str, ...], option: str) -> dict[str, float]:
    """Parse repeated NAME=RATE options into a dict, with a usage error on a bad one."""
    parsed = {}
    for value in values:
        name, _, rate = value.partition("=")
        try:
            parsed[name] = float(rate)
        except ValueError:
            raise click.BadParameter(
                f"expected NAME=RATE, got {value!r}", param_hint=option
            ) from None
        if not name or not 0 <= parsed[name] <= 1:
            raise click.BadParameter(
                f"expected NAME=RATE with RATE in [0, 1], got {value!r}", param_hint=option
            )
    return parsed


@main.command(name="generate")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the batch files into (created if missing).",
)
@click.option(
    "--events",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="About how many events to write.",
)
@click.option(
    "--days",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Spread the events over this many days, ending now.",
)
@click.option("--seed", default=7, show_default=True, help="Same seed, same events.")
@click.option(
    "--publishers",
    default=6,
    show_default=True,
    type=click.IntRange(min=1),
    help="Marketplace publishers pub-01, pub-02, ... (two agents each).",
)
@click.option(
    "--events-per-file",
    default=50_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rotate files (NDJSON, .gz, {events}) at this size.",
)
@click.option(
    "--duplicate-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of events written twice, as a retrying collector would.",
)
@click.option(
    "--late-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of events held back and written into later files.",
)
@click.option(
    "--error-rate",
    "error_rates",
    multiple=True,
    metavar="PUBLISHER=RATE",
    help="Plant an error rate for a publisher, e.g. pub-02=0.15. Repeatable.",
)
@click.option(
    "--slow-agent",
    "slow_agents",
    multiple=True,
    metavar="AGENT",
    help="Plant a slow agent (durations around 16 s), e.g. pub-03-agent-1.",
)
@click.option(
    "--failing-tool",
    "failing_tools",
    multiple=True,
    metavar="PUBLISHER/TOOL=RATE",
    help="Plant a tool failure rate for one publisher, e.g. pub-05/web_fetch=0.35.",
)
@click.option(
    "--unhappy",
    "unhappy",
    multiple=True,
    metavar="PUBLISHER",
    help="Plant unhappy users for a publisher (ratings mostly 1 and 2).",
)
def generate_command(
    out: Path,
    events: int,
    days: int,
    seed: int,
    publishers: int,
    events_per_file: int,
    duplicate_rate: float,
    late_rate: float,
    error_rates: tuple[str, ...],
    slow_agents: tuple[str, ...],
    failing_tools: tuple[str, ...],
    unhappy: tuple[str, ...],
) -> None:
    """Write synthetic batch files in both seed shapes, deterministic for a --seed.

    Conversations (seed 000) and marketplace invocations, tool calls, feedback, installs
    (seed 004), written as collectors write them. Options plant anomalies for the insights
    to find, and duplicate and late events for the loader and the incremental models.
    """
    tools = {}
    for key, rate in _rates(failing_tools, "--failing-tool").items():
        publisher, _, tool = key.partition("/")
        if not tool:
            raise click.BadParameter(
                f"expected PUBLISHER/TOOL=RATE, got {key!r}", param_hint="--failing-tool"
            )
        tools[(publisher, tool)] = rate
    workload = Workload(
        events=events,
        days=days,
        seed=seed,
        publishers=publishers,
        events_per_file=events_per_file,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        error_rate_by_publisher=_rates(error_rates, "--error-rate"),
        slow_agents=set(slow_agents),
        failing_tools=tools,
        unhappy_publishers=set(unhappy),
    )
    written = generate(
        workload, out, progress=lambda n: click.echo(f"  {n:,} events written ...", err=True)
    )
    click.echo(
        f"wrote {written.events:,} events ({written.duplicates:,} duplicates,"
        f" {written.late:,} late) in {len(written.files)} files under {out}"
    )


@main.command(name="demo")
@dsn_option
@click.option(
    "--events",
    default=40_000,
    show_default=True,
    type=click.IntRange(min=1000),
    help="Events to generate on the first run.",
)
@click.option(
    "--days",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Days the events span, ending now.",
)
@click.option("--seed", default=7, show_default=True, help="Generator seed.")
@click.option(
    "--reset",
    is_flag=True,
    help="Start over: drop the raw and dbt schemas and the generated files first.",
)
def demo_command(dsn: str | None, events: int, days: int, seed: int, reset: bool) -> None:
    """Generate, load and build a few days of events, then print what the marts say.

    With no --dsn or PG* variables it runs on an embedded PostgreSQL under
    $AGENT_ANALYTICS_HOME (./.agent-analytics), which keeps running afterwards
    (`agent-loader embedded stop` stops it). A rerun reuses the generated files, so it
    loads nothing twice; --reset starts from scratch.
    """
    is_embedded = not dsn and not warehouse.libpq_configured()
    resolved = resolve_dsn(dsn)
    result = demo.run(resolved, events, days, seed, reset, say=lambda line: click.echo(line))
    if not result.dbt_ok:
        raise click.ClickException("dbt build failed; see the lines above")
    click.echo(demo.report(resolved))
    click.echo(demo.connection_help(resolved, is_embedded))


@main.group(name="embedded")
def embedded_group() -> None:
    """Manage the embedded PostgreSQL, whose data lives under $AGENT_ANALYTICS_HOME."""


@embedded_group.command(name="start")
def embedded_start() -> None:
    """Start the embedded server (or reuse it) and print its connection string."""
    click.echo(embedded.start())


@embedded_group.command(name="stop")
def embedded_stop() -> None:
    """Stop the embedded server; its data stays for the next start."""
    click.echo("stopped" if embedded.stop() else "not running")


# --- output ------------------------------------------------------------------------------


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(text: str) -> str:
    """Text safe for one line of a log: control characters (a newline in a file name could
    forge a line) and undecodable bytes appear as escapes."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


def _file_line(result: FileResult) -> str:
    path = shown(result.path)
    if result.status == "failed":
        return f"failed     {path}: {shown(result.error or '')}"
    if result.status == "skipped":
        return f"skipped    {path} (already loaded as batch {result.batch_id})"
    rate = result.records_read / result.seconds if result.seconds else 0.0
    loaded = "" if result.status == "validated" else f"loaded={result.loaded} "
    duplicates = "" if result.status == "validated" else f"duplicates={result.duplicates} "
    return (
        f"{result.status:<10} {path}: read={result.records_read} {loaded}{duplicates}"
        f"quarantined={result.quarantined} ({rate:,.0f} records/s)"
    )


def _print_results(results: list[FileResult], as_json: bool) -> None:
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
    click.echo(
        f"{len(results)} file(s) ({files or 'none'}): read={read} loaded={loaded}"
        f" duplicates={duplicates} quarantined={quarantined}"
    )
