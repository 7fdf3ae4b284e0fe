"""Database roles: who may write `raw`, who builds the models, and who reads the marts.

`create_roles` creates five NOLOGIN group roles (named with a prefix, default `aa_`, because
roles are cluster-wide while a warehouse is one database) and grants them what they need in
the current database. Real users and BI service accounts are LOGIN roles granted one group:

    create role metabase_acme login password '...' in role aa_bi_tenant;

| role | can |
| --- | --- |
| `<prefix>loader` | read and write the tables of `raw` (load, purge); nothing else |
| `<prefix>transformer` | read `raw`, create the dbt schemas and own everything in them |
| `<prefix>bi_operator` | read the marts (every row: its policies are `using (true)`) |
| `<prefix>bi_publisher` | read the `*_shared` publisher marts, its own publisher's rows |
| `<prefix>bi_tenant` | read the tenant-level marts, its own tenant's rows |

The BI grants on the marts themselves, and the row-level security policies, are applied by
dbt after it (re)builds each mart (`macros/security.sql`), because dbt recreates tables; here
the BI roles get only `connect` on the database (and `usage` on `marts` if it exists). Every
statement is idempotent: rerun after `agent-loader init` migrates or when roles are missing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

DEFAULT_PREFIX = "aa_"
ROLE_SUFFIXES = ("loader", "transformer", "bi_operator", "bi_publisher", "bi_tenant")
BI_SUFFIXES = ("bi_operator", "bi_publisher", "bi_tenant")
DBT_SCHEMAS = ("staging", "intermediate", "marts", "seeds")

_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class RoleConfigError(ValueError):
    """The prefix cannot make valid role names."""


@dataclass
class RolesResult:
    prefix: str
    roles: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    database: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def role_names(prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """The five role names for a prefix: {'loader': 'aa_loader', ...}."""
    if not _PREFIX.match(prefix):
        raise RoleConfigError(
            f"role prefix must be lowercase letters, digits and underscores, got {prefix!r}"
        )
    return {suffix: f"{prefix}{suffix}" for suffix in ROLE_SUFFIXES}


def create_roles(conn: psycopg2.extensions.connection, prefix: str = DEFAULT_PREFIX) -> RolesResult:
    """Create (or repair) the roles and grant their database-level privileges, in one commit.

    Needs a role with CREATEROLE that owns (or may grant on) schema `raw`: the one that ran
    `agent-loader init`. Default privileges are set for that role, so tables a later
    migration adds to `raw` are granted too.
    """
    names = role_names(prefix)
    result = RolesResult(prefix=prefix, roles=names)
    ident = {suffix: sql.Identifier(name) for suffix, name in names.items()}
    with conn.cursor() as cur:
        cur.execute("select current_database()")
        result.database = cur.fetchone()[0]
        database = sql.Identifier(result.database)
        for suffix, name in names.items():
            cur.execute("select 1 from pg_roles where rolname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create role {} nologin").format(ident[suffix]))
                result.created.append(name)
            # Repair a role that exists with too much power: no BI role may bypass RLS.
            cur.execute(
                sql.SQL(
                    "alter role {} nosuperuser nocreatedb nocreaterole nobypassrls noreplication"
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
