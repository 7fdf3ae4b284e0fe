"""Tenant isolation in PostgreSQL itself, tried as a reader with a SQL prompt would.

`agent-loader roles --close-database` creates the group roles under a prefix unique to this
run (roles are cluster-wide; the test server is shared); the test makes real LOGIN roles,
grants tenants and publishers to them with `agent-loader grant-tenant` / `grant-publisher`,
loads the events as the loader's login, runs `dbt build` as the transformer (`set role` in
the dbt profile, so the transformer owns every table dbt builds), and then reads as each
login, trying the bypasses: session settings, `set role`, `reset`, views, functions,
catalog statistics, `explain`, the snapshot, seeds, staging, intermediate, raw and the
grants table. All of it again after a second `dbt build` and a `--full-refresh`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from loader.operations.roles import ROLE_SUFFIXES
from tests.conftest import REPO, Database, Dbt, Server, prefixed_roles, run_loader
from tests.factories import agent_event, marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

NOW = datetime.now(timezone.utc).replace(microsecond=0)
PREFIX = f"aa_t{uuid.uuid4().hex[:8]}_"
GROUPS = ROLE_SUFFIXES  # every group role `agent-loader roles` creates
# Logins that are plain members of a group role.
MEMBERS = {
    "loader": "loader",
    "transformer": "transformer",
    "operator": "bi_operator",
    "app": "bi_trusted_app",
    "ungranted": "bi_tenant",
}
# Logins that get their rows through `grant-tenant` / `grant-publisher` only.
GRANTED = {
    "tenant_1": [("tenant", "tenant-1")],
    "tenant_2_3": [("tenant", "tenant-2"), ("tenant", "tenant-3")],
    "pub_big": [("publisher", "pub-big")],
}
LOGINS = {name: f"{PREFIX}{name}_login" for name in (*MEMBERS, *GRANTED)}
VARS = ("--vars", json.dumps({"as_of": NOW.date().isoformat(), "role_prefix": PREFIX}))

LLM_TENANT_MARTS = (
    "fct_llm_calls",
    "llm_cost_daily",
    "tenant_unit_economics_monthly",
    "tenant_llm_metrics",
    "tenant_llm_insights",
)
TENANT_MARTS = (
    "agent_installs",
    "tenant_revenue",
    "tenant_revenue_monthly",
    "fct_invocations",
    *LLM_TENANT_MARTS,
)
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
    "operational_health_live",
    "llm_unpriced_models",
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
    "intermediate.int_conversation_agents_rolled_up",
    "seeds.insight_rules",
    "raw.spans",
    "staging.stg_otel__genai_operations",
    "intermediate.int_llm_calls_priced",
    "seeds.model_prices",
    "seeds.tenant_llm_budgets",
)
# The bypasses a reader can type; none may change what it sees.
BYPASSES = (
    "set app.tenant_id = 'tenant-2'",
    "set app.publisher_id = 'pub-small'",
    f"set role {PREFIX}bi_tenant",
    f"set role {PREFIX}bi_publisher",
    "reset role",
    "reset all",
    "set session authorization default",
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


# LLM calls, as OTLP JSON spans of the current GenAI conventions: tenant-N makes N calls of
# a priced model and one of a model with no price (so each tenant has an insight too).
LLM_CALL_TOKENS = {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20}
LLM_CALLS = {f"tenant-{n}": n + 1 for n in range(1, 8)}


def llm_spans() -> list[dict]:
    """One OTLP export request per tenant, the tenant on the resource."""

    def attribute(key: str, value: str | int) -> dict:
        typed = {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}
        return {"key": key, "value": typed}

    start = int(NOW.timestamp()) * 1_000_000_000
    requests = []
    for number, (tenant, calls) in enumerate(LLM_CALLS.items(), start=1):
        spans = [
            {
                "traceId": f"{number:032x}",
                "spanId": f"{number:08x}{call:08x}",
                "name": "chat",
                "kind": 3,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + 1_000_000_000),
                "attributes": [
                    attribute(key, value)
                    for key, value in {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o-mini" if call else "in-house-llm",
                        **LLM_CALL_TOKENS,
                    }.items()
                ],
            }
            for call in range(calls)
        ]
        requests.append(
            {
                "resourceSpans": [
                    {
                        "resource": {"attributes": [attribute("tenant.id", tenant)]},
                        "scopeSpans": [{"scope": {"name": "security"}, "spans": spans}],
                    }
                ]
            }
        )
    return requests


@dataclass
class Setup:
    database: Database
    dbt: Dbt
    roles_json: dict


def as_role(database: Database, login: str) -> Database:
    return Database({**database.params, "user": login})


@contextlib.contextmanager
def scratch_role(database: Database, name: str, options: str = "login") -> Iterator[str]:
    """The role `name`, created with `options` for one test and dropped after it."""
    database.query(f"create role {name} {options}")
    try:
        yield name
    finally:
        database.query(f"drop role {name}")


def connect(database: Database, name: str, *statements: str) -> psycopg2.extensions.connection:
    """A connection as the test login `name` (or a login role's own name), after running
    `statements` in it."""
    conn = as_role(database, LOGINS.get(name, name)).connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    return conn


def execute(conn: psycopg2.extensions.connection, sql: str) -> None:
    with conn.cursor() as cur:
        cur.execute(sql)


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


def try_bypass(conn: psycopg2.extensions.connection, statement: str) -> None:
    """Run a bypass attempt; a refusal (e.g. `set role` to a role not granted) is fine."""
    with contextlib.suppress(psycopg2.Error):
        execute(conn, statement)


@pytest.fixture(scope="module")
def setup(
    server: Server, module_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    folder: Path = tmp_path_factory.mktemp("security")
    logins = {LOGINS[name]: MEMBERS.get(name) for name in LOGINS}
    with prefixed_roles(module_db, PREFIX, logins, "--close-database", "--json") as roles:
        for name, grants in GRANTED.items():
            for scope, subject in grants:
                run_loader(module_db, f"grant-{scope}", LOGINS[name], subject, "--prefix", PREFIX)
        run_loader(
            as_role(module_db, LOGINS["loader"]),
            "load",
            str(write_ndjson(folder / "events.ndjson", events() + llm_spans())),
        )
        dbt = Dbt(
            as_role(module_db, LOGINS["transformer"]),
            folder / "dbt",
            AGENT_ANALYTICS_DBT_ROLE=f"{PREFIX}transformer",
        )
        dbt("build", *VARS)
        yield Setup(module_db, dbt, json.loads(roles.stdout))


def count(database: Database, relation: str, where: str = "true") -> int:
    return int(database.scalar(f"select count(*) from marts.{relation} where {where}"))


def tenants_seen(conn: psycopg2.extensions.connection, mart: str) -> list[str]:
    return [row[0] for row in rows(conn, f"select distinct tenant_id from marts.{mart} order by 1")]


def check_isolation(setup: Setup) -> None:
    """Every isolation promise, connecting as each login, before and after every bypass."""
    db = setup.database
    for bypass in ("select 1", *BYPASSES):
        tenant_1 = connect(db, "tenant_1")
        tenant_2_3 = connect(db, "tenant_2_3")
        ungranted = connect(db, "ungranted")
        big = connect(db, "pub_big")
        readers = (tenant_1, tenant_2_3, ungranted, big)
        try:
            for conn in readers:
                try_bypass(conn, bypass)
            for mart in TENANT_MARTS:
                assert tenants_seen(tenant_1, mart) == ["tenant-1"], (bypass, mart)
                visible = rows(tenant_1, f"select count(*) from marts.{mart}")[0][0]
                assert visible == count(db, mart, "tenant_id = 'tenant-1'") > 0, (bypass, mart)
                assert tenants_seen(tenant_2_3, mart) == ["tenant-2", "tenant-3"], (bypass, mart)
                assert rows(ungranted, f"select count(*) from marts.{mart}") == [(0,)], mart
                assert refused(big, f"marts.{mart}"), (bypass, mart)
            for mart in SHARED_MARTS:
                seen = rows(big, f"select distinct publisher_id from marts.{mart}")
                assert seen == [("pub-big",)], (bypass, mart)
                assert refused(tenant_1, f"marts.{mart}"), (bypass, mart)
            for mart in OPERATOR_ONLY:
                for conn in readers:
                    assert refused(conn, f"marts.{mart}"), (bypass, mart)
            for relation in HIDDEN:
                for conn in readers:
                    assert refused(conn, relation), (bypass, relation)
        finally:
            for conn in readers:
                conn.close()

    operator = connect(db, "operator", "set app.tenant_id = 'tenant-1'")
    app = connect(db, "app")
    app_tenant_2 = connect(db, "app", "set app.tenant_id = 'tenant-2'")
    app_small = connect(db, "app", "set app.publisher_id = 'pub-small'")
    try:
        for mart in (*TENANT_MARTS, *SHARED_MARTS, *OPERATOR_ONLY):
            seen = rows(operator, f"select count(*) from marts.{mart}")[0][0]
            assert seen == count(db, mart), mart
        for mart in TENANT_MARTS:
            assert rows(app, f"select count(*) from marts.{mart}") == [(0,)], mart
            assert tenants_seen(app_tenant_2, mart) == ["tenant-2"], mart
        for mart in SHARED_MARTS:
            assert rows(app, f"select count(*) from marts.{mart}") == [(0,)], mart
        assert rows(app_small, "select publisher_id from marts.publisher_dashboard_shared") == [
            ("pub-small",)
        ]
        for relation in (*HIDDEN, *(f"marts.{mart}" for mart in OPERATOR_ONLY)):
            assert refused(app, relation), relation
        for relation in HIDDEN:
            assert refused(operator, relation), relation
    finally:
        for conn in (operator, app, app_tenant_2, app_small):
            conn.close()


def test_roles_are_created_once_plain_marked_and_without_login(setup):
    assert setup.roles_json["created"] == [f"{PREFIX}{group}" for group in GROUPS]
    assert setup.roles_json["database_closed"] is True
    again = run_loader(setup.database, "roles", "--prefix", PREFIX, "--json")
    assert json.loads(again.stdout)["created"] == []
    flags = setup.database.query(
        "select rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,"
        " shobj_description(oid, 'pg_authid') like 'agent-analytics:%%'"
        " from pg_roles where rolname like %s and rolname not like '%%login'",
        (f"{PREFIX}%",),
    )
    assert sorted(flags) == sorted(
        (f"{PREFIX}{group}", False, False, False, False, False, True) for group in GROUPS
    )


def test_isolation_after_the_first_build(setup):
    check_isolation(setup)


def test_a_tenant_reads_its_own_llm_calls_and_tokens_and_a_publisher_none(setup):
    """The LLM marts' rows a login sees, against the spans generated above."""
    db = setup.database
    tenant_1 = connect(db, "tenant_1")
    tenant_2_3 = connect(db, "tenant_2_3")
    big = connect(db, "pub_big")
    operator = connect(db, "operator")
    tokens = sum(LLM_CALL_TOKENS.values())
    sql = "select count(*), sum(total_tokens) from marts.fct_llm_calls"
    try:
        assert rows(tenant_1, sql) == [(LLM_CALLS["tenant-1"], LLM_CALLS["tenant-1"] * tokens)]
        both = LLM_CALLS["tenant-2"] + LLM_CALLS["tenant-3"]
        assert rows(tenant_2_3, sql) == [(both, both * tokens)]
        everyone = sum(LLM_CALLS.values())
        assert rows(operator, sql) == [(everyone, everyone * tokens)]
        daily = "select sum(calls), sum(unpriced_calls) from marts.llm_cost_daily"
        assert rows(tenant_1, daily) == [(LLM_CALLS["tenant-1"], 1)]
        insights = "select distinct tenant_id, rule_id from marts.tenant_llm_insights"
        assert ("tenant-1", "unpriced_llm_calls") in rows(tenant_1, insights)
        for mart in (*LLM_TENANT_MARTS, "llm_unpriced_models", "fct_conversations"):
            assert refused(big, f"marts.{mart}"), mart
        # no publisher-facing mart carries an LLM figure (docs/opentelemetry.md)
        llm_columns = db.query(
            "select table_name, column_name from information_schema.columns"
            " where table_schema = 'marts' and table_name = any(%s)"
            " and (column_name like '%%llm%%' or column_name like '%%token%%')",
            (list(SHARED_MARTS),),
        )
        assert llm_columns == []
    finally:
        for conn in (tenant_1, tenant_2_3, big, operator):
            conn.close()


def test_grants_are_listed_and_the_table_is_read_only_for_readers(setup):
    listed = json.loads(run_loader(setup.database, "grants", "--json").stdout)
    assert sorted((g["login"], g["scope"], g["subject_id"]) for g in listed) == sorted(
        (LOGINS[name], scope, subject)
        for name, grants in GRANTED.items()
        for scope, subject in grants
    )
    tenant_1 = connect(setup.database, "tenant_1")
    try:
        assert rows(tenant_1, "select login, subject_id from access.reader_grants") == [
            (LOGINS["tenant_1"], "tenant-1")
        ]
        for statement in (
            "insert into access.reader_grants (role_oid, login, scope, subject_id)"
            f" select oid, rolname, 'tenant', 'tenant-2' from pg_roles"
            f" where rolname = '{LOGINS['tenant_1']}'",
            "update access.reader_grants set subject_id = 'tenant-2'",
            "delete from access.reader_grants",
            "alter table access.reader_grants disable row level security",
            "create table access.sneaky (x int)",
        ):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                execute(tenant_1, statement)
    finally:
        tenant_1.close()
    assert setup.database.scalar("select count(*) from access.reader_grants") == len(listed)


def test_views_and_leaky_functions_see_only_the_readers_rows(setup):
    """A reader allowed temporary objects builds a view and a function that leaks its
    argument through notices: both run under the reader's policies."""
    db = setup.database
    login = LOGINS["tenant_1"]
    db.query(f"grant temporary on database {db.name} to {login}")
    tenant_1 = connect(db, "tenant_1")
    try:
        execute(
            tenant_1, "create temp view every_invocation as select * from marts.fct_invocations"
        )
        assert [
            r[0] for r in rows(tenant_1, "select distinct tenant_id from every_invocation")
        ] == ["tenant-1"]
        execute(
            tenant_1,
            "create function pg_temp.leak(value text) returns boolean language plpgsql"
            " cost 0.0001 as $$ begin raise notice 'saw %', value; return true; end $$",
        )
        tenant_1.notices.clear()
        rows(tenant_1, "select count(*) from marts.fct_invocations where pg_temp.leak(tenant_id)")
        leaked = {notice.strip().removeprefix("NOTICE:  saw ") for notice in tenant_1.notices}
        assert leaked == {"tenant-1"}
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            execute(tenant_1, "create view marts.every_invocation as select 1")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            execute(tenant_1, "create function public.f() returns int language sql as 'select 1'")
    finally:
        tenant_1.close()
        db.query(f"revoke temporary on database {db.name} from {login}")


def test_explain_and_catalog_statistics_reveal_no_other_tenant(setup):
    db = setup.database
    db.query("analyze")
    protected = [*TENANT_MARTS, *SHARED_MARTS]
    assert (
        db.scalar(
            "select count(*) from pg_statistic where starelid = any(%s::regclass[])",
            ([f"marts.{mart}" for mart in protected],),
        )
        == 0
    )
    tenant_1 = connect(db, "tenant_1")
    big = connect(db, "pub_big")
    try:
        for conn in (tenant_1, big):
            stats = rows(
                conn,
                "select schemaname, tablename from pg_stats"
                " where schemaname in ('raw', 'staging', 'intermediate', 'seeds', 'marts')",
            )
            assert stats == []
        plan = rows(
            tenant_1,
            "explain (analyze, format json)"
            " select * from marts.fct_invocations where tenant_id = 'tenant-2'",
        )[0][0]
        assert plan[0]["Plan"]["Actual Rows"] == 0
        assert "tenant-3" not in json.dumps(plan)
    finally:
        tenant_1.close()
        big.close()


def test_the_database_is_closed_to_roles_that_are_not_the_projects(setup):
    db = setup.database
    with scratch_role(db, f"{PREFIX}stranger") as stranger:
        with pytest.raises(psycopg2.OperationalError, match="permission denied"):
            as_role(db, stranger).connect()
        assert db.scalar(
            "select not has_database_privilege('public', current_database(), 'connect')"
            " and not has_database_privilege('public', current_database(), 'temporary')"
        )


def test_roles_never_alters_a_role_it_did_not_create(setup):
    db = setup.database
    other = f"aa_x{uuid.uuid4().hex[:8]}_"
    with scratch_role(db, f"{other}loader", "createdb"):
        result = run_loader(db, "roles", "--prefix", other, check=False)
        assert result.returncode == 1
        assert f"{other}loader exist but were not created by agent-loader roles" in result.stderr
        assert "Traceback" not in result.stderr
        assert db.query(
            "select rolname, rolcreatedb from pg_roles where rolname like %s", (f"{other}%",)
        ) == [(f"{other}loader", True)]


def test_grant_refuses_logins_row_level_security_would_not_bind(setup):
    db = setup.database
    with scratch_role(db, f"{PREFIX}bypasser", "login bypassrls") as bypasser:
        cases = {
            bypasser: "BYPASSRLS",
            f"{PREFIX}nobody": "does not exist",
            f"{PREFIX}bi_tenant": "is not a login role",
        }
        for login, message in cases.items():
            result = run_loader(
                db, "grant-tenant", login, "tenant-1", "--prefix", PREFIX, check=False
            )
            assert result.returncode == 1, login
            assert message in result.stderr, login
            assert "Traceback" not in result.stderr
        assert (
            db.scalar(
                "select count(*) from access.reader_grants where login <> all(%s)",
                (list(LOGINS.values()),),
            )
            == 0
        )


def test_revoke_narrows_then_removes_a_logins_access(setup):
    db = setup.database
    with scratch_role(db, f"{PREFIX}revoked_login") as login:
        for tenant in ("tenant-4", "tenant-5"):
            run_loader(db, "grant-tenant", login, tenant, "--prefix", PREFIX)
        again = run_loader(db, "grant-tenant", login, "tenant-4", "--prefix", PREFIX, "--json")
        assert json.loads(again.stdout)["created"] is False
        run_loader(db, "revoke", login, "--tenant", "tenant-4", "--prefix", PREFIX)
        conn = connect(db, login)
        try:
            assert tenants_seen(conn, "fct_invocations") == ["tenant-5"]
        finally:
            conn.close()
        missing = run_loader(
            db, "revoke", login, "--tenant", "tenant-4", "--prefix", PREFIX, check=False
        )
        assert missing.returncode == 1 and "no grant tenant tenant-4" in missing.stderr
        removed = run_loader(db, "revoke", login, "--prefix", PREFIX, "--json")
        assert [g["subject_id"] for g in json.loads(removed.stdout)["removed"]] == ["tenant-5"]
        # No group left: the closed database does not even accept the connection.
        with pytest.raises(psycopg2.OperationalError, match="permission denied"):
            connect(db, login)
        assert not db.scalar("select pg_has_role(%s, %s, 'member')", (login, f"{PREFIX}bi_tenant"))


COVERAGE = """
-- Every relation a reader login can open, outside the system schemas, that row-level
-- security does not close: a table readable by a tenant, publisher or trusted-application
-- reader without RLS or without that reader's policy (tenant / publisher: keyed on the
-- grants of that scope to the login's OID; trusted application: on the session setting); any view,
-- materialized view or foreign table such a reader can open; a publisher-readable table
-- with a tenant id column.
with readers as (
    select unnest(%(readers)s::text[]) as login
),

memberships as (
    select readers.login, coalesce(string_agg(g.rolname, ','), '') as groups
    from readers
    left join pg_roles as l on l.rolname = readers.login
    left join pg_auth_members as m on m.member = l.oid
    left join pg_roles as g on g.oid = m.roleid
    group by readers.login
),

readable as (
    select
        c.oid,
        c.relkind,
        c.relrowsecurity,
        n.nspname || '.' || c.relname as relation,
        memberships.login,
        memberships.groups
    from pg_class as c
    inner join pg_namespace as n on c.relnamespace = n.oid
    cross join memberships
    where
        n.nspname not in ('pg_catalog', 'information_schema')
        and n.nspname not like 'pg_toast%%'
        and c.relkind in ('r', 'p', 'v', 'm', 'f')
        and has_schema_privilege(memberships.login, n.oid, 'usage')
        and has_table_privilege(memberships.login, c.oid, 'select')
),

policies as (
    select
        p.polrelid,
        coalesce(r.rolname, 'public') as rolname,
        regexp_replace(pg_get_expr(p.polqual, p.polrelid), '[[:space:]]+', ' ', 'g') as qual
    from pg_policy as p
    cross join lateral unnest(p.polroles) as role_oid
    left join pg_roles as r on r.oid = role_oid
)

select distinct relation, login
from readable
where
    groups not like %(operator)s
    and (
        relkind not in ('r', 'p')
        or not relrowsecurity
        or not exists (
            select from policies
            where
                policies.polrelid = readable.oid
                and (policies.rolname = 'public' or position(policies.rolname in groups) > 0)
                and (
                    (
                        policies.rolname like '%%bi_tenant'
                        and policies.qual like '%%reader_grants%%' || %(by_oid)s || '%%''tenant''%%'
                    )
                    or (
                        policies.rolname like '%%bi_publisher'
                        and policies.qual
                        like '%%reader_grants%%' || %(by_oid)s || '%%''publisher''%%'
                    )
                    or (
                        policies.rolname like '%%bi_trusted_app'
                        and policies.qual like '%%current_setting(''app.%%'
                    )
                    or (
                        readable.relation = 'access.reader_grants'
                        and policies.qual like '(' || %(by_oid)s || ')'
                    )
                )
        )
        or (
            groups like '%%bi_publisher%%'
            and exists (
                select from pg_attribute as a
                where
                    a.attrelid = readable.oid
                    and a.attname like '%%tenant_id%%'
                    and not a.attisdropped
            )
        )
    )
order by 1, 2
"""


def uncovered(db: Database) -> list[tuple]:
    readers = [LOGINS[name] for name in ("tenant_1", "tenant_2_3", "ungranted", "pub_big", "app")]
    by_oid = (
        "role_oid = ( SELECT pg_roles.oid FROM pg_roles%WHERE (pg_roles.rolname = SESSION_USER))"
    )
    return db.query(
        COVERAGE, {"readers": readers, "operator": f"%{PREFIX}bi_operator%", "by_oid": by_oid}
    )


def test_every_relation_a_reader_can_open_is_covered_and_the_check_can_fail(setup):
    db = setup.database
    assert uncovered(db) == []
    # A mart added later and given to the tenant readers without a policy must fail it.
    db.query(
        f"create table marts.leaky_mart as select 'tenant-2' as tenant_id;"
        f" grant select on marts.leaky_mart to {PREFIX}bi_tenant"
    )
    try:
        assert ("marts.leaky_mart", LOGINS["tenant_1"]) in uncovered(db)
    finally:
        db.query("drop table marts.leaky_mart")
    assert uncovered(db) == []


def test_no_reader_owns_a_relation_or_bypasses_row_level_security(setup):
    owners = setup.database.query(
        "select distinct tableowner from pg_tables where schemaname = 'marts'"
    )
    assert owners == [(f"{PREFIX}transformer",)]
    for name in ("operator", "app", "ungranted", *GRANTED):
        login = LOGINS[name]
        owns = setup.database.scalar(
            "select count(*) from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname in ('marts', 'access', 'raw', 'staging', 'intermediate', 'seeds')"
            " and pg_has_role(%s, c.relowner, 'usage')",
            (login,),
        )
        assert owns == 0, name
        assert (
            setup.database.scalar(
                "select rolbypassrls or rolsuper from pg_roles where rolname = %s", (login,)
            )
            is False
        )


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
    small = connect(setup.database, "app", "set app.publisher_id = 'pub-small'")
    big = connect(setup.database, "pub_big")
    try:
        sql = (
            "select total_invocations, unique_tenants, avg_satisfaction, p95_response_time_ms,"
            " active_installs, has_suppressed_metrics from marts.publisher_dashboard_shared"
        )
        assert rows(small, sql) == [(None, None, None, None, None, True)]
        exact = setup.database.query(
            "select total_invocations, unique_tenants, avg_satisfaction, p95_response_time_ms,"
            " active_installs, false from marts.publisher_dashboard where publisher_id = 'pub-big'"
        )
        assert exact == [(42, 6, 2, 900, 6, False)]
        # Coarsened: counts to multiples of 5, the rating to 0.1, times to 10 ms.
        assert rows(big, sql) == [(40, 5, 2, 900, 5, False)]
        daily = rows(
            small,
            "select count(*) filter (where invocations is not null)"
            " from marts.publisher_daily_shared",
        )
        assert daily == [(0,)]
        # A tool and an agent of two tenants are not rows at all (test_security_plans.py).
        assert rows(small, "select calls from marts.publisher_tool_usage_shared") == []
        assert rows(small, "select active_installs from marts.agent_active_installs_shared") == []
        assert rows(big, "select active_installs from marts.agent_active_installs_shared") == [(5,)]
    finally:
        small.close()
        big.close()


def test_loader_writes_raw_and_reads_nothing_else(setup):
    assert setup.database.scalar("select count(*) from raw.load_batches") == 1
    loader = connect(setup.database, "loader")
    try:
        assert rows(loader, "select count(*) from raw.marketplace_events")[0][0] > 0
        for relation in (
            "marts.publisher_dashboard",
            "marts.tenant_revenue",
            "staging.stg_marketplace__events",
            "access.reader_grants",
        ):
            assert refused(loader, relation), relation
    finally:
        loader.close()


def test_isolation_survives_a_second_build_and_a_full_refresh(setup):
    setup.dbt("build", *VARS)
    check_isolation(setup)
    assert uncovered(setup.database) == []
    setup.dbt("build", *VARS, "--full-refresh")
    check_isolation(setup)
    assert uncovered(setup.database) == []


def test_more_ways_out_from_a_sql_prompt_see_only_the_readers_rows(setup):
    """`row_security = off`, COPY, a held cursor read after `set role`, another session's
    query text, and grant-tenant with quotes, `;` and `%` in the login and the id."""
    db = setup.database
    admin = db.connect()
    admin.autocommit = True
    execute(admin, "select 'tenant-2 marker' as secret")
    tenant = connect(db, "tenant_1")
    odd_login = f"{PREFIX}o'q;%login"
    odd_id = "tenant-1'; drop table access.reader_grants; --%"
    try:
        execute(tenant, "set row_security = off")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="row-level security"):
            rows(tenant, "select count(*) from marts.tenant_revenue")
        execute(tenant, "reset row_security")
        for statement in (
            "copy marts.tenant_revenue (tenant_id) to stdout",
            "copy (select tenant_id from marts.tenant_revenue) to stdout",
        ):
            out = io.StringIO()
            with tenant.cursor() as cur:
                cur.copy_expert(statement, out)
            assert set(out.getvalue().split()) == {"tenant-1"}, statement
        execute(tenant, "begin")
        execute(
            tenant, "declare held cursor with hold for select tenant_id from marts.tenant_revenue"
        )
        execute(tenant, "commit")
        try_bypass(tenant, f"set role {PREFIX}bi_tenant")
        assert {row[0] for row in rows(tenant, "fetch all from held")} == {"tenant-1"}
        activity = rows(
            tenant, f"select query from pg_stat_activity where pid = {admin.get_backend_pid()}"
        )
        assert activity == [("<insufficient privilege>",)]

        db.query(f'create role "{odd_login}" login')
        run_loader(db, "grant-tenant", odd_login, odd_id, "--prefix", PREFIX)
        assert db.query(
            "select subject_id from access.reader_grants where login = %s", (odd_login,)
        ) == [(odd_id,)]
        odd = connect(db, odd_login)
        try:
            assert rows(odd, "select count(*) from marts.tenant_revenue") == [(0,)]
        finally:
            odd.close()
    finally:
        tenant.close()
        admin.close()
        run_loader(db, "revoke", odd_login, "--prefix", PREFIX, check=False)
        db.query(f'drop role if exists "{odd_login}"')


