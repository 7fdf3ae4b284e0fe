"""Database roles: who may write `raw`, who builds the models, who reads the marts, and which
tenant's or publisher's rows each reader may see.

`create_roles` creates seven NOLOGIN group roles (named with a prefix, default `aa_`, because
roles are cluster-wide while a warehouse is one database) and grants them what they need in
the current database:

| role | can |
| --- | --- |
| `<prefix>loader` | read and write the tables of `raw` (load, purge); nothing else |
| `<prefix>transformer` | read `raw`, create the dbt schemas and own everything in them |
| `<prefix>bi_operator` | read the marts (every row: its policies are `using (true)`) |
| `<prefix>bi_publisher` | read the `*_shared` marts: rows of the publishers granted |
| `<prefix>bi_tenant` | read the tenant-level marts: rows of the tenants granted |
| `<prefix>bi_trusted_app` | read both for the session's `app.tenant_id` / `app.publisher_id` |
| `<prefix>alerts` | `agent-loader alerts`: read its seed and marts (every row), write `alerts` |

`bi_trusted_app` is for an application server that pools one login and picks the tenant per
request; never give it to a person or a BI tool with a SQL editor.

Who a tenant or publisher reader is comes from the login, not from anything the session can
change: `grant_reader` records (login, tenant or publisher) in `access.reader_grants` (owned
by the role that ran `agent-loader roles`; readers may only read their own rows) and grants
the login the group role; the policies dbt puts on the marts (`macros/security.sql`) keep the
rows whose tenant / publisher is granted to `session_user`, which `set role`, `reset` and
`set app.*` do not change.

A grant is bound to the login's identity, its OID, not its name: a login dropped and
created again, or another login renamed to its name, gets none of the old login's rows
(`list_grants(orphaned=True)` lists the grants of dropped logins, `remove_orphaned_grants`
deletes them). `grant_reader` refuses a
login that could step out of row-level security or into the build (superuser, CREATEROLE,
CREATEDB, BYPASSRLS, REPLICATION, or a member of a role that is not a reader).

The build must not run code a reader wrote: `create_roles` revokes `create` on schema
`public` from PUBLIC (the default before PostgreSQL 15, and in every database upgraded from
one) and pins the search path of the loader and transformer roles to the project's schemas
and `pg_catalog` (the dbt profile pins it for the build's session too; the build checks the
schemas it reads on start, `macros/access_checks.sql`).

`create_roles` never alters a role it did not create: it marks its roles with a comment and
refuses to adopt a role of the same name without it. `close_database=True` also revokes
`connect` and `temporary` on the database from PUBLIC, so only the project's roles (and
superusers) can connect, and, run by a superuser, revokes the functions that create large
objects from PUBLIC (nothing in the project uses them). Every statement is idempotent: rerun
after `agent-loader init` migrates or when roles are missing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg2.extensions
from psycopg2 import sql

from loader.ingest.warehouse import one_row

DEFAULT_PREFIX = "aa_"
ROLE_SUFFIXES = (
    "loader",
    "transformer",
    "bi_operator",
    "bi_publisher",
    "bi_tenant",
    "bi_trusted_app",
    "alerts",
)
BI_SUFFIXES = ("bi_operator", "bi_publisher", "bi_tenant", "bi_trusted_app")
DBT_SCHEMAS = ("staging", "intermediate", "marts", "seeds")
ACCESS_SCHEMA = "access"
# The search path of the loader and transformer roles: the project's schemas after
# pg_catalog, never `public` or `"$user"`, where a reader might create a function the
# build would call. The dbt profile sets the same path for the build's session.
PINNED_SEARCH_PATH = ("pg_catalog", "raw", ACCESS_SCHEMA, *DBT_SCHEMAS)
# Group roles a reader must not be a member of: each reads more than a reader may.
NOT_FOR_READERS = ("loader", "transformer", "bi_operator", "bi_trusted_app", "alerts")
# Role attributes that let a login step out of row-level security or out of being a reader.
ESCAPING_ATTRIBUTES = {
    "rolsuper": "is a superuser (row-level security does not apply to it)",
    "rolbypassrls": "has BYPASSRLS (row-level security does not apply to it)",
    "rolcreaterole": "has CREATEROLE (it could grant itself any non-superuser role)",
    "rolcreatedb": "has CREATEDB (it could create databases of its own)",
    "rolreplication": "has REPLICATION (it could stream every row of the server)",
}
# Server-side large-object functions that create one: `roles --close-database` revokes them
# from PUBLIC (a reader could otherwise fill the disk with large objects).
LARGE_OBJECT_CREATORS = (
    "lo_creat(integer)",
    "lo_create(oid)",
    "lo_import(text)",
    "lo_import(text, oid)",
    "lo_from_bytea(oid, bytea)",
)
# The comment that marks a role as one `agent-loader roles` created (and may repair).
ROLE_MARKER = "agent-analytics: created by agent-loader roles"

# The OID of the connected login, which `set role` and `set session authorization` (for a
# non-superuser) do not change; the same expression is in macros/security.sql.
SESSION_USER_OID = "(select oid from pg_catalog.pg_roles where rolname = session_user)"

Scope = Literal["tenant", "publisher"]
SCOPE_GROUP: dict[str, str] = {"tenant": "bi_tenant", "publisher": "bi_publisher"}

_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class RoleConfigError(ValueError):
    """The prefix cannot make valid role names."""


class RoleRefused(ValueError):
    """A role the command would have to alter, or grant to, is not one it may touch."""


@dataclass
class RolesResult:
    prefix: str
    roles: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    database: str = ""
    database_closed: bool = False
    large_objects_closed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReaderGrant:
    """A recorded grant. `login` is the login's current name, or the name it had when
    granted when the login no longer exists (`orphaned`: nobody can use the grant)."""

    login: str
    scope: str
    subject_id: str
    granted_at: datetime | None = None
    role_oid: int | None = None
    orphaned: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["granted_at"] = self.granted_at.isoformat() if self.granted_at else None
        return data


def role_names(prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """The seven role names for a prefix: {'loader': 'aa_loader', ...}."""
    if not _PREFIX.match(prefix):
        raise RoleConfigError(
            f"role prefix must be lowercase letters, digits and underscores, got {prefix!r}"
        )
    return {suffix: f"{prefix}{suffix}" for suffix in ROLE_SUFFIXES}


def create_roles(
    conn: psycopg2.extensions.connection,
    prefix: str = DEFAULT_PREFIX,
    close_database: bool = False,
) -> RolesResult:
    """Create (or repair) the roles, the grants table and the database-level privileges, in
    one commit.

    Needs a role with CREATEROLE that owns (or may grant on) schema `raw`: the one that ran
    `agent-loader init`. Default privileges are set for that role, so tables a later
    migration adds to `raw` are granted too. Raises RoleRefused, changing nothing, when a
    role of one of the names exists without the mark of this command.
    """
    names = role_names(prefix)
    result = RolesResult(prefix=prefix, roles=names)
    ident = {suffix: sql.Identifier(name) for suffix, name in names.items()}
    with conn.cursor() as cur:
        cur.execute("select current_database()")
        result.database = one_row(cur)[0]
        _refuse_foreign_roles(cur, names)
        result.created = _create_or_repair_roles(cur, names, ident)
        _grant_database(cur, sql.Identifier(result.database), ident)
        if close_database:
            # Only the project's roles (granted above) and superusers may connect.
            cur.execute(
                sql.SQL("revoke connect, temporary on database {} from public").format(
                    sql.Identifier(result.database)
                )
            )
            result.database_closed = True
            result.large_objects_closed = _revoke_large_object_creation(cur)
        _close_public_schema(cur, [ident[suffix] for suffix in (*BI_SUFFIXES, "alerts")])
        for suffix in ("loader", "transformer", "alerts"):
            cur.execute(
                sql.SQL("alter role {} set search_path = {}").format(
                    ident[suffix], sql.SQL(", ").join(map(sql.Identifier, PINNED_SEARCH_PATH))
                )
            )
        _grant_raw(cur, ident)
        _create_grants_table(cur, ident)
        _grant_dbt_schemas(cur, ident)
        _grant_alerts(cur, ident["alerts"])
    conn.commit()
    return result


def _refuse_foreign_roles(cur: psycopg2.extensions.cursor, names: dict[str, str]) -> None:
    """RoleRefused when a role of one of `names` exists without this command's mark."""
    cur.execute(
        "select rolname, shobj_description(oid, 'pg_authid') from pg_roles where rolname = any(%s)",
        (list(names.values()),),
    )
    foreign = sorted(name for name, comment in cur.fetchall() if comment != ROLE_MARKER)
    if foreign:
        raise RoleRefused(
            f"role(s) {', '.join(foreign)} exist but were not created by agent-loader roles,"
            " which never alters a role it did not create: choose another --prefix, or"
            " drop or rename them. A role an earlier agent-loader created can be adopted"
            f" with: comment on role NAME is '{ROLE_MARKER}'"
        )


