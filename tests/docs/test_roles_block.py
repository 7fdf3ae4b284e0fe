"""docs/operating.md's "Roles and grants" block runs as written, line after line, in one shell.

It runs against a scratch database (unique name, created and dropped here; PGDATABASE names
it, as an operator's would). Roles are cluster-wide and the test server is shared, so the
block's `aa_` is replaced by a prefix unique to this run (AGENT_ANALYTICS_ROLE_PREFIX, which
`roles` and the grant commands read) and each login it creates gets that prefix too; the
`'...'` passwords become a value. Every role is dropped afterwards.

The last line, `dbt build`, is left out: a full build takes minutes, and the same build as
the transformer, after the same commands, is what tests/e2e/test_security.py runs and checks
reader by reader. test_commands.py still checks that the line parses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Database, Server, client_tool, run_loader
from tests.docs.blocks import REPO, code_blocks

OPERATING = REPO / "docs" / "operating.md"
_LOGIN = re.compile(r"create role (\w+) login")


def roles_block() -> str:
    (block,) = code_blocks(OPERATING, "sh", "Roles and grants")
    return block


def as_run_here(block: str, prefix: str) -> tuple[str, dict[str, str]]:
    """The block with this run's role names and a password, minus `dbt build`; and the
    logins it creates, by their names in the document."""
    logins = {name: f"{prefix}{name}" for name in _LOGIN.findall(block)}
    lines = []
    for line in block.replace("'...'", "'docs-test-password'").splitlines():
        if line.startswith("dbt "):
            continue
        command, _, rest = line.partition(" ")
        rest = rest.replace("aa_", prefix)
        for name, renamed in logins.items():
            rest = re.sub(rf"\b{name}\b", renamed, rest)
        lines.append(f"{command} {rest}")
    return "\n".join(lines) + "\n", logins


@pytest.fixture
def scratch(server: Server) -> Iterator[tuple[Database, str]]:
    """An empty database of its own and a role prefix unique to this run; every role under
    the prefix is dropped afterwards."""
    database = server.create()
    prefix = f"aa_d{uuid.uuid4().hex[:8]}_"
    yield database, prefix
    admin = Database({**database.params, "dbname": server.params.get("dbname", "postgres")})
    names = [
        row[0]
        for row in admin.query(
            "select rolname from pg_roles where starts_with(rolname, %s)", (prefix,)
        )
    ]
    if names:
        database.query(f"drop owned by {', '.join(names)} cascade")
    server.drop(database)
    for name in names:
        admin.query(f"drop role {name}")


def test_the_block_creates_every_login_it_grants() -> None:
    """The check the runner below relies on: each login a grant names is created first."""
    block = roles_block()
    created = set(_LOGIN.findall(block))
    granted = set(re.findall(r"agent-loader grant-\w+ (\w+)", block))
    assert granted and granted <= created


def test_the_roles_and_grants_block_runs_as_written(scratch: tuple[Database, str]) -> None:
    database, prefix = scratch
    script, logins = as_run_here(roles_block(), prefix)
    assert set(logins) == {"etl", "dbt", "bi_ops", "metabase_globex", "acme_analyst"}
    psql = Path(client_tool("psql"))
    path = [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    if psql.is_absolute():
        path.insert(0, str(psql.parent))
    env = {
        **database.env,
        "AGENT_ANALYTICS_ROLE_PREFIX": prefix,
        "PATH": os.pathsep.join(path),
    }
    # Stop at the first line that fails, and name it.
    preamble = "set -e\ntrap 'echo \"failed: $BASH_COMMAND\" >&2' ERR\n"
    result = subprocess.run(
        ["bash", "-c", preamble + script],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    # `agent-loader grants`, in the block, listed both grants before the revoke.
    metabase, acme = logins["metabase_globex"], logins["acme_analyst"]
    assert f"{metabase}\ttenant\ttenant-globex\t" in result.stdout
    assert f"{acme}\tpublisher\tpub-acme\t" in result.stdout
    # After the block: the revoke took the tenant grant; the publisher's grant stays.
    listed = json.loads(run_loader(database, "grants", "--json").stdout)
    assert [(g["login"], g["scope"], g["subject_id"]) for g in listed] == [
        (acme, "publisher", "pub-acme")
    ]
    members = database.query(
        "select l.rolname, g.rolname from pg_auth_members as m"
        " join pg_roles as g on g.oid = m.roleid join pg_roles as l on l.oid = m.member"
        " where starts_with(l.rolname, %s) and l.rolcanlogin order by 1, 2",
        (prefix,),
    )
    assert members == [
        (acme, f"{prefix}bi_publisher"),
        (logins["bi_ops"], f"{prefix}bi_operator"),
        (logins["dbt"], f"{prefix}transformer"),
        (logins["etl"], f"{prefix}loader"),
    ]
