"""`agent-loader`: the command line. It parses options, calls the library and prints.

Exit codes (also in docs/operating.md): 0 success; 1 the work found a problem (a file failed to
load, `validate` found invalid records, `--fail-on-quarantine` saw quarantined records);
2 usage error; 3 PostgreSQL unreachable, refused a statement or the connection was lost;
4 another load holds the lock (`--no-wait`); 5 the raw schema is missing or out of date
(run `agent-loader init`); 6 the load's privacy options or key differ from the warehouse's
stored privacy settings; 130 / 143 the load was stopped by SIGINT (Ctrl-C) / SIGTERM (the
file being loaded was rolled back and loads on the next run).
"""

from __future__ import annotations

import json
import os
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
    NoConnection,
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
from loader.roles import (
    ReaderGrant,
    RoleConfigError,
    RoleRefused,
    create_roles,
    grant_reader,
    list_grants,
    revoke_reader,
)

F = TypeVar("F", bound=Callable[..., Any])

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
    if dsn:
        return dsn
    if warehouse.libpq_configured():
        return ""
    uri = embedded.running_uri()
    if uri is None and not start_embedded:
        raise NoConnection(
            "no PostgreSQL configured: set --dsn (or $AGENT_ANALYTICS_DSN) or the PG* variables"
            " (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE); to use the embedded server,"
            f" run `agent-loader embedded start` (data in {embedded.pgdata()})"
        )
    click.echo(f"Using the embedded PostgreSQL in {embedded.pgdata()}", err=True)
    return uri or embedded.start()


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
@click.option(
    "--follow",
    is_flag=True,
    help=(
        "Keep running: load new files as they appear (polling), one transaction per file;"
        " SIGTERM stops it after the current file. Pairs with `agent-loader serve`."
    ),
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=0.2,
    show_default=True,
    help="With --follow: seconds between looks for new files.",
)
@click.option(
    "--move-loaded-to",
    type=click.Path(file_okay=False, path_type=Path),
    help=(
        "With --follow: move each loaded file into this folder after its commit, keeping the"
        " landing folder (the spool `serve` limits) small."
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
    tokenize_users: bool | None,
    redact: str | None,
    rehash: bool,
    follow: bool,
    poll_interval: float,
    move_loaded_to: Path | None,
) -> None:
    """Load every new batch file under PATHS, exactly once.

    A file already in the ledger is skipped (same path, size and mtime; else same sha256);
    an event seen before is counted as a duplicate; an invalid record goes to raw.quarantine
    with its reason. Directories are read recursively in sorted order, hidden files left out.
    """
    if move_loaded_to is not None and not follow:
        raise click.UsageError("--move-loaded-to works with --follow only")
    if tokenize_users:  # a missing key is a usage error before anything is opened
        _privacy_errors(lambda: Privacy.from_options(True, redact or "none"))
    conn = warehouse.connect(resolve_dsn(dsn))
    results: list[FileResult] = []
    try:
        warehouse.require_current_schema(conn)
        warehouse.acquire_load_lock(conn, wait)
        privacy = _privacy_errors(lambda: warehouse_privacy(conn, tokenize_users, redact))
        if follow:  # SIGTERM finishes the current file, then stops (loader/follow.py)
            _follow(
                conn,
                paths,
                max_record_bytes,
                rehash,
                privacy,
                poll_interval,
                move_loaded_to,
                as_json,
            )
            return
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
        # Exit now, without interpreter teardown: the validating thread may still be inside
        # C code, and finalising around it can crash (SIGSEGV seen in CI). The transaction
        # was never committed; the server rolls it back when the socket closes.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_TERMINATED if interrupt.signum == signal.SIGTERM else EXIT_INTERRUPTED)
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
            for problem in result.problems[:10]:
                click.echo(f"    at {problem['position']}: {shown(problem['reason'])}")
            if len(result.problems) > 10:
                click.echo("    ... (--json lists the first 1,000 positions and reasons)")
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


prefix_option = click.option(
    "--prefix",
    default="aa_",
    show_default=True,
    envvar="AGENT_ANALYTICS_ROLE_PREFIX",
    help=(
        "Prefix of the role names (env AGENT_ANALYTICS_ROLE_PREFIX); dbt must use the"
        " same one: --vars '{role_prefix: ...}'."
    ),
)


@main.command(name="roles")
@prefix_option
@click.option(
    "--close-database",
    is_flag=True,
    help=(
        "Also revoke connect and temporary on the database from PUBLIC, so only the"
        " project's roles (and superusers) can connect to it."
    ),
)
@dsn_option
@json_option
@database_errors
def roles_command(prefix: str, close_database: bool, dsn: str | None, as_json: bool) -> None:
    """Create the loader, transformer and reader roles and their grants. Safe to rerun.

    Creates NOLOGIN group roles PREFIXloader (writes raw), PREFIXtransformer (runs dbt),
    PREFIXbi_operator (reads every mart row), PREFIXbi_tenant and PREFIXbi_publisher (read
    the rows of the tenants / publishers granted to the login with grant-tenant /
    grant-publisher) and PREFIXbi_trusted_app (an application server that picks the tenant
    per request with app.tenant_id / app.publisher_id: never give it to a person), and the
    table access.reader_grants. Never alters a role it did not create (exit 1). Run as the
    role that ran `agent-loader init`; the next `dbt build` grants the marts.
    """
    conn = warehouse.connect(resolve_dsn(dsn))
    warehouse.require_current_schema(conn)
    try:
        result = create_roles(conn, prefix, close_database=close_database)
    except RoleConfigError as error:
        raise click.BadParameter(str(error), param_hint="--prefix") from None
    except RoleRefused as error:
        raise click.ClickException(str(error)) from None
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    created = ", ".join(result.created) or "none (all existed)"
    click.echo(f"roles in database {result.database}: {', '.join(result.roles.values())}")
    click.echo(f"created: {created}")
    if result.database_closed:
        click.echo(f"database {result.database}: connect and temporary revoked from PUBLIC")


def _grant(
    login: str, scope: str, subject_id: str, prefix: str, dsn: str | None, as_json: bool
) -> None:
    conn = warehouse.connect(resolve_dsn(dsn))
    try:
        grant, is_new = grant_reader(conn, login, scope, subject_id, prefix)  # type: ignore[arg-type]
    except RoleConfigError as error:
        raise click.BadParameter(str(error), param_hint="--prefix") from None
    except RoleRefused as error:
        raise click.ClickException(str(error)) from None
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps({**grant.as_dict(), "created": is_new}))
        return
    state = "granted" if is_new else "already granted"
    click.echo(f"{login} may read {scope} {subject_id}'s rows ({state})")