def _create_or_repair_roles(
    cur: psycopg2.extensions.cursor, names: dict[str, str], ident: dict[str, sql.Identifier]
) -> list[str]:
    """Create the missing roles (marked as this command's) and strip every one of powers it
    must not have; returns the names created."""
    created = []
    for suffix, name in names.items():
        cur.execute("select 1 from pg_roles where rolname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("create role {} nologin").format(ident[suffix]))
            cur.execute(
                sql.SQL("comment on role {} is {}").format(ident[suffix], sql.Literal(ROLE_MARKER))
            )
            created.append(name)
        # Repair a role of ours that was given too much power: none may bypass RLS.
        cur.execute(
            sql.SQL(
                "alter role {} nologin nosuperuser nocreatedb nocreaterole nobypassrls"
                " noreplication"
            ).format(ident[suffix])
        )
    return created


def _grant_database(
    cur: psycopg2.extensions.cursor, database: sql.Identifier, ident: dict[str, sql.Identifier]
) -> None:
    """Every role connects; the loader and transformer make temporary tables; the
    transformer creates dbt's schemas (staging, intermediate, marts, seeds) when missing."""
    everyone = sql.SQL(", ").join(ident.values())
    cur.execute(sql.SQL("grant connect on database {} to {}").format(database, everyone))
    cur.execute(
        sql.SQL("grant temporary on database {} to {}, {}").format(
            database, ident["loader"], ident["transformer"]
        )
    )
    cur.execute(sql.SQL("grant create on database {} to {}").format(database, ident["transformer"]))


def _grant_raw(cur: psycopg2.extensions.cursor, ident: dict[str, sql.Identifier]) -> None:
    """raw: the loader writes it, the transformer reads it, nobody else sees it; tables a
    later migration adds are granted the same (default privileges)."""
    cur.execute("revoke all on schema raw from public")
    cur.execute(
        sql.SQL("grant usage on schema raw to {}, {}").format(ident["loader"], ident["transformer"])
    )
    cur.execute(
        sql.SQL("grant select, insert, update, delete on all tables in schema raw to {}").format(
            ident["loader"]
        )
    )
    cur.execute(
        sql.SQL("grant usage, select on all sequences in schema raw to {}").format(ident["loader"])
    )
    cur.execute(
        sql.SQL("grant select on all tables in schema raw to {}").format(ident["transformer"])
    )
    # The load lock (migration 0010) is the loader's alone.
    cur.execute("select to_regclass('raw.load_lock') is not null")
    if one_row(cur)[0]:
        cur.execute(sql.SQL("revoke all on raw.load_lock from {}").format(ident["transformer"]))
    cur.execute(
        sql.SQL(
            "alter default privileges in schema raw"
            " grant select, insert, update, delete on tables to {}"
        ).format(ident["loader"])
    )
    cur.execute(
        sql.SQL(
            "alter default privileges in schema raw grant usage, select on sequences to {}"
        ).format(ident["loader"])
    )
    cur.execute(
        sql.SQL("alter default privileges in schema raw grant select on tables to {}").format(
            ident["transformer"]
        )
    )


def _grant_dbt_schemas(cur: psycopg2.extensions.cursor, ident: dict[str, sql.Identifier]) -> None:
    """The dbt schemas, if dbt already made them: the transformer builds in them, the BI
    roles may look into marts only (dbt's on-run-end hook grants the same each build)."""
    cur.execute("select nspname from pg_namespace where nspname = any(%s)", (list(DBT_SCHEMAS),))
    existing = {row[0] for row in cur.fetchall()}
    for schema in DBT_SCHEMAS:
        if schema not in existing:
            continue
        cur.execute(
            sql.SQL("grant usage, create on schema {} to {}").format(
                sql.Identifier(schema), ident["transformer"]
            )
        )
    if "marts" in existing:
        cur.execute(
            sql.SQL("grant usage on schema marts to {}").format(
                sql.SQL(", ").join(ident[suffix] for suffix in (*BI_SUFFIXES, "alerts"))
            )
        )


def _grant_alerts(cur: psycopg2.extensions.cursor, alerts: sql.Identifier) -> None:
    """The alerts service: writes the tables of schema `alerts` (migration 0014; no delete,
    no DDL), reads the loader's schema version (it refuses an old schema) and the rules
    seed. The marts its rules read are granted by the build's access hook (meta.bi_access
    `alerts` in dbt_project.yml), with a policy that shows it every row; nothing else."""
    cur.execute("revoke all on schema alerts from public")
    cur.execute(sql.SQL("grant usage on schema alerts to {}").format(alerts))
    cur.execute(
        sql.SQL("grant select, insert, update on all tables in schema alerts to {}").format(alerts)
    )
    cur.execute(
        sql.SQL(
            "alter default privileges in schema alerts grant select, insert, update on tables to {}"
        ).format(alerts)
    )
    cur.execute(sql.SQL("grant usage on schema raw to {}").format(alerts))
    cur.execute(sql.SQL("grant select on raw.schema_migrations to {}").format(alerts))
    cur.execute("select to_regclass('seeds.alert_rules') is not null")
    if one_row(cur)[0]:
        cur.execute(sql.SQL("grant usage on schema seeds to {}").format(alerts))
        cur.execute(sql.SQL("grant select on seeds.alert_rules to {}").format(alerts))


def _close_public_schema(cur: psycopg2.extensions.cursor, readers: list[sql.Identifier]) -> None:
    """No role but its owner may create in schema `public` (PostgreSQL 15's default; a
    database created by an older version, or upgraded from one, lets everyone).

    Raises RoleRefused when PUBLIC keeps `create` there: only the schema's owner (on an
    upgraded database, the bootstrap superuser) can revoke it, once.
    """
    cur.execute("select to_regnamespace('public') is not null")
    if not one_row(cur)[0]:
        return
    cur.execute("revoke create on schema public from public")
    cur.execute(
        sql.SQL("revoke create on schema public from {}").format(sql.SQL(", ").join(readers))
    )
    cur.execute(
        "select exists (select from pg_namespace, aclexplode(nspacl) as acl"
        " where nspname = 'public' and acl.grantee = 0 and acl.privilege_type = 'CREATE')"
    )
    if one_row(cur)[0]:
        raise RoleRefused(
            "schema public is writable by every role (the default before PostgreSQL 15) and"
            " this role may not change that: run once, as the owner of schema public (a"
            " superuser): revoke create on schema public from public; then rerun"
            " `agent-loader roles`"
        )


def _revoke_large_object_creation(cur: psycopg2.extensions.cursor) -> bool:
    """Revoke the functions that create large objects from PUBLIC; True when done.

    They belong to the bootstrap superuser, so only a superuser can revoke them: for
    another role this changes nothing and returns False (docs/security.md).
    """
    cur.execute("select rolsuper from pg_roles where rolname = current_user")
    if not one_row(cur)[0]:
        return False
    for function in LARGE_OBJECT_CREATORS:
        cur.execute(f"revoke execute on function pg_catalog.{function} from public")
    return True


def _create_grants_table(cur: psycopg2.extensions.cursor, ident: dict[str, sql.Identifier]) -> None:
    """`access.reader_grants`: which login (by OID) may read which tenant's or publisher's
    rows.

    Owned by the role running this (no reader can modify it); readers and the transformer
    (whose policies reference it) may read it, each login only its own rows. `login` is the
    name at grant time, for people; the policies compare `role_oid`. A table made before
    grants were bound to OIDs gets the column here: each row takes the OID of the role
    then named `login`, or 0 (orphaned) when there is none.
    """
    cur.execute(f"create schema if not exists {ACCESS_SCHEMA}")
    cur.execute(
        f"""
        create table if not exists {ACCESS_SCHEMA}.reader_grants (
            role_oid oid not null,
            login name not null,
            scope text not null check (scope in ('tenant', 'publisher')),
            subject_id text not null check (subject_id <> ''),
            granted_at timestamptz not null default now(),
            primary key (role_oid, scope, subject_id)
        )
        """
    )
    cur.execute(
        "select exists (select from pg_attribute"
        " where attrelid = 'access.reader_grants'::regclass and attname = 'role_oid')"
    )
    if not one_row(cur)[0]:
        cur.execute(f"alter table {ACCESS_SCHEMA}.reader_grants add column role_oid oid")
        cur.execute(
            f"update {ACCESS_SCHEMA}.reader_grants as grants"
            " set role_oid = coalesce((select oid from pg_roles where rolname = grants.login), 0)"
        )
        cur.execute(f"alter table {ACCESS_SCHEMA}.reader_grants alter column role_oid set not null")
        cur.execute(
            f"alter table {ACCESS_SCHEMA}.reader_grants drop constraint reader_grants_pkey,"
            " add primary key (role_oid, scope, subject_id)"
        )
    cur.execute(f"revoke all on schema {ACCESS_SCHEMA} from public")
    cur.execute(f"revoke all on {ACCESS_SCHEMA}.reader_grants from public")
    readers = sql.SQL(", ").join(
        ident[suffix] for suffix in ("transformer", "bi_operator", "bi_publisher", "bi_tenant")
    )
    cur.execute(
        sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(ACCESS_SCHEMA), readers)
    )
    cur.execute(
        sql.SQL("grant select on {}.reader_grants to {}").format(
            sql.Identifier(ACCESS_SCHEMA), readers
        )
    )
    cur.execute(f"alter table {ACCESS_SCHEMA}.reader_grants enable row level security")
    cur.execute(f"drop policy if exists own_grants on {ACCESS_SCHEMA}.reader_grants")
    cur.execute(
        f"create policy own_grants on {ACCESS_SCHEMA}.reader_grants for select to public"
        f" using (role_oid = {SESSION_USER_OID})"
    )


