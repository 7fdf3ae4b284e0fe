"""Warehouse operations commands: purge (retention and erasure), roles, grant-tenant,
grant-publisher, revoke, grants, prices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from loader.console import database_errors, dsn_option, json_option, resolve_dsn
from loader.errors import PrivacySettingsDiffer
from loader.ingest import warehouse
from loader.ingest.privacy import (
    NO_PRIVACY,
    TOKEN_KEY_VARIABLE,
    Erasure,
    PrivacyConfigError,
    PrivacyMismatch,
    warehouse_privacy,
)
from loader.operations.prices import PriceTableError, refresh
from loader.operations.retention import (
    ArchiveResult,
    EraseResult,
    LakeUnavailable,
    erase,
    erase_archive,
    erase_lake,
    parse_duration,
    purge,
)
from loader.operations.roles import (
    ReaderGrant,
    RoleConfigError,
    RoleRefused,
    create_roles,
    grant_reader,
    list_grants,
    remove_orphaned_grants,
    revoke_reader,
)
from loader.shown import shown_path


@click.command(name="purge")
@click.option(
    "--older-than",
    metavar="DURATION",
    help="Retention window, e.g. 90d, 12h or 2w: rows older than now minus this go.",
)
@click.option("--user", "user_id", metavar="ID", help="Erase this user's events everywhere.")
@click.option("--tenant", "tenant_id", metavar="ID", help="Erase this tenant's events everywhere.")
@click.option(
    "--archive",
    "archives",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help=(
        "With --user/--tenant: a `load --follow --move-loaded-to` folder, whose files are"
        " rewritten without the erased records (repeatable)."
    ),
)
@click.option(
    "--lake",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help=(
        "With --user/--tenant: erase from this `load --lake` folder (Parquet) instead of"
        " PostgreSQL. Needs the [spark] extra."
    ),
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
    older_than: str | None,
    user_id: str | None,
    tenant_id: str | None,
    archives: tuple[Path, ...],
    lake: Path | None,
    dry_run: bool,
    batch_size: int,
    dsn: str | None,
    as_json: bool,
) -> None:
    """Delete raw rows older than a retention window, or every event of one user or tenant.

    --older-than: events go by event time, quarantine rows by when they were quarantined,
    in batches of --batch-size rows. The ledger keeps reconciling (purged rows are counted
    per batch) and raw.purges records each purge; the next `dbt build` drops purged events
    from the marts.

    --user ID / --tenant ID (erasure): deletes the user's conversation events (by user id,
    clear or tokenized: a tokenizing warehouse needs its key in $AGENT_ANALYTICS_TOKEN_KEY)
    or the tenant's marketplace events, and the quarantine rows that mention the id; with
    --archive, rewrites those folders' files without the records. The next `dbt build`
    removes them from staging, intermediate and marts. Give the id as the collector sent it.
    """
    chosen = [
        name
        for name, value in (
            ("--older-than", older_than),
            ("--user", user_id),
            ("--tenant", tenant_id),
        )
        if value is not None
    ]
    if len(chosen) != 1:
        raise click.UsageError("give one of --older-than, --user or --tenant")
    if older_than is None:
        kind, subject_id = ("user", user_id) if user_id is not None else ("tenant", tenant_id)
        assert subject_id is not None
        if not subject_id:
            raise click.BadParameter("the id is empty", param_hint=chosen[0])
        _erase(kind, subject_id, archives, lake, dry_run, batch_size, dsn, as_json)
        return
    if archives or lake:
        raise click.UsageError("--archive and --lake go with --user or --tenant")
    try:
        window = parse_duration(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    with warehouse.connected(resolve_dsn(dsn)) as conn:
        warehouse.require_current_schema(conn)
        result = purge(conn, window, batch_size, dry_run)
    if as_json:
        click.echo(json.dumps(result.as_dict(), default=str))
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.agent_events:,} agent events, {result.marketplace_events:,}"
        f" marketplace events, {result.spans:,} spans and {result.quarantine:,} quarantine"
        " rows older than"
        f" {result.cutoff:%Y-%m-%d %H:%M:%S %Z}"
    )


def _erase(
    kind: str,
    subject_id: str,
    archives: tuple[Path, ...],
    lake: Path | None,
    dry_run: bool,
    batch_size: int,
    dsn: str | None,
    as_json: bool,
) -> None:
    """`purge --user/--tenant`: PostgreSQL (or the lake), then the archive folders."""
    verb = "would erase" if dry_run else "erased"
    try:
        if lake is not None:
            erased = erase_lake(lake, kind, subject_id, dry_run)
            result = EraseResult(kind, dry_run, lake_rows=erased.records)
            privacy = NO_PRIVACY
        else:
            with warehouse.connected(resolve_dsn(dsn)) as conn:
                warehouse.require_current_schema(conn)
                # a tenant's rows are found by the clear id: no key needed
                privacy = warehouse_privacy(conn, None, None) if kind == "user" else NO_PRIVACY
                result = erase(conn, Erasure(kind, subject_id, privacy), batch_size, dry_run)  # type: ignore[arg-type]
    except LakeUnavailable as error:
        raise click.UsageError(str(error)) from None
    except PrivacyConfigError:
        raise click.UsageError(
            f"this warehouse tokenizes user ids: give its key in ${TOKEN_KEY_VARIABLE} so the"
            " purge can find the user's tokens"
        ) from None
    except PrivacyMismatch as error:
        raise PrivacySettingsDiffer(str(error)) from None
    archive = ArchiveResult()
    for folder in archives:
        found = erase_archive(folder, Erasure(kind, subject_id, privacy), dry_run)  # type: ignore[arg-type]
        archive.records += found.records
        archive.files_rewritten += found.files_rewritten
        archive.files_removed += found.files_removed
    result.archive = archive
    if as_json:
        click.echo(json.dumps(result.as_dict(), default=str))
        return
    if lake is not None:
        click.echo(f"{verb} {result.lake_rows:,} rows of the {kind} in the lake {shown_path(lake)}")
    else:
        events = result.agent_events if kind == "user" else result.marketplace_events
        what = "conversation" if kind == "user" else "marketplace"
        click.echo(
            f"{verb} the {kind}'s {events:,} {what} events, {result.spans:,} spans and"
            f" {result.quarantine:,} quarantine rows; the next `dbt build` removes them from"
            " every model"
        )
    if archives:
        click.echo(
            f"{verb} {archive.records:,} archived records: {len(archive.files_rewritten)}"
            f" file(s) rewritten, {len(archive.files_removed)} removed (left empty)"
        )
    else:
        click.echo(
            "note: no --archive given: a `load --move-loaded-to` folder, if you keep one,"
            " still holds the records",
            err=True,
        )


@contextmanager
def _role_errors() -> Iterator[None]:
    """A malformed --prefix is a usage error (exit 2); a role or login the command refuses
    to touch is a problem found (exit 1, the message says why)."""
    try:
        yield
    except RoleConfigError as error:
        raise click.BadParameter(str(error), param_hint="--prefix") from None
    except RoleRefused as error:
        raise click.ClickException(str(error)) from None


prefix_option = click.option(
    "--prefix",
    default="aa_",
    show_default=True,
    envvar="AGENT_ANALYTICS_ROLE_PREFIX",
    help=(
        "Prefix of the role names (env AGENT_ANALYTICS_ROLE_PREFIX, which dbt reads"
        " too, as its role_prefix var)."
    ),
)


@click.command(name="roles")
@prefix_option
@click.option(
    "--close-database",
    is_flag=True,
    help=(
        "Also revoke connect and temporary on the database from PUBLIC, so only the"
        " project's roles (and superusers) can connect to it, and (run as a superuser)"
        " large-object creation."
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
    table access.reader_grants. Revokes create on schema public from PUBLIC and pins the
    loader's and transformer's search path (pg_catalog and the project's schemas). Never
    alters a role it did not create (exit 1); exit 1 too when schema public stays
    writable by everyone (the message says the one-time fix). Run as the role that ran
    `agent-loader init`; the next `dbt build` grants the marts.
    """
    with warehouse.connected(resolve_dsn(dsn)) as conn:
        warehouse.require_current_schema(conn)
        with _role_errors():
            result = create_roles(conn, prefix, close_database=close_database)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    created = ", ".join(result.created) or "none (all existed)"
    click.echo(f"roles in database {result.database}: {', '.join(result.roles.values())}")
    click.echo(f"created: {created}")
    if result.database_closed:
        click.echo(f"database {result.database}: connect and temporary revoked from PUBLIC")
        if result.large_objects_closed:
            click.echo("large-object creation revoked from PUBLIC")
        else:
            click.echo(
                "large-object creation NOT revoked: only a superuser can (rerun as one);"
                " see docs/security.md"
            )