@main.command(name="grant-tenant")
@click.argument("login")
@click.argument("tenant_id")
@prefix_option
@dsn_option
@json_option
@database_errors
def grant_tenant_command(
    login: str, tenant_id: str, prefix: str, dsn: str | None, as_json: bool
) -> None:
    """Let the existing login role LOGIN read TENANT_ID's rows of the tenant marts.

    Records the grant in access.reader_grants and makes LOGIN a member of PREFIXbi_tenant.
    Repeat for more tenants. Row-level security compares each row with the grants of the
    connected login, so no SQL the login sends (set, reset, set role) widens it. Exit 1
    when LOGIN does not exist, cannot log in, or is a superuser or BYPASSRLS role.
    """
    _grant(login, "tenant", tenant_id, prefix, dsn, as_json)


@main.command(name="grant-publisher")
@click.argument("login")
@click.argument("publisher_id")
@prefix_option
@dsn_option
@json_option
@database_errors
def grant_publisher_command(
    login: str, publisher_id: str, prefix: str, dsn: str | None, as_json: bool
) -> None:
    """Let the existing login role LOGIN read PUBLISHER_ID's rows of the *_shared marts.

    Records the grant in access.reader_grants and makes LOGIN a member of
    PREFIXbi_publisher. Repeat for more publishers. Exit 1 as for grant-tenant.
    """
    _grant(login, "publisher", publisher_id, prefix, dsn, as_json)