def scratch_project(folder: Path) -> Path:
    """A copy of the dbt project to change in a test (the repository stays as it is)."""
    project = folder / "project"
    shutil.copytree(
        REPO,
        project,
        ignore=shutil.ignore_patterns(
            ".*", "target", "logs", "lake", "__pycache__", "*.egg-info", "bench", "docs"
        ),
    )
    return project


def test_a_login_dropped_or_renamed_passes_no_rows_to_a_new_login_of_its_name(setup):
    db = setup.database
    dropped, renamed = f"{PREFIX}reused_login", f"{PREFIX}moved_login"
    for login in (dropped, renamed):
        db.query(f"create role {login} login")
    run_loader(db, "grant-tenant", dropped, "tenant-2", "--prefix", PREFIX)
    run_loader(db, "grant-tenant", renamed, "tenant-4", "--prefix", PREFIX)
    db.query(f"drop role {dropped}; create role {dropped} login")
    db.query(f"alter role {renamed} rename to {renamed}_old; create role {renamed} login")
    try:
        run_loader(db, "grant-tenant", dropped, "tenant-3", "--prefix", PREFIX)
        run_loader(db, "grant-tenant", renamed, "tenant-5", "--prefix", PREFIX)
        new_dropped, new_renamed = connect(db, dropped), connect(db, renamed)
        old_renamed = connect(db, f"{renamed}_old")
        try:
            for mart in TENANT_MARTS:
                assert tenants_seen(new_dropped, mart) == ["tenant-3"], mart
                assert tenants_seen(new_renamed, mart) == ["tenant-5"], mart
                assert tenants_seen(old_renamed, mart) == ["tenant-4"], mart
        finally:
            for conn in (new_dropped, new_renamed, old_renamed):
                conn.close()
        orphaned = json.loads(run_loader(db, "grants", "--orphaned", "--json").stdout)
        assert [(g["login"], g["subject_id"]) for g in orphaned] == [(dropped, "tenant-2")]
        run_loader(db, "grants", "--remove-orphaned")
        assert json.loads(run_loader(db, "grants", "--orphaned", "--json").stdout) == []
    finally:
        for login in (dropped, renamed, f"{renamed}_old"):
            run_loader(db, "revoke", login, "--prefix", PREFIX, check=False)
            db.query(f"drop role if exists {login}")