def _require_setup(cur: psycopg2.extensions.cursor, group: str) -> None:
    cur.execute("select to_regclass(%s)", (f"{ACCESS_SCHEMA}.reader_grants",))
    if one_row(cur)[0] is None:
        raise RoleRefused(
            f"table {ACCESS_SCHEMA}.reader_grants is missing: run `agent-loader roles` first"
        )
    cur.execute(
        "select shobj_description(oid, 'pg_authid') from pg_roles where rolname = %s", (group,)
    )
    row = cur.fetchone()
    if row is None or row[0] != ROLE_MARKER:
        raise RoleRefused(
            f"role {group} does not exist or was not created by agent-loader roles:"
            " run `agent-loader roles` with the same --prefix first"
        )


def _refuse_non_reader(cur: psycopg2.extensions.cursor, login: str, names: dict[str, str]) -> int:
    """The login's OID, or RoleRefused naming why it cannot be kept to its rows: it is
    missing, cannot log in, is one of the project's roles, has an attribute that escapes
    row-level security or readership, or is a member of a role that reads more."""
    cur.execute(
        "select oid, rolcanlogin, " + ", ".join(ESCAPING_ATTRIBUTES) + " from pg_roles"
        " where rolname = %s",
        (login,),
    )
    row = cur.fetchone()
    if row is None:
        raise RoleRefused(
            f"login role {login!r} does not exist: create it first, e.g."
            f" create role {login} login password '...'"
        )
    oid, can_login, *flags = row
    if login in names.values() or not can_login:
        raise RoleRefused(
            f"{login!r} is not a login role: grant tenants and publishers to the login a"
            " person or BI tool connects as"
        )
    attributes = zip(ESCAPING_ATTRIBUTES.values(), flags, strict=True)
    reasons = [reason for reason, flag in attributes if flag]
    for suffix in NOT_FOR_READERS:
        cur.execute(
            "select to_regrole(%s) is not null and pg_has_role(%s, to_regrole(%s), 'member')",
            (names[suffix], oid, names[suffix]),
        )
        if one_row(cur)[0]:
            reasons.append(f"is a member of {names[suffix]} (it reads more than its rows)")
    if reasons:
        raise RoleRefused(
            f"{login!r} {'; '.join(reasons)}: a reader limited to one tenant or publisher"
            " must be a plain login (create one: create role NAME login password '...')"
        )
    return oid