@main.command(name="revoke")
@click.argument("login")
@click.option("--tenant", "tenant_id", help="Revoke only this tenant.")
@click.option("--publisher", "publisher_id", help="Revoke only this publisher.")
@prefix_option
@dsn_option
@json_option
@database_errors
def revoke_command(
    login: str,
    tenant_id: str | None,
    publisher_id: str | None,
    prefix: str,
    dsn: str | None,
    as_json: bool,
) -> None:
    """Remove LOGIN's tenant / publisher grants (all of them, or the one named).

    A login left with no tenant (publisher) leaves PREFIXbi_tenant (PREFIXbi_publisher).
    Exit 1 when there was nothing to revoke.
    """
    if tenant_id is not None and publisher_id is not None:
        raise click.UsageError("give --tenant or --publisher, not both")
    scope = "tenant" if tenant_id is not None else "publisher" if publisher_id else None
    conn = warehouse.connect(resolve_dsn(dsn))
    try:
        removed = revoke_reader(conn, login, scope, tenant_id or publisher_id, prefix)  # type: ignore[arg-type]
    except RoleConfigError as error:
        raise click.BadParameter(str(error), param_hint="--prefix") from None
    except RoleRefused as error:
        raise click.ClickException(str(error)) from None
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps({"removed": [grant.as_dict() for grant in removed]}))
    else:
        for grant in removed:
            click.echo(f"revoked: {grant.login} {grant.scope} {grant.subject_id}")
    if not removed:
        what = f" {scope} {tenant_id or publisher_id}" if scope else ""
        raise click.ClickException(
            f"{login} had no grant{what} to revoke; `agent-loader grants` lists them"
        )


@main.command(name="grants")
@click.option("--login", help="Only this login's grants.")
@dsn_option
@json_option
@database_errors
def grants_command(login: str | None, dsn: str | None, as_json: bool) -> None:
    """List which login may read which tenant's or publisher's rows."""
    conn = warehouse.connect(resolve_dsn(dsn))
    try:
        grants: list[ReaderGrant] = list_grants(conn, login)
    except RoleRefused as error:
        raise click.ClickException(str(error)) from None
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps([grant.as_dict() for grant in grants]))
        return
    if not grants:
        click.echo("no grants")
    for grant in grants:
        click.echo(
            f"{grant.login}\t{grant.scope}\t{grant.subject_id}\t{grant.granted_at:%Y-%m-%d %H:%M}"
        )


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
@json_option
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
    as_json: bool,
) -> None:
    """Write synthetic batch files of both event kinds, deterministic for a --seed.

    Conversation events and marketplace invocations, tool calls, feedback and installs,
    written as collectors write them. Options plant anomalies for the insights
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
    if as_json:
        summary = {
            "events": written.events,
            "duplicates": written.duplicates,
            "late": written.late,
            "files": [str(path) for path in written.files],
        }
        click.echo(json.dumps(summary, indent=2))
        return
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
@project_dir_option
@json_option
def demo_command(
    dsn: str | None,
    events: int,
    days: int,
    seed: int,
    reset: bool,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Generate, load and build a few days of events, then print what the marts say.

    With no --dsn or PG* variables it runs on an embedded PostgreSQL under
    $AGENT_ANALYTICS_HOME (./.agent-analytics), which keeps running afterwards
    (`agent-loader embedded stop` stops it). A rerun reuses the generated files, so it
    loads nothing twice; --reset starts from scratch.
    """
    is_embedded = not dsn and not warehouse.libpq_configured()
    resolved = resolve_dsn(dsn, start_embedded=True)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    result = demo.run(resolved, events, days, seed, reset, say=say, project=project_dir)
    if not result.dbt_ok:
        raise click.ClickException("dbt build failed; see the lines above")
    if as_json:
        click.echo(json.dumps(demo.report_data(resolved), default=str, indent=2))
        return
    click.echo(demo.report(resolved))
    click.echo(demo.connection_help(resolved, is_embedded))


@main.group(name="embedded")
def embedded_group() -> None:
    """Manage the embedded PostgreSQL, whose data lives under $AGENT_ANALYTICS_HOME."""


@embedded_group.command(name="start")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"TCP port on 127.0.0.1 [default: {embedded.DEFAULT_PORT}, else a free one].",
)
@json_option
def embedded_start(port: int | None, as_json: bool) -> None:
    """Start the embedded server (or reuse it) and print its connection URI.

    It listens on 127.0.0.1 so that psql and BI tools can connect; dbt's shipped profile
    reaches it when no PG* variable is set and it uses the default port.
    """
    try:
        uri = embedded.start(port)
    except OSError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps({"uri": uri, "pgdata": str(embedded.pgdata())}))
    else:
        click.echo(uri)


@embedded_group.command(name="stop")
def embedded_stop() -> None:
    """Stop the embedded server; its data stays for the next start."""
    click.echo("stopped" if embedded.stop() else "not running")