# A reader's ordered-set aggregate that shadows pg_catalog.percentile_cont(float8 order by
# float8) for numeric arguments (agent_resolution_times calls it with numeric ones): run by
# the build, it grants the reader schema intermediate, then answers as the real one.
PLANTED_PERCENTILE = """
create function public.planted_state(numeric[], numeric) returns numeric[]
    language sql as 'select $1 || $2';
create function public.planted_final(numeric[], numeric) returns numeric
    language plpgsql as $$
begin
    execute format('grant usage on schema intermediate to %I', '{login}');
    execute format('grant select on all tables in schema intermediate to %I', '{login}');
    return (
        select pg_catalog.percentile_cont($2::float8) within group (order by x)
        from unnest($1) as x
    );
end $$;
create aggregate public.percentile_cont(numeric order by numeric) (
    sfunc = public.planted_state, stype = numeric[], finalfunc = public.planted_final,
    initcond = '{{}}'
);
"""


def test_a_function_a_reader_plants_in_public_never_runs_in_the_build(setup, tmp_path):
    """Schema public writable by every role (the default before PostgreSQL 15): a tenant
    plants `public.percentile_cont(numeric order by numeric)`. With the search path dbt used
    to have (`"$user", public`) and no check, the build runs it as the transformer and the
    tenant gets schema intermediate. The shipped profile never looks in public, and a
    profile that does is refused on start, naming the schema and the function."""
    db = setup.database
    login = LOGINS["tenant_1"]
    db.query("grant create on schema public to public")
    tenant = connect(db, "tenant_1")
    try:
        execute(tenant, PLANTED_PERCENTILE.format(login=login))
        model = ("run", "--select", "agent_resolution_times", *VARS)

        # Reproduced: the old search path and no on-run-start check.
        project = scratch_project(tmp_path)
        config = project / "dbt_project.yml"
        config.write_text(config.read_text().replace('  - "{{ check_build_inputs() }}"\n', ""))
        old = Dbt(
            setup.dbt.database, tmp_path / "old", AGENT_ANALYTICS_DBT_ROLE=f"{PREFIX}transformer"
        )
        profile = old.profiles_dir / "profiles.yml"
        lines = profile.read_text().splitlines()
        profile.write_text("\n".join(line for line in lines if "search_path:" not in line))
        reproduced = old(*model, "--project-dir", str(project), check=False)
        assert db.scalar("select has_schema_privilege(%s, 'intermediate', 'usage')", (login,))
        # (Only the on-run-end check notices, after the fact.)
        assert "intermediate.int_invocations_enriched is readable by a row-limited reader" in (
            reproduced.stdout
        )
        db.query(f"revoke all on schema intermediate from {login}")
        db.query(f"revoke all on all tables in schema intermediate from {login}")

        # Refused on start with the project's check, before any model runs.
        refused_build = old(*model, check=False)
        assert refused_build.returncode != 0
        assert "dbt build refused" in refused_build.stdout
        assert "schema public grants create to PUBLIC (every role)" in refused_build.stdout
        assert f"percentile_cont(numeric,numeric) is owned by {login}" in refused_build.stdout
        assert not db.scalar("select has_schema_privilege(%s, 'intermediate', 'usage')", (login,))

        # The shipped profile: public is not searched, so the reader's aggregate is not called.
        setup.dbt(*model)
        assert not db.scalar("select has_schema_privilege(%s, 'intermediate', 'usage')", (login,))
    finally:
        tenant.close()
        db.query(
            "drop aggregate if exists public.percentile_cont(numeric order by numeric);"
            " drop function if exists public.planted_final(numeric[], numeric);"
            " drop function if exists public.planted_state(numeric[], numeric)"
        )
        db.query(f"revoke all on schema intermediate from {login}")
        db.query(f"revoke all on all tables in schema intermediate from {login}")
        # `agent-loader roles` closes public again.
        run_loader(db, "roles", "--prefix", PREFIX)
    assert not db.scalar("select has_schema_privilege(%s, 'public', 'create')", (login,))