def _grant(
    login: str, scope: str, subject_id: str, prefix: str, dsn: str | None, as_json: bool
) -> None:
    with warehouse.connected(resolve_dsn(dsn)) as conn, _role_errors():
        grant, is_new = grant_reader(conn, login, scope, subject_id, prefix)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({**grant.as_dict(), "created": is_new}))
        return
    state = "granted" if is_new else "already granted"
    click.echo(f"{login} may read {scope} {subject_id}'s rows ({state})")


@click.command(name="grant-tenant")
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
    connected login's OID, so no SQL the login sends (set, reset, set role) widens it, and a
    login dropped and created again (or renamed into its name) starts with nothing. Exit 1
    when LOGIN does not exist, cannot log in, is a superuser or has CREATEROLE, CREATEDB,
    BYPASSRLS or REPLICATION, or is a member of the loader, transformer, operator or
    trusted-application role; the message names the reason.
    """
    _grant(login, "tenant", tenant_id, prefix, dsn, as_json)


@click.command(name="grant-publisher")
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


@click.command(name="revoke")
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
    with warehouse.connected(resolve_dsn(dsn)) as conn, _role_errors():
        removed = revoke_reader(conn, login, scope, tenant_id or publisher_id, prefix)  # type: ignore[arg-type]
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


@click.command(name="grants")
@click.option("--login", help="Only this login's grants.")
@click.option(
    "--orphaned",
    is_flag=True,
    help="Only the grants of logins dropped since (nobody can use them).",
)
@click.option(
    "--remove-orphaned",
    is_flag=True,
    help="Delete the grants of logins dropped since, and list what was deleted.",
)
@dsn_option
@json_option
@database_errors
def grants_command(
    login: str | None, orphaned: bool, remove_orphaned: bool, dsn: str | None, as_json: bool
) -> None:
    """List which login may read which tenant's or publisher's rows.

    A grant belongs to the login's identity (its OID): a renamed login keeps its grants
    (listed under the new name); a dropped login's grants are orphaned, and a new login of
    the same name does not get them. Orphaned grants are marked `orphaned`.
    """
    if remove_orphaned and (login or orphaned):
        raise click.UsageError("--remove-orphaned takes no --login or --orphaned")
    with warehouse.connected(resolve_dsn(dsn)) as conn, _role_errors():
        if remove_orphaned:
            grants: list[ReaderGrant] = remove_orphaned_grants(conn)
        else:
            grants = list_grants(conn, login, orphaned)
    if as_json:
        click.echo(json.dumps([grant.as_dict() for grant in grants]))
        return
    if not grants:
        click.echo("no grants")
    verb = "removed\t" if remove_orphaned else ""
    for grant in grants:
        mark = "\torphaned" if grant.orphaned else ""
        click.echo(
            f"{verb}{grant.login}\t{grant.scope}\t{grant.subject_id}"
            f"\t{grant.granted_at:%Y-%m-%d %H:%M}{mark}"
        )


@click.command(name="prices")
@click.argument("table", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--seed",
    "seed_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("seeds/model_prices.csv"),
    show_default=True,
    help="The model price seed to refresh (kept: every row already there).",
)
@click.option(
    "--source-commit",
    required=True,
    metavar="SHA",
    help="The Langfuse commit the table comes from, recorded on each new row.",
)
@json_option
def prices_command(table: Path, seed_path: Path, source_commit: str, as_json: bool) -> None:
    """Refresh the model price seed from a newer copy of Langfuse's price table (TABLE).

    Rows whose prices changed upstream are added with their `updatedAt` date as `valid_from`;
    no row is removed, so calls made before a change keep their price. Then `dbt seed`.
    """
    try:
        before, after = refresh(table, seed_path, source_commit)
    except PriceTableError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps({"seed": str(seed_path), "rows_before": before, "rows_after": after}))
    else:
        click.echo(f"{seed_path}: {before} rows before, {after} after")
