"""The database side: connecting, the versioned raw schema, the load lock and the ledger."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from loader.errors import DatabaseError, LockBusy, SchemaOutOfDate

MIGRATE_LOCK_KEY = 4_857_301_113_207_002
"""Advisory lock held by `agent-loader init` while it migrates."""

LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The raw schema's migrations, in order: `loader/ingest/migrations/NNNN_name.sql`."""
    found = []
    for entry in resources.files("loader.ingest.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda migration: migration.version)


def libpq_configured() -> bool:
    """True when the environment names a server the libpq way (PGHOST, PGPORT, ...)."""
    return any(os.environ.get(name) for name in LIBPQ_VARIABLES)


def connect(dsn: str) -> psycopg2.extensions.connection:
    """Open a connection; a refused or failed connection becomes a one-line DatabaseError."""
    try:
        conn = psycopg2.connect(dsn, application_name="agent-loader")
    except psycopg2.Error as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DatabaseError(
            f"cannot connect to PostgreSQL ({detail}); set --dsn or the PG* variables"
            " (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE)"
        ) from None
    return conn


@contextmanager
def connected(dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """`connect`, closed when the block ends however it ends (psycopg2's own `with conn`
    ends a transaction and leaves the connection open)."""
    conn = connect(dsn)
    try:
        yield conn
    finally:
        conn.close()


def one_row(cur: psycopg2.extensions.cursor) -> tuple[Any, ...]:
    """The row of a statement that always returns one (an aggregate, `select exists`,
    `insert ... returning` without `on conflict`): none is a bug, never a state to handle."""
    row = cur.fetchone()
    if row is None:
        raise LookupError("a statement that returns one row returned none")
    return row


def schema_version(conn: psycopg2.extensions.connection) -> int:
    """The raw schema's applied version; 0 when `init` has never run."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass('raw.schema_migrations') is not null")
        if not one_row(cur)[0]:
            conn.rollback()
            return 0
        cur.execute("select coalesce(max(version), 0) from raw.schema_migrations")
        version = one_row(cur)[0]
    conn.rollback()
    return version


def migrate(conn: psycopg2.extensions.connection) -> list[Migration]:
    """Create or upgrade the raw schema; returns the migrations applied now (none on a rerun).

    Each migration runs in its own transaction together with its row in
    `raw.schema_migrations`, holding that table locked, so two `init` runs never race and an
    interrupted upgrade leaves the schema at the last complete version. The lock is the
    table's, which only the loader's owner can take: an advisory lock on a fixed key could be
    held by any login to stop every upgrade. The very first `init` (no table yet, so no
    reader has been granted anything) creates the table under an advisory lock.
    """
    with conn.cursor() as cur:
        cur.execute("select to_regclass('raw.schema_migrations') is not null")
        if not one_row(cur)[0]:
            cur.execute("select pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
            cur.execute("create schema if not exists raw")
            cur.execute(
                """
                create table if not exists raw.schema_migrations (
                    version integer primary key,
                    name text not null,
                    applied_at timestamptz not null default now()
                )
                """
            )
        conn.commit()
    applied = []
    for migration in migrations():
        with conn.cursor() as cur:
            cur.execute(_MIGRATION_LOCK)
            cur.execute(
                "select 1 from raw.schema_migrations where version = %s", (migration.version,)
            )
            if cur.fetchone():
                conn.rollback()
                continue
            cur.execute(migration.sql)
            cur.execute(
                "insert into raw.schema_migrations (version, name) values (%s, %s)",
                (migration.version, migration.name),
            )
        conn.commit()
        applied.append(migration)
    return applied


# Conflicts with itself: one `init` applies a migration at a time.
_MIGRATION_LOCK = "lock table raw.schema_migrations in share row exclusive mode"


def require_current_schema(conn: psycopg2.extensions.connection) -> None:
    expected = migrations()[-1].version
    found = schema_version(conn)
    if found < expected:
        raise SchemaOutOfDate(
            f"the raw schema is at version {found}, this loader needs version {expected}:"
            " run `agent-loader init` first"
        )


def acquire_load_lock(dsn: str, wait: bool) -> psycopg2.extensions.connection:
    """Hold the load lock until the returned connection is closed; without `wait`, raise
    LockBusy at once if another load holds it.

    The lock is `raw.load_lock` in exclusive mode, in a transaction of its own connection
    (the load commits file by file): only a role that may write `raw` can take it, so no
    reader can stop the loader (migration 0010). The transaction holds a lock and nothing
    else (no snapshot, no transaction id), so it does not hold back vacuum.
    """
    holder = connect(dsn)
    try:
        with holder.cursor() as cur:
            # Told apart from the connections that load in pg_stat_activity.
            cur.execute("set application_name = 'agent-loader load lock'")
            # An operator's timeouts must not end the lock (or the wait for it) midway.
            cur.execute(
                "set lock_timeout = 0; set statement_timeout = 0;"
                " set idle_in_transaction_session_timeout = 0"
            )
            cur.execute("lock table raw.load_lock in exclusive mode" + ("" if wait else " nowait"))
    except BaseException as error:  # the lock is not held: its connection goes
        holder.close()
        if isinstance(error, psycopg2.errors.LockNotAvailable):
            raise LockBusy("another `agent-loader load` is running; nothing was loaded") from None
        raise
    return holder


@contextmanager
def load_lock(dsn: str, wait: bool) -> Iterator[psycopg2.extensions.connection]:
    """`acquire_load_lock`, released when the block ends however it ends."""
    holder = acquire_load_lock(dsn, wait)
    try:
        yield holder
    finally:
        holder.close()


def reacquire_load_lock(
    lock: psycopg2.extensions.connection, dsn: str
) -> psycopg2.extensions.connection:
    """The load lock after a lost connection (`load --follow` reconnecting): `lock` when its
    connection still holds it, else the lock taken again on a new one (waiting for it)."""
    try:
        with lock.cursor() as cur:
            cur.execute("select 1")
        return lock
    except psycopg2.Error:
        lock.close()
        return acquire_load_lock(dsn, wait=True)


def recent_batches(conn: psycopg2.extensions.connection, limit: int) -> list[dict[str, Any]]:
    """The newest ledger rows, newest first."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(
            """
            select batch_id, path, sha256, bytes, file_format, status, records_read, loaded,
                   duplicates, conflicts, quarantined, error, started_at, finished_at
            from raw.load_batches
            order by batch_id desc
            limit %s
            """,
            (limit,),
        )
        rows = [dict(row) for row in cur.fetchall()]
    conn.rollback()
    return rows