def test_a_mart_with_a_grants_config_fails_the_build(setup, tmp_path):
    """dbt applies a `grants:` config after the access post-hook; the build must fail."""
    project = scratch_project(tmp_path)
    model = project / "models/marts/conversations/agent_resolution_times.sql"
    readers = [f"{PREFIX}bi_tenant", LOGINS["pub_big"]]
    model.write_text(f"{{{{ config(grants={{'select': {readers}}}) }}}}\n" + model.read_text())
    run = ("run", "--select", "agent_resolution_times", *VARS)
    try:
        result = setup.dbt(*run, "--project-dir", str(project), check=False)
        assert result.returncode != 0
        assert "dbt build failed the access check" in result.stdout
        assert (
            "marts.agent_resolution_times is readable by a row-limited reader without"
            " row-level security" in result.stdout
        )
        for reader in readers:
            assert (
                f"marts.agent_resolution_times grants SELECT to {reader}, which the access hook"
                " (meta.bi_access) did not grant" in result.stdout
            ), reader
    finally:
        setup.dbt(*run)  # a table: rebuilt without those grants
    assert uncovered(setup.database) == []


def test_the_role_prefix_comes_from_the_loaders_setting_and_a_wrong_one_fails(setup):
    db = setup.database
    only_date = ("--vars", json.dumps({"as_of": NOW.date().isoformat()}))
    model = ("run", "--select", "platform_daily", *only_date)
    wrong = Dbt(
        setup.dbt.database,
        setup.dbt.profiles_dir.parent / "wrong_prefix",
        AGENT_ANALYTICS_DBT_ROLE=f"{PREFIX}transformer",
        AGENT_ANALYTICS_ROLE_PREFIX="aa_nosuch_",
    )
    result = wrong(*model, check=False)
    assert result.returncode != 0
    assert "AGENT_ANALYTICS_ROLE_PREFIX" in result.stdout
    assert "aa_nosuch_bi_operator" in result.stdout
    assert PREFIX in result.stdout.split("prefixes with roles here:")[1]

    db.query(f"revoke select on marts.platform_daily from {PREFIX}bi_operator")
    right = Dbt(
        setup.dbt.database,
        setup.dbt.profiles_dir.parent / "env_prefix",
        AGENT_ANALYTICS_DBT_ROLE=f"{PREFIX}transformer",
        AGENT_ANALYTICS_ROLE_PREFIX=PREFIX,
    )
    right(*model)
    assert db.scalar(
        "select has_table_privilege(%s, 'marts.platform_daily', 'select')",
        (f"{PREFIX}bi_operator",),
    )


