"""`agent-loader dashboards build`: the login's grants decide what a site holds.

The module builds the marts on a private database with roles under a prefix unique to this
run, an operator login, a publisher login granted `pub-big` and a login with no grant, then
runs each site's queries (dashboards/sources/warehouse/*.sql, as Evidence's `npm run sources`
would) as those logins. The Evidence build itself does not finish on machines without access
to extensions.duckdb.org (docs/dashboards.md), so the browser test is not here yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from loader.dashboards import build as sites
from loader.errors import DashboardsBuildFailed
from tests.conftest import REPO, Database, Dbt, Server, run_loader
from tests.factories import marketplace_event, write_ndjson

NOW = datetime.now(timezone.utc).replace(microsecond=0)
PREFIX = f"aa_d{uuid.uuid4().hex[:8]}_"
GROUPS = ("loader", "transformer", "bi_operator", "bi_publisher", "bi_tenant", "bi_trusted_app")
LOGINS = {name: f"{PREFIX}{name}_login" for name in ("operator", "publisher", "nobody")}


def test_build_without_node_says_what_to_install_and_exits_2(db: Database) -> None:
    env = {**db.env, "PATH": "/nonexistent"}
    result = subprocess.run(
        [sys.executable, "-m", "loader", "dashboards", "build"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert "Node.js" in result.stderr and "install" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_publisher_site_has_only_the_publisher_queries_and_its_portal() -> None:
    publisher = sites.SITES["publisher"]
    assert publisher.pages == {"publisher-portal.md": "index.md"}
    assert publisher.queries and all(q.startswith("publisher_") for q in publisher.queries)
    for query in publisher.queries:
        text = (sites.PROJECT / "sources" / sites.SOURCE / query).read_text()
        marts = {word for word in text.split() if word.startswith("marts.")}
        assert marts and all(mart.endswith("_shared") for mart in marts), (query, marts)
    operator = sites.SITES["operator"]
    assert set(publisher.queries) < set(operator.queries)
    assert all((sites.PROJECT / "pages" / page).is_file() for page in operator.pages)


def events() -> list[dict]:
    """pub-big: six tenants (above the suppression threshold); pub-small: two tenants."""
    records: list[dict] = []
    for publisher, tenants in (("pub-big", range(1, 7)), ("pub-small", (1, 7))):
        for number in tenants:
            tenant = f"tenant-{number}"
            common = {"publisher_id": publisher, "tenant_id": tenant, "agent_id": f"{publisher}-a"}
            records.append(
                marketplace_event(
                    id=f"{publisher}-{tenant}-install",
                    event_type="install",
                    timestamp=(NOW - timedelta(hours=50)).isoformat(),
                    **common,
                )
            )
            for i in range(4):
                records.append(
                    marketplace_event(
                        id=f"{publisher}-{tenant}-done-{i}",
                        event_type="agent_completed" if i else "agent_errored",
                        timestamp=(NOW - timedelta(hours=30 + i)).isoformat(),
                        properties={"duration_ms": 900, "cost_usd": 0.5, "error_type": "boom"},
                        **common,
                    )
                )
    return records


@dataclass
class Warehouse:
    database: Database


@pytest.fixture(scope="module")
def warehouse(
    server: Server, module_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    folder: Path = tmp_path_factory.mktemp("dashboards")
    run_loader(module_db, "roles", "--prefix", PREFIX)
    admin = module_db.connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"create role {LOGINS['operator']} login in role {PREFIX}bi_operator")
            cur.execute(f"create role {LOGINS['publisher']} login")
            cur.execute(f"create role {LOGINS['nobody']} login")
        run_loader(module_db, "grant-publisher", LOGINS["publisher"], "pub-big", "--prefix", PREFIX)
        run_loader(module_db, "load", str(write_ndjson(folder / "events.ndjson", events())))
        dbt = Dbt(module_db, folder / "dbt")
        variables = {"as_of": NOW.date().isoformat(), "role_prefix": PREFIX}
        dbt("build", "--vars", json.dumps(variables))
        yield Warehouse(module_db)
    finally:
        with admin.cursor() as cur:
            names = [*LOGINS.values(), *(f"{PREFIX}{group}" for group in GROUPS)]
            cur.execute(f"drop owned by {', '.join(names)} cascade")
            for name in names:
                cur.execute(f"drop role if exists {name}")
        admin.close()


def rows_as(database: Database, login: str, query: str) -> tuple[list[str], list[tuple]]:
    conn = sites.connect_as(database.dsn, login)
    try:
        with conn.cursor() as cur:
            cur.execute((sites.PROJECT / "sources" / sites.SOURCE / query).read_text())
            return [column.name for column in cur.description or ()], cur.fetchall()
    finally:
        conn.close()


@pytest.mark.dbt
def test_the_logins_grants_pick_the_site(warehouse: Warehouse) -> None:
    dsn = warehouse.database.dsn
    assert sites.login_site(dsn, LOGINS["operator"])[0] == "operator"
    audience, connection = sites.login_site(dsn, LOGINS["publisher"])
    assert (audience, connection["user"]) == ("publisher", LOGINS["publisher"])
    with pytest.raises(DashboardsBuildFailed, match="reads neither"):
        sites.login_site(dsn, LOGINS["nobody"])


@pytest.mark.dbt
def test_a_publishers_site_holds_no_other_publishers_row_and_no_tenant_row(
    warehouse: Warehouse,
) -> None:
    database = warehouse.database
    for query in sites.SITES["publisher"].queries:
        columns, rows = rows_as(database, LOGINS["publisher"], query)
        assert "tenant_id" not in columns, query
        publishers = {row[columns.index("publisher_id")] for row in rows}
        assert publishers <= {"pub-big"}, (query, publishers)
        # The same query as the operator sees pub-small: the filter is the login's, not the SQL's.
        _, operator_rows = rows_as(database, LOGINS["operator"], query)
        assert len(operator_rows) >= len(rows), query
    columns, rows = rows_as(database, LOGINS["publisher"], "publisher_dashboard.sql")
    assert [row[columns.index("publisher_id")] for row in rows] == ["pub-big"]
    # 6 tenants x 4 invocations = 24, published to the nearest multiple of publish_count_step (5).
    assert rows[0][columns.index("total_invocations")] == 25
    columns, rows = rows_as(database, LOGINS["operator"], "publisher_dashboard.sql")
    assert sorted(row[columns.index("publisher_id")] for row in rows) == ["pub-big", "pub-small"]


@pytest.mark.dbt
def test_every_operator_query_runs_as_the_operator(warehouse: Warehouse) -> None:
    for query in sites.SITES["operator"].queries:
        rows_as(warehouse.database, LOGINS["operator"], query)
    columns, rows = rows_as(warehouse.database, LOGINS["operator"], "platform_daily.sql")
    total = sum(row[columns.index("invocations")] for row in rows)
    assert total == 32  # 8 publisher-tenant pairs x 4 invocations
