"""`agent-loader roles`, `grant-tenant`, `grant-publisher`, `revoke` and `grants` without dbt:
what they record, which roles they touch, and how they refuse (exit codes, one line)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg2.errors
import pytest

from loader.ingest import warehouse
from loader.operations.roles import ROLE_SUFFIXES
from tests.conftest import Database, drop_roles, run_loader
from tests.factories import agent_event, write_ndjson

GROUPS = ROLE_SUFFIXES  # every group role `agent-loader roles` creates


@pytest.fixture
def prefix(db: Database) -> Iterator[str]:
    """A unique role prefix, and a login `<prefix>login`; all dropped afterwards."""
    prefix = f"aa_g{uuid.uuid4().hex[:8]}_"
    db.query(f"create role {prefix}login login")
    yield prefix
    drop_roles(db, [f"{prefix}login", *(f"{prefix}{group}" for group in GROUPS)])


def member_of(db: Database, login: str, group: str) -> bool:
    return bool(
        db.scalar(
            "select exists (select from pg_auth_members as m"
            " join pg_roles as g on g.oid = m.roleid join pg_roles as l on l.oid = m.member"
            " where g.rolname = %s and l.rolname = %s)",
            (group, login),
        )
    )


def test_grants_need_the_roles_first(db, prefix):
    result = run_loader(
        db, "grant-tenant", f"{prefix}login", "tenant-1", "--prefix", prefix, check=False
    )
    assert result.returncode == 1
    assert "run `agent-loader roles` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_grant_list_and_revoke_record_and_move_membership(db, prefix):
    run_loader(db, "roles", "--prefix", prefix)
    login = f"{prefix}login"
    first = run_loader(db, "grant-tenant", login, "tenant-1", "--prefix", prefix, "--json")
    assert json.loads(first.stdout)["created"] is True
    run_loader(db, "grant-tenant", login, "tenant-2", "--prefix", prefix)
    run_loader(db, "grant-publisher", login, "pub-1", "--prefix", prefix)
    assert member_of(db, login, f"{prefix}bi_tenant")
    assert member_of(db, login, f"{prefix}bi_publisher")
    listed = json.loads(run_loader(db, "grants", "--login", login, "--json").stdout)
    assert [(g["scope"], g["subject_id"]) for g in listed] == [
        ("publisher", "pub-1"),
        ("tenant", "tenant-1"),
        ("tenant", "tenant-2"),
    ]
    text = run_loader(db, "grants").stdout
    assert f"{login}\ttenant\ttenant-2\t" in text

    run_loader(db, "revoke", login, "--publisher", "pub-1", "--prefix", prefix)
    assert not member_of(db, login, f"{prefix}bi_publisher")
    assert member_of(db, login, f"{prefix}bi_tenant")
    run_loader(db, "revoke", login, "--tenant", "tenant-1", "--prefix", prefix)
    assert member_of(db, login, f"{prefix}bi_tenant")
    assert db.query("select subject_id from access.reader_grants") == [("tenant-2",)]


def test_revoke_refuses_two_scopes_and_nothing_to_revoke(db, prefix):
    run_loader(db, "roles", "--prefix", prefix)
    login = f"{prefix}login"
    both = run_loader(
        db, "revoke", login, "--tenant", "t", "--publisher", "p", "--prefix", prefix, check=False
    )
    assert both.returncode == 2 and "not both" in both.stderr
    nothing = run_loader(db, "revoke", login, "--prefix", prefix, check=False)
    assert nothing.returncode == 1
    assert f"{login} had no grant to revoke" in nothing.stderr


def test_grant_refuses_an_empty_id(db, prefix):
    run_loader(db, "roles", "--prefix", prefix)
    result = run_loader(
        db, "grant-publisher", f"{prefix}login", " ", "--prefix", prefix, check=False
    )
    assert result.returncode == 1 and "non-empty" in result.stderr
    assert db.scalar("select count(*) from access.reader_grants") == 0


def test_revoking_nothing_changes_nothing(db, prefix):
    run_loader(db, "roles", "--prefix", prefix)
    login = f"{prefix}login"
    db.query(f"grant {prefix}bi_tenant to {login}")
    result = run_loader(db, "revoke", login, "--prefix", prefix, check=False)
    assert result.returncode == 1
    assert member_of(db, login, f"{prefix}bi_tenant")


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ("superuser", "is a superuser"),
        ("createrole", "has CREATEROLE"),
        ("createdb", "has CREATEDB"),
        ("bypassrls", "has BYPASSRLS"),
        ("replication", "has REPLICATION"),
    ],
)
def test_grant_refuses_a_login_whose_attributes_escape_readership(db, prefix, attributes, reason):
    run_loader(db, "roles", "--prefix", prefix)
    login = f"{prefix}login"
    db.query(f"alter role {login} {attributes}")
    for scope in ("tenant", "publisher"):
        result = run_loader(db, f"grant-{scope}", login, "x-1", "--prefix", prefix, check=False)
        assert result.returncode == 1, scope
        assert f"{login!r} {reason}" in result.stderr, scope
        assert "Traceback" not in result.stderr
    assert db.scalar("select count(*) from access.reader_grants") == 0
    assert not member_of(db, login, f"{prefix}bi_tenant")


@pytest.mark.parametrize("group", ["bi_operator", "loader", "transformer", "bi_trusted_app"])
def test_grant_refuses_a_member_of_a_role_that_reads_more(db, prefix, group):
    run_loader(db, "roles", "--prefix", prefix)
    login = f"{prefix}login"
    # Membership through another role counts too.
    db.query(f"create role {prefix}team; grant {prefix}{group} to {prefix}team")
    try:
        db.query(f"grant {prefix}team to {login}")
        result = run_loader(db, "grant-tenant", login, "t-1", "--prefix", prefix, check=False)
        assert result.returncode == 1
        assert f"is a member of {prefix}{group}" in result.stderr
        assert db.scalar("select count(*) from access.reader_grants") == 0
    finally:
        db.query(f"drop role {prefix}team")


def test_grants_belong_to_the_login_not_its_name(db, prefix):
    run_loader(db, "roles", "--prefix", prefix)
    login = f"{prefix}login"
    run_loader(db, "grant-tenant", login, "tenant-1", "--prefix", prefix)
    first_oid = db.scalar("select oid from pg_roles where rolname = %s", (login,))
    assert db.query("select role_oid, login from access.reader_grants") == [(first_oid, login)]

    # Renamed: the grant follows the role and is listed under its new name.
    db.query(f"alter role {login} rename to {prefix}renamed")
    listed = json.loads(run_loader(db, "grants", "--json").stdout)
    assert [(g["login"], g["subject_id"], g["orphaned"]) for g in listed] == [
        (f"{prefix}renamed", "tenant-1", False)
    ]
    # A new login of the old name has nothing.
    db.query(f"create role {login} login")
    assert json.loads(run_loader(db, "grants", "--login", login, "--json").stdout) == []

    # Dropped: the grant is orphaned; nobody gets it; --remove-orphaned deletes it.
    db.query(f"drop role {prefix}renamed")
    orphaned = json.loads(run_loader(db, "grants", "--orphaned", "--json").stdout)
    assert [(g["login"], g["subject_id"], g["orphaned"]) for g in orphaned] == [
        (login, "tenant-1", True)
    ]
    assert "\torphaned" in run_loader(db, "grants").stdout
    run_loader(db, "grant-tenant", login, "tenant-2", "--prefix", prefix)
    removed = run_loader(db, "grants", "--remove-orphaned").stdout
    (line,) = removed.splitlines()
    assert line.startswith(f"removed\t{login}\ttenant\ttenant-1\t")
    assert line.endswith("\torphaned")
    assert db.query("select login, subject_id from access.reader_grants") == [(login, "tenant-2")]
    assert run_loader(db, "grants", "--orphaned").stdout == "no grants\n"


def test_a_grants_table_from_before_oids_is_bound_to_the_current_roles(db, prefix):
    run_loader(db, "roles", "--prefix", prefix)
    login = f"{prefix}login"
    # The table as an earlier `agent-loader roles` made it, with one live and one dead login.
    db.query(
        "drop table access.reader_grants;"
        " create table access.reader_grants (login name not null, scope text not null,"
        " subject_id text not null, granted_at timestamptz not null default now(),"
        " primary key (login, scope, subject_id));"
        f" insert into access.reader_grants (login, scope, subject_id)"
        f" values ('{login}', 'tenant', 't-1'), ('{prefix}gone', 'tenant', 't-2')"
    )
    run_loader(db, "roles", "--prefix", prefix)
    oid = db.scalar("select oid from pg_roles where rolname = %s", (login,))
    assert db.query("select login, role_oid from access.reader_grants order by subject_id") == [
        (login, oid),
        (f"{prefix}gone", 0),
    ]
    orphaned = json.loads(run_loader(db, "grants", "--orphaned", "--json").stdout)
    assert [g["login"] for g in orphaned] == [f"{prefix}gone"]


def test_roles_closes_schema_public_and_pins_the_services_search_path(db, prefix):
    # The default before PostgreSQL 15, and in every database upgraded from one.
    db.query("grant create on schema public to public")
    run_loader(db, "roles", "--prefix", prefix)
    login = f"{prefix}login"
    assert not db.scalar("select has_schema_privilege(%s, 'public', 'create')", (login,))
    for group in (f"{prefix}bi_tenant", f"{prefix}bi_publisher", f"{prefix}bi_operator"):
        assert not db.scalar("select has_schema_privilege(%s, 'public', 'create')", (group,))
    settings = db.query(
        "select r.rolname, s.setconfig from pg_db_role_setting as s"
        " join pg_roles as r on r.oid = s.setrole where r.rolname like %s order by 1",
        (f"{prefix}%",),
    )
    path = "search_path=pg_catalog, raw, access, staging, intermediate, marts, seeds"
    assert settings == [
        (f"{prefix}alerts", [path]),
        (f"{prefix}loader", [path]),
        (f"{prefix}transformer", [path]),
    ]


def test_close_database_revokes_large_object_creation_from_readers(db, prefix):
    login = f"{prefix}login"
    reader = Database({**db.params, "user": login})
    assert reader.scalar("select lo_create(0)") > 0  # possible before
    closed = json.loads(
        run_loader(db, "roles", "--prefix", prefix, "--close-database", "--json").stdout
    )
    assert closed["large_objects_closed"] is True
    run_loader(db, "grant-tenant", login, "t-1", "--prefix", prefix)
    for function in ("lo_create(0)", "lo_creat(-1)", "lo_from_bytea(0, 'x')"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            reader.query(f"select {function}")
    assert reader.scalar("select count(*) from pg_largeobject_metadata") == 1  # the one before


def test_a_reader_holding_the_old_migration_key_does_not_block_init(db, prefix):
    """`init` serialises on `raw.schema_migrations`, which readers cannot lock; it used an
    advisory lock on a fixed key that any login could hold, and `init` then waited forever."""
    run_loader(db, "roles", "--prefix", prefix, "--close-database")
    login = f"{prefix}login"
    run_loader(db, "grant-tenant", login, "t-1", "--prefix", prefix)
    reader = Database({**db.params, "user": login}).connect()
    reader.autocommit = True
    try:
        with reader.cursor() as cur:
            cur.execute("select pg_advisory_lock(%s)", (warehouse.MIGRATE_LOCK_KEY,))
            cur.execute("begin")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("lock table raw.schema_migrations in access share mode")
            cur.execute("rollback")
        result = subprocess.run(
            [sys.executable, "-m", "loader", "init"],
            env=db.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "nothing to do" in result.stdout, result.stdout
    finally:
        reader.close()


def test_a_reader_cannot_take_or_block_the_load_lock(db, prefix, tmp_path):
    run_loader(db, "roles", "--prefix", prefix, "--close-database")
    login = f"{prefix}login"
    run_loader(db, "grant-tenant", login, "t-1", "--prefix", prefix)
    db.query(f"create role {prefix}etl login in role {prefix}loader")
    try:
        reader = Database({**db.params, "user": login}).connect()
        reader.autocommit = True
        with reader.cursor() as cur:
            # The advisory lock key the loader used before: any login could hold it.
            cur.execute("select pg_advisory_lock(4857301113207001)")
            cur.execute("begin")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("lock table raw.load_lock in access share mode")
            cur.execute("rollback")
        events = write_ndjson(tmp_path / "a.ndjson", [agent_event(event_id="e1")])
        etl = Database({**db.params, "user": f"{prefix}etl"})
        result = run_loader(etl, "load", str(events), "--no-wait", check=False)
        reader.close()
        assert result.returncode == 0, result.stderr
        assert db.scalar("select count(*) from raw.agent_events") == 1
        # Two loaders still exclude each other (exit 4 with --no-wait).
        holder = warehouse.acquire_load_lock(etl.dsn, wait=False)
        try:
            busy = run_loader(etl, "load", str(events), "--no-wait", check=False)
        finally:
            holder.close()
        assert busy.returncode == 4
        assert "another `agent-loader load` is running" in busy.stderr
    finally:
        db.query(f"drop owned by {prefix}etl; drop role {prefix}etl")