def _postgres_bin() -> Path | None:
    """The folder of PostgreSQL 15's initdb and pg_ctl, if installed."""
    for folder in (Path("/usr/lib/postgresql/15/bin"), Path("/usr/local/pgsql/bin")):
        if (folder / "initdb").is_file():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.skipif(_postgres_bin() is None, reason="needs PostgreSQL 15's initdb and pg_ctl")
def test_the_security_tests_pass_against_a_private_server_on_another_port():
    """Every subprocess a test starts (agent-loader, dbt) must act on the server the test
    inspects: run this module's setup and isolation tests against a throwaway server on a
    spare port. A subprocess that lost PGHOST/PGPORT would reach the default server, where
    the test's database does not exist."""
    bindir = _postgres_bin()
    assert bindir is not None
    folder = Path(tempfile.mkdtemp(prefix="aa-private-pg-"))
    port = _free_port()
    # initdb refuses to run as root: run the server as the `postgres` user then.
    as_owner: list[str] = []
    if os.geteuid() == 0:
        as_owner = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data = folder / "data"
    subprocess.run(
        [
            *as_owner,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-N",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *as_owner,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "start",
            "-l",
            str(folder / "log"),
        ],
        check=True,
        capture_output=True,
    )
    try:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(PGHOST="127.0.0.1", PGPORT=str(port), PGUSER="postgres", PGDATABASE="postgres")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                __file__,
                "-k",
                "roles_are_created or isolation_after_the_first_build or loader_writes_raw",
            ],
            env=env,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert result.returncode == 0, result.stdout[-4000:]
        assert "3 passed" in result.stdout
    finally:
        subprocess.run(
            [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)
