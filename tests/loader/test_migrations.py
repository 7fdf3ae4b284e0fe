"""`init` is versioned: an older raw schema migrates forward without losing data."""

from __future__ import annotations

from click.testing import CliRunner

from loader.cli import main
from loader.ingest import warehouse
from tests.conftest import run_loader


def test_schema_at_version_1_migrates_to_current_keeping_its_rows(empty_db):
    conn = empty_db.connect()
    with conn.cursor() as cur:  # what release 0.1's `init` left behind
        first = warehouse.migrations()[0]
        cur.execute("create schema raw")
        cur.execute(
            "create table raw.schema_migrations (version integer primary key, name text not null,"
            " applied_at timestamptz not null default now())"
        )
        cur.execute(first.sql)
        cur.execute(
            "insert into raw.schema_migrations (version, name) values (1, %s)", (first.name,)
        )
        cur.execute(
            "insert into raw.load_batches (path, status, loader_version, started_at, finished_at)"
            " values ('old.ndjson', 'loaded', '0.1.0', now(), now())"
        )
    conn.commit()
    assert warehouse.schema_version(conn) == 1
    conn.close()

    result = run_loader(empty_db, "init", "--json")
    latest = warehouse.migrations()[-1].version
    assert f'"schema_version": {latest}' in result.stdout
    assert empty_db.scalar("select path from raw.load_batches") == "old.ndjson"
    assert empty_db.scalar("select count(*) from raw.schema_migrations") == len(
        warehouse.migrations()
    )


def _open_connections(database) -> int:
    """Sessions on `database` other than the one asking."""
    return database.scalar(
        "select count(*) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
        (database.name,),
    )


def test_failing_migration_in_init_leaves_no_connection_open(empty_db):
    with empty_db.connect() as conn, conn.cursor() as cur:  # migration 0001 will collide
        cur.execute("create schema raw; create table raw.load_batches (id integer)")
    conn.close()

    result = CliRunner().invoke(main, ["init", "--dsn", empty_db.dsn])  # in this process

    assert result.exit_code == 3, result.output
    assert 'relation "load_batches" already exists' in result.output
    assert _open_connections(empty_db) == 0


def test_init_with_privacy_options_leaves_no_connection_open(empty_db):
    result = CliRunner().invoke(main, ["init", "--dsn", empty_db.dsn, "--redact", "mask"])

    assert result.exit_code == 0, result.output
    assert empty_db.scalar("select redact from raw.privacy_settings") == "mask"
    assert _open_connections(empty_db) == 0
