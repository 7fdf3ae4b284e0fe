"""`agent-loader roles`, `grant-tenant`, `grant-publisher`, `revoke` and `grants` without dbt:
what they record, which roles they touch, and how they refuse (exit codes, one line)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Database, run_loader

GROUPS = ("loader", "transformer", "bi_operator", "bi_publisher", "bi_tenant", "bi_trusted_app")


@pytest.fixture
def prefix(db: Database) -> Iterator[str]:
    """A unique role prefix, and a login `<prefix>login`; all dropped afterwards."""
    prefix = f"aa_g{uuid.uuid4().hex[:8]}_"
    db.query(f"create role {prefix}login login")
    yield prefix
    names = [f"{prefix}login", *(f"{prefix}{group}" for group in GROUPS)]
    existing = [
        row[0] for row in db.query("select rolname from pg_roles where rolname = any(%s)", (names,))
    ]
    db.query(f"drop owned by {', '.join(existing)} cascade")
    for name in existing:
        db.query(f"drop role {name}")


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