def _follow(
    conn: Any,
    paths: tuple[Path, ...],
    max_record_bytes: int,
    rehash: bool,
    privacy: Privacy,
    poll_interval: float,
    move_loaded_to: Path | None,
    as_json: bool,
) -> None:
    """`load --follow`: load new files until SIGTERM/SIGINT, then exit 0 (1 if files failed).

    Prints a line per file as it is loaded (with --json: one JSON document per line).
    """
    from loader.follow import Stop, follow

    def report(result: FileResult) -> None:
        click.echo(json.dumps(result.as_dict()) if as_json else _file_line(result))

    stop = Stop()
    stop.install()
    say = f"following {', '.join(map(str, paths))} (SIGTERM stops after the current file)"
    click.echo(say, err=True)
    failed = follow(
        paths,
        lambda path: load_file(conn, path, max_record_bytes, rehash, privacy),
        report,
        stop,
        poll_interval,
        move_loaded_to,
    )
    conn.close()
    click.echo(f"stopped; {len(failed)} file(s) still failing", err=True)
    if failed:
        sys.exit(EXIT_PROBLEMS)


@main.command(name="serve")
@click.option(
    "--landing",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the batch files go to (created if missing); `load --follow` reads it.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="AGENT_LOADER_KEYS_FILE",
    help=(
        "Ingest keys, one LABEL:KEY a line; also read from $AGENT_LOADER_INGEST_KEYS"
        " (LABEL:KEY,...). With keys, POSTs need Authorization: Bearer KEY."
    ),
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=16 << 20,
    show_default=True,
    help="Largest request body after gzip decoding; larger gets 413.",
)
@click.option(
    "--max-spool-bytes",
    type=click.IntRange(min=0),
    default=1 << 30,
    show_default=True,
    help="Answer 503 + Retry-After while the landing folder holds more than this.",
)
@click.option(
    "--min-free-bytes",
    type=click.IntRange(min=0),
    default=512 << 20,
    show_default=True,
    help="Answer 503 + Retry-After while the disk has less free space than this.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds a client may take to send a request body (408 after that).",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help=(
        "Least seconds between two batch files (group commit): under load, batches wait up"
        " to this long to share one file and one fsync."
    ),
)
@max_record_option
def serve_command(
    landing: Path,
    host: str,
    port: int,
    keys_file: Path | None,
    max_body_bytes: int,
    max_spool_bytes: int,
    min_free_bytes: int,
    body_timeout: float,
    commit_interval: float,
    max_record_bytes: int,
) -> None:
    """Receive events over HTTP (POST /v1/events) into durable batch files.

    A 2xx answer means the batch is fsync'd in the landing folder; the answer lists the
    records the loader will quarantine and why. GET /healthz and GET /metrics (Prometheus).
    SIGTERM stops accepting, finishes in-flight requests and exits 0.
    """
    from loader import serve

    try:
        keys = serve.load_keys(keys_file)
    except (serve.KeyConfigError, OSError, UnicodeDecodeError) as error:
        raise click.BadParameter(str(error), param_hint="--keys-file") from None
    landing.mkdir(parents=True, exist_ok=True)
    if not keys and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host} with no ingest keys: anyone can POST", err=True)
    config = serve.ServeConfig(
        landing=landing,
        host=host,
        port=port,
        keys=keys,
        max_body_bytes=max_body_bytes,
        max_record_bytes=max_record_bytes,
        max_spool_bytes=max_spool_bytes,
        min_free_bytes=min_free_bytes,
        body_timeout=body_timeout,
        commit_interval=commit_interval,
    )
    try:
        serve.run(
            config,
            ready=lambda _: click.echo(
                f"serving http://{host}:{port}/v1/events into {landing}"
                f" ({len(keys)} ingest key(s)); SIGTERM stops",
                err=True,
            ),
        )
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
    click.echo("stopped: in-flight requests answered", err=True)


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
    if result.status == "validated":
        counts = f"valid={result.valid} "
    else:
        counts = f"loaded={result.loaded} duplicates={result.duplicates} "
    return (
        f"{result.status:<10} {path}: read={result.records_read} {counts}"
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
    if results and all(result.status in ("validated", "failed") for result in results):
        counts = f"valid={sum(result.valid for result in results)}"  # a dry run loads nothing
    else:
        counts = f"loaded={loaded} duplicates={duplicates}"
    click.echo(
        f"{len(results)} file(s) ({files or 'none'}): read={read} {counts}"
        f" quarantined={quarantined}"
    )
