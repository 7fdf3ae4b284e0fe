"""Tenant isolation in PostgreSQL itself: every promise is checked by connecting as the role.

`agent-loader roles` creates the group roles under a prefix unique to this run (roles are
cluster-wide; the test server is shared), the test makes a LOGIN member of each, loads the
events as the loader's member, runs `dbt build` as the transformer (`set role` in the dbt
profile, so the transformer owns every table dbt builds), and then reads as the BI roles:

- the tenant role sees only its own tenant's rows, and none with `app.tenant_id` unset;
- the publisher role sees only its own publisher's `*_shared` marts, none with
  `app.publisher_id` unset, no tenant-level mart and no tenant id; aggregates over fewer than
  `min_tenants_per_aggregate` tenants are null there;
- the operator reads every mart row; no BI role can read raw, staging or intermediate, owns a
  mart, or bypasses row-level security;
- all of it again after a second `dbt build` and after `dbt build --full-refresh`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from tests.conftest import Database, Dbt, Server, run_loader
from tests.factories import agent_event, marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

NOW = datetime.now(timezone.utc).replace(microsecond=0)
PREFIX = f"aa_t{uuid.uuid4().hex[:8]}_"
GROUPS = ("loader", "transformer", "bi_operator", "bi_publisher", "bi_tenant")
LOGINS = {group: f"{PREFIX}{group}_login" for group in GROUPS}
VARS = ("--vars", json.dumps({"as_of": NOW.date().isoformat(), "role_prefix": PREFIX}))

TENANT_MARTS = ("agent_installs", "tenant_revenue", "tenant_revenue_monthly", "fct_invocations")
SHARED_MARTS = (
    "publisher_dashboard_shared",
    "publisher_daily_shared",
    "publisher_tool_usage_shared",
    "agent_active_installs_shared",
    "insights_shared",
)
OPERATOR_ONLY = (
    "publisher_dashboard",
    "publisher_daily",
    "publisher_tool_usage",
    "agent_active_installs",
    "insights",
    "insights_history",
    "platform_daily",
    "tenant_retention_monthly",
    "fct_conversations",
    "conversations_hourly",
    "agent_resolution_times",
    "error_types_ranked",
)
HIDDEN = (
    "raw.agent_events",
    "raw.marketplace_events",
    "raw.quarantine",
    "raw.load_batches",
    "raw.purges",
    "staging.stg_agent_events__events",
    "staging.stg_marketplace__events",
    "intermediate.int_invocations_enriched",
    "intermediate.int_conversations_rolled_up",
)


def events() -> list[dict]:
    """pub-big: six tenants in every group of metrics; pub-small: two tenants, one rating."""
    records: list[dict] = []

    def add(event_type: str, publisher: str, tenant: str, hours: float, **properties) -> None:
        records.append(
            marketplace_event(
                id=f"{publisher}-{tenant}-{event_type}-{len(records)}",
                event_type=event_type,
                publisher_id=publisher,
                tenant_id=tenant,
                agent_id=f"{publisher}-agent",
                timestamp=(NOW - timedelta(hours=hours)).isoformat(),
                properties=properties,
            )
        )

    invocation = {"input_tokens": 10, "output_tokens": 5, "duration_ms": 900, "cost_usd": 0.5}
    for publisher, tenants in (("pub-big", range(1, 7)), ("pub-small", (1, 7))):
        for tenant_number in tenants:
            tenant = f"tenant-{tenant_number}"
            add("install", publisher, tenant, 50)
            for i in range(6):
                add(
                    "agent_completed",
                    publisher,
                    tenant,
                    30 + i,
                    tool_calls=["search"],
                    **invocation,
                )
            add("agent_errored", publisher, tenant, 20, error_type="boom", **invocation)
            add("tool_failed", publisher, tenant, 21, tool_name="search", error="x")
            add("tool_called", publisher, tenant, 22, tool_name="search")
            if publisher == "pub-big" or tenant_number == 1:
                add("user_feedback", publisher, tenant, 10, rating=2, comment=None)
    conversation = [
        agent_event(conversation_id="conv-1", event_type=kind, timestamp=NOW.isoformat())
        for kind in ("conversation_start", "message", "completion")
    ]
    return records + conversation


@dataclass
class Setup:
    database: Database
    dbt: Dbt
    roles_json: dict


def as_role(database: Database, login: str) -> Database:
    return Database({**database.params, "user": login})


def connect(database: Database, login: str, **settings: str) -> psycopg2.extensions.connection:
    conn = as_role(database, login).connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        for name, value in settings.items():
            cur.execute("select set_config(%s, %s, false)", (f"app.{name}", value))
    return conn


def rows(conn: psycopg2.extensions.connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def refused(conn: psycopg2.extensions.connection, relation: str) -> bool:
    try:
        rows(conn, f"select * from {relation} limit 1")
    except psycopg2.errors.InsufficientPrivilege:
        return True
    return False


@pytest.fixture(scope="module")
def setup(
    server: Server, module_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    folder: Path = tmp_path_factory.mktemp("security")
    roles = run_loader(module_db, "roles", "--prefix", PREFIX, "--json")
    admin = module_db.connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            for group, login in LOGINS.items():
                cur.execute(f"create role {login} login in role {PREFIX}{group}")
        run_loader(
            as_role(module_db, LOGINS["loader"]),
            "load",
            str(write_ndjson(folder / "events.ndjson", events())),
        )
        dbt = Dbt(as_role(module_db, LOGINS["transformer"]), folder / "dbt")
        profile = dbt.profiles_dir / "profiles.yml"
        profile.write_text(
            profile.read_text().replace(
                "      threads: 2", f"      threads: 2\n      role: {PREFIX}transformer"
            )
        )
        dbt("build", *VARS)
        yield Setup(module_db, dbt, json.loads(roles.stdout))
    finally:
        with admin.cursor() as cur:
            names = [*LOGINS.values(), *(f"{PREFIX}{group}" for group in GROUPS)]
            cur.execute(f"drop owned by {', '.join(names)} cascade")
            for name in names:
                cur.execute(f"drop role if exists {name}")
        admin.close()


def count(database: Database, relation: str, where: str = "true") -> int:
    return int(database.scalar(f"select count(*) from marts.{relation} where {where}"))


def check_isolation(setup: Setup) -> None:
    """Every isolation promise, connecting as each BI role."""
    db = setup.database
    tenant = connect(db, LOGINS["bi_tenant"])
    tenant_1 = connect(db, LOGINS["bi_tenant"], tenant_id="tenant-1")
    publisher = connect(db, LOGINS["bi_publisher"])
    big = connect(db, LOGINS["bi_publisher"], publisher_id="pub-big")
    operator = connect(db, LOGINS["bi_operator"])
    try:
        for mart in TENANT_MARTS:
            assert rows(tenant, f"select count(*) from marts.{mart}") == [(0,)], mart
            seen = rows(tenant_1, f"select distinct tenant_id from marts.{mart}")
            assert seen == [("tenant-1",)], mart
            visible = rows(tenant_1, f"select count(*) from marts.{mart}")[0][0]
            assert visible == count(db, mart, "tenant_id = 'tenant-1'") > 0, mart
            assert refused(publisher, f"marts.{mart}") and refused(big, f"marts.{mart}"), mart
        for mart in SHARED_MARTS:
            assert rows(publisher, f"select count(*) from marts.{mart}") == [(0,)], mart
            seen = rows(big, f"select distinct publisher_id from marts.{mart}")
            assert seen == [("pub-big",)], mart
            assert refused(tenant_1, f"marts.{mart}"), mart
        for mart in OPERATOR_ONLY:
            assert refused(tenant_1, f"marts.{mart}"), mart
            assert refused(big, f"marts.{mart}"), mart
        for mart in (*TENANT_MARTS, *SHARED_MARTS, *OPERATOR_ONLY):
            seen = rows(operator, f"select count(*) from marts.{mart}")[0][0]
            assert seen == count(db, mart), mart
        for relation in HIDDEN:
            for conn in (tenant_1, big, operator):
                assert refused(conn, relation), relation
    finally:
        for conn in (tenant, tenant_1, publisher, big, operator):
            conn.close()


def test_roles_are_created_once_plain_and_without_login(setup):
    assert setup.roles_json["created"] == [f"{PREFIX}{group}" for group in GROUPS]
    again = run_loader(setup.database, "roles", "--prefix", PREFIX, "--json")
    assert json.loads(again.stdout)["created"] == []
    flags = setup.database.query(
        "select rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb"
        " from pg_roles where rolname like %s and rolname not like '%%login'",
        (f"{PREFIX}%",),
    )
    assert sorted(flags) == sorted(
        (f"{PREFIX}{group}", False, False, False, False, False) for group in GROUPS
    )


def test_isolation_after_the_first_build(setup):
    check_isolation(setup)


def test_no_bi_role_owns_a_mart_or_bypasses_row_level_security(setup):
    owners = setup.database.query(
        "select distinct tableowner from pg_tables where schemaname = 'marts'"
    )
    assert owners == [(f"{PREFIX}transformer",)]
    for group in ("bi_operator", "bi_publisher", "bi_tenant"):
        login = LOGINS[group]
        owns = setup.database.scalar(
            "select count(*) from pg_tables where schemaname = 'marts'"
            " and pg_has_role(%s, tableowner, 'usage')",
            (login,),
        )
        assert owns == 0, group
        assert (
            setup.database.scalar(
                "select rolbypassrls or rolsuper from pg_roles where rolname = %s", (login,)
            )
            is False
        )


def test_every_mart_with_tenant_or_publisher_rows_has_row_level_security(setup):
    unprotected = setup.database.query(
        """
        select c.relname
        from pg_class as c
        where
            c.relnamespace = 'marts'::regnamespace
            and c.relkind = 'r'
            and exists (
                select from pg_attribute as a
                where a.attrelid = c.oid and a.attname in ('tenant_id', 'publisher_id')
            )
            and (
                not c.relrowsecurity
                or not exists (select from pg_policy as p where p.polrelid = c.oid)
            )
        """
    )
    assert unprotected == []


def test_publisher_facing_marts_have_no_tenant_ids_or_text(setup):
    columns = setup.database.query(
        "select table_name, column_name from information_schema.columns"
        " where table_schema = 'marts' and table_name = any(%s)"
        " and (column_name like '%%tenant_id%%' or column_name like '%%message%%'"
        " or column_name like '%%comment%%')",
        (list(SHARED_MARTS),),
    )
    assert columns == []


def test_aggregates_over_too_few_tenants_are_null_for_publishers(setup):
    small = connect(setup.database, LOGINS["bi_publisher"], publisher_id="pub-small")
    big = connect(setup.database, LOGINS["bi_publisher"], publisher_id="pub-big")
    try:
        sql = (
            "select total_invocations, unique_tenants, avg_satisfaction, p95_response_time_ms,"
            " active_installs, has_suppressed_metrics from marts.publisher_dashboard_shared"
        )
        assert rows(small, sql) == [(None, None, None, None, None, True)]
        assert rows(big, sql) == setup.database.query(
            "select total_invocations, unique_tenants, avg_satisfaction, p95_response_time_ms,"
            " active_installs, false from marts.publisher_dashboard where publisher_id = 'pub-big'"
        )
        assert rows(big, sql)[0][0] == 42
        daily = rows(
            small,
            "select count(*) filter (where invocations is not null)"
            " from marts.publisher_daily_shared",
        )
        assert daily == [(0,)]
        tools = rows(small, "select calls, failure_rate from marts.publisher_tool_usage_shared")
        assert tools == [(None, None)]
        assert rows(small, "select active_installs from marts.agent_active_installs_shared") == [
            (None,)
        ]
        assert rows(big, "select active_installs from marts.agent_active_installs_shared") == [(6,)]
    finally:
        small.close()
        big.close()


def test_loader_writes_raw_and_reads_nothing_else(setup):
    assert setup.database.scalar("select count(*) from raw.load_batches") == 1
    loader = connect(setup.database, LOGINS["loader"])
    try:
        assert rows(loader, "select count(*) from raw.marketplace_events")[0][0] > 0
        for relation in (
            "marts.publisher_dashboard",
            "marts.tenant_revenue",
            "staging.stg_marketplace__events",
        ):
            assert refused(loader, relation), relation
    finally:
        loader.close()


def test_isolation_survives_a_second_build_and_a_full_refresh(setup):
    setup.dbt("build", *VARS)
    check_isolation(setup)
    setup.dbt("build", *VARS, "--full-refresh")
    check_isolation(setup)