def grant_reader(
    conn: psycopg2.extensions.connection,
    login: str,
    scope: Scope,
    subject_id: str,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[ReaderGrant, bool]:
    """Let an existing login read one tenant's (or publisher's) rows: record the grant
    (bound to the login's OID) and make the login a member of the tenant (publisher) reader
    role. Returns the grant and whether it is new. Refuses logins that row-level security
    would not bind or that are more than readers."""
    names = role_names(prefix)
    group = names[SCOPE_GROUP[scope]]
    if not subject_id.strip():
        raise RoleRefused(f"the {scope} id must be a non-empty string")
    with conn.cursor() as cur:
        _require_setup(cur, group)
        oid = _refuse_non_reader(cur, login, names)
        cur.execute(
            f"insert into {ACCESS_SCHEMA}.reader_grants (role_oid, login, scope, subject_id)"
            " values (%s, %s, %s, %s) on conflict do nothing returning granted_at",
            (oid, login, scope, subject_id),
        )
        inserted = cur.fetchone()
        cur.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(login)))
    conn.commit()
    granted_at = inserted[0] if inserted else None
    return ReaderGrant(login, scope, subject_id, granted_at, oid), inserted is not None


def _require_grants_table(cur: psycopg2.extensions.cursor) -> None:
    cur.execute("select to_regclass(%s)", (f"{ACCESS_SCHEMA}.reader_grants",))
    if one_row(cur)[0] is None:
        raise RoleRefused(
            f"table {ACCESS_SCHEMA}.reader_grants is missing: run `agent-loader roles` first"
        )


