"""Database roles: who may write `raw`, who builds the models, who reads the marts, and which
tenant's or publisher's rows each reader may see.

`create_roles` creates six NOLOGIN group roles (named with a prefix, default `aa_`, because
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

`bi_trusted_app` is for an application server that pools one login and picks the tenant per
request; never give it to a person or a BI tool with a SQL editor.

Who a tenant or publisher reader is comes from the login, not from anything the session can
change: `grant_reader` records (login, tenant or publisher) in `access.reader_grants` (owned
by the role that ran `agent-loader roles`; readers may only read their own rows) and grants
the login the group role; the policies dbt puts on the marts (`macros/security.sql`) keep the
rows whose tenant / publisher is granted to `session_user`, which `set role`, `reset` and
`set app.*` do not change.

`create_roles` never alters a role it did not create: it marks its roles with a comment and
refuses to adopt a role of the same name without it. `close_database=True` also revokes
`connect` and `temporary` on the database from PUBLIC, so only the project's roles (and
superusers) can connect. Every statement is idempotent: rerun after `agent-loader init`
migrates or when roles are missing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg2.extensions
from psycopg2 import sql

DEFAULT_PREFIX = "aa_"
ROLE_SUFFIXES = (
    "loader",
    "transformer",
    "bi_operator",
    "bi_publisher",
    "bi_tenant",
    "bi_trusted_app",
)
BI_SUFFIXES = ("bi_operator", "bi_publisher", "bi_tenant", "bi_trusted_app")
DBT_SCHEMAS = ("staging", "intermediate", "marts", "seeds")
ACCESS_SCHEMA = "access"
# The comment that marks a role as one `agent-loader roles` created (and may repair).
ROLE_MARKER = "agent-analytics: created by agent-loader roles"

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReaderGrant:
    login: str
    scope: str
    subject_id: str
    granted_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["granted_at"] = self.granted_at.isoformat() if self.granted_at else None
        return data


def role_names(prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """The six role names for a prefix: {'loader': 'aa_loader', ...}."""
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
        result.database = cur.fetchone()[0]
        database = sql.Identifier(result.database)
        cur.execute(
            "select rolname, shobj_description(oid, 'pg_authid') from pg_roles"
            " where rolname = any(%s)",
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
        for suffix, name in names.items():
            cur.execute("select 1 from pg_roles where rolname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create role {} nologin").format(ident[suffix]))
                cur.execute(
                    sql.SQL("comment on role {} is {}").format(
                        ident[suffix], sql.Literal(ROLE_MARKER)
                    )
                )
                result.created.append(name)
            # Repair a role of ours that was given too much power: none may bypass RLS.
            cur.execute(
                sql.SQL(
                    "alter role {} nologin nosuperuser nocreatedb nocreaterole nobypassrls"
                    " noreplication"
                ).format(ident[suffix])
            )
        everyone = sql.SQL(", ").join(ident.values())
        cur.execute(sql.SQL("grant connect on database {} to {}").format(database, everyone))
        cur.execute(
            sql.SQL("grant temporary on database {} to {}, {}").format(
                database, ident["loader"], ident["transformer"]
            )
        )
        # dbt creates its schemas (staging, intermediate, marts, seeds) when missing.
        cur.execute(
            sql.SQL("grant create on database {} to {}").format(database, ident["transformer"])
        )
        if close_database:
            # Only the project's roles (granted above) and superusers may connect.
            cur.execute(
                sql.SQL("revoke connect, temporary on database {} from public").format(database)
            )
            result.database_closed = True

        # raw: the loader writes it, the transformer reads it, nobody else sees it.
        cur.execute("revoke all on schema raw from public")
        cur.execute(
            sql.SQL("grant usage on schema raw to {}, {}").format(
                ident["loader"], ident["transformer"]
            )
        )
        cur.execute(
            sql.SQL(
                "grant select, insert, update, delete on all tables in schema raw to {}"
            ).format(ident["loader"])
        )
        cur.execute(
            sql.SQL("grant usage, select on all sequences in schema raw to {}").format(
                ident["loader"]
            )
        )
        cur.execute(
            sql.SQL("grant select on all tables in schema raw to {}").format(ident["transformer"])
        )
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

        _create_grants_table(cur, ident)

        # The dbt schemas, if dbt already made them: the transformer builds in them, the BI
        # roles may look into marts only (dbt's on-run-end hook grants the same each build).
        cur.execute(
            "select nspname from pg_namespace where nspname = any(%s)", (list(DBT_SCHEMAS),)
        )
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
                    sql.SQL(", ").join(ident[suffix] for suffix in BI_SUFFIXES)
                )
            )
    conn.commit()
    return result


def _create_grants_table(cur: psycopg2.extensions.cursor, ident: dict[str, sql.Identifier]) -> None:
    """`access.reader_grants`: which login may read which tenant's or publisher's rows.

    Owned by the role running this (no reader can modify it); readers and the transformer
    (whose policies reference it) may read it, each login only its own rows.
    """
    cur.execute(f"create schema if not exists {ACCESS_SCHEMA}")
    cur.execute(
        f"""
        create table if not exists {ACCESS_SCHEMA}.reader_grants (
            login name not null,
            scope text not null check (scope in ('tenant', 'publisher')),
            subject_id text not null check (subject_id <> ''),
            granted_at timestamptz not null default now(),
            primary key (login, scope, subject_id)
        )
        """
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
        " using (login = session_user)"
    )


def _require_setup(cur: psycopg2.extensions.cursor, group: str) -> None:
    cur.execute("select to_regclass(%s)", (f"{ACCESS_SCHEMA}.reader_grants",))
    if cur.fetchone()[0] is None:
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


def grant_reader(
    conn: psycopg2.extensions.connection,
    login: str,
    scope: Scope,
    subject_id: str,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[ReaderGrant, bool]:
    """Let an existing login read one tenant's (or publisher's) rows: record the grant and
    make the login a member of the tenant (publisher) reader role. Returns the grant and
    whether it is new. Refuses logins that row-level security would not bind."""
    names = role_names(prefix)
    group = names[SCOPE_GROUP[scope]]
    if not subject_id.strip():
        raise RoleRefused(f"the {scope} id must be a non-empty string")
    with conn.cursor() as cur:
        _require_setup(cur, group)
        cur.execute(
            "select rolcanlogin, rolsuper or rolbypassrls from pg_roles where rolname = %s",
            (login,),
        )
        row = cur.fetchone()
        if row is None:
            raise RoleRefused(
                f"login role {login!r} does not exist: create it first, e.g."
                f" create role {login} login password '...'"
            )
        can_login, bypasses = row
        if login in names.values() or not can_login:
            raise RoleRefused(
                f"{login!r} is not a login role: grant tenants and publishers to the login a"
                " person or BI tool connects as"
            )
        if bypasses:
            raise RoleRefused(
                f"{login!r} is a superuser or has BYPASSRLS: row-level security would not"
                " apply to it, so it cannot be limited to one tenant or publisher"
            )
        cur.execute(
            f"insert into {ACCESS_SCHEMA}.reader_grants (login, scope, subject_id)"
            " values (%s, %s, %s) on conflict do nothing returning granted_at",
            (login, scope, subject_id),
        )
        inserted = cur.fetchone()
        cur.execute(sql.SQL("grant {} to {}").format(sql.Identifier(group), sql.Identifier(login)))
    conn.commit()
    granted_at = inserted[0] if inserted else None
    return ReaderGrant(login, scope, subject_id, granted_at), inserted is not None


def revoke_reader(
    conn: psycopg2.extensions.connection,
    login: str,
    scope: Scope | None = None,
    subject_id: str | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> list[ReaderGrant]:
    """Remove a login's grants (one tenant or publisher, or all of them); a login this
    leaves with no grant of a scope leaves that reader role. Returns what was removed (may
    be empty, and then nothing changed)."""
    names = role_names(prefix)
    with conn.cursor() as cur:
        cur.execute("select to_regclass(%s)", (f"{ACCESS_SCHEMA}.reader_grants",))
        if cur.fetchone()[0] is None:
            raise RoleRefused(
                f"table {ACCESS_SCHEMA}.reader_grants is missing: run `agent-loader roles` first"
            )
        cur.execute(
            f"delete from {ACCESS_SCHEMA}.reader_grants"
            " where login = %s and (%s::text is null or scope = %s)"
            " and (%s::text is null or subject_id = %s)"
            " returning login, scope, subject_id, granted_at",
            (login, scope, scope, subject_id, subject_id),
        )
        removed = [ReaderGrant(*row) for row in cur.fetchall()]
        for each_scope, suffix in SCOPE_GROUP.items():
            cur.execute(
                f"select 1 from {ACCESS_SCHEMA}.reader_grants where login = %s and scope = %s",
                (login, each_scope),
            )
            still_granted = cur.fetchone() is not None
            cur.execute(
                "select 1 from pg_auth_members as m"
                " join pg_roles as g on g.oid = m.roleid"
                " join pg_roles as l on l.oid = m.member"
                " where g.rolname = %s and l.rolname = %s",
                (names[suffix], login),
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
    conn: psycopg2.extensions.connection, login: str | None = None
) -> list[ReaderGrant]:
    """Every recorded grant (or one login's), by login, scope and id."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass(%s)", (f"{ACCESS_SCHEMA}.reader_grants",))
        if cur.fetchone()[0] is None:
            raise RoleRefused(
                f"table {ACCESS_SCHEMA}.reader_grants is missing: run `agent-loader roles` first"
            )
        cur.execute(
            f"select login, scope, subject_id, granted_at from {ACCESS_SCHEMA}.reader_grants"
            " where %s::text is null or login = %s order by login, scope, subject_id",
            (login, login),
        )
        grants = [ReaderGrant(*row) for row in cur.fetchall()]
    conn.commit()
    return grants