def revoke_reader(
    conn: psycopg2.extensions.connection,
    login: str,
    scope: Scope | None = None,
    subject_id: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> list[ReaderGrant]:
    """Remove a login's grants (one tenant or publisher, or all of them); a login this
    leaves with no grant of a scope leaves that reader role. Returns what was removed (may
    be empty, and then nothing changed). The grants of a dropped login are removed by
    `remove_orphaned_grants`."""
    names = role_names(prefix)
    with conn.cursor() as cur:
        _require_grants_table(cur)
        cur.execute("select oid from pg_roles where rolname = %s", (login,))
        row = cur.fetchone()
        if row is None:
            conn.rollback()
            return []
        oid = row[0]
        cur.execute(
            f"delete from {ACCESS_SCHEMA}.reader_grants"
            " where role_oid = %s and (%s::text is null or scope = %s)"
            " and (%s::text is null or subject_id = %s)"
            " returning login, scope, subject_id, granted_at, role_oid",
            (oid, scope, scope, subject_id, subject_id),
        )
        removed = [ReaderGrant(login, *row[1:]) for row in cur.fetchall()]
        for each_scope, suffix in SCOPE_GROUP.items():
            cur.execute(
                f"select 1 from {ACCESS_SCHEMA}.reader_grants where role_oid = %s and scope = %s",
                (oid, each_scope),
            )
            still_granted = cur.fetchone() is not None
            cur.execute(
                "select 1 from pg_auth_members as m join pg_roles as g on g.oid = m.roleid"
                " where g.rolname = %s and m.member = %s",
                (names[suffix], oid),
            )
            is_member = cur.fetchone() is not None
            revoked_here = any(grant.scope == each_scope for grant in removed)
            if is_member and revoked_here and not still_granted:
                cur.execute(
                    sql.SQL("revoke {} from {}").format(
                        sql.Identifier(names[suffix]), sql.Identifier(login)
                    )
                )
    conn.commit()
    return removed


def list_grants(
    conn: psycopg2.extensions.connection, login: str | None = None, orphaned: bool = False
) -> list[ReaderGrant]:
    """Every recorded grant (or one login's, or only the orphaned ones: of logins dropped
    since), by login, scope and id. A renamed login's grants show its current name."""
    with conn.cursor() as cur:
        _require_grants_table(cur)
        cur.execute(
            f"""
            select coalesce(roles.rolname, grants.login), grants.scope, grants.subject_id,
                grants.granted_at, grants.role_oid, roles.oid is null
            from {ACCESS_SCHEMA}.reader_grants as grants
            left join pg_roles as roles on roles.oid = grants.role_oid
            where (%s::text is null or roles.rolname = %s) and (not %s or roles.oid is null)
            order by 1, 2, 3
            """,
            (login, login, orphaned),
        )
        grants = [ReaderGrant(*row) for row in cur.fetchall()]
    conn.commit()
    return grants


def remove_orphaned_grants(conn: psycopg2.extensions.connection) -> list[ReaderGrant]:
    """Delete the grants of logins that no longer exist (nobody can use them: a new login
    of the same name has another OID) and return them."""
    with conn.cursor() as cur:
        _require_grants_table(cur)
        cur.execute(
            f"delete from {ACCESS_SCHEMA}.reader_grants as grants"
            " where not exists (select from pg_roles where oid = grants.role_oid)"
            " returning login, scope, subject_id, granted_at, role_oid, true"
        )
        removed = sorted(
            (ReaderGrant(*row) for row in cur.fetchall()),
            key=lambda grant: (grant.login, grant.scope, grant.subject_id),
        )
    conn.commit()
    return removed
