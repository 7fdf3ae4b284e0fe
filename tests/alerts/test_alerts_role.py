"""`agent-loader alerts` as the alerts role, on cost marts built from LLM spans.

`agent-loader roles` makes `<prefix>alerts`; the build grants it the marts its rules read
(meta.bi_access `alerts`) and the rules seed. A login of that role evaluates a budget breach
built from spans through the cost marts and sends it to the breaching tenant's receiver only,
with the value that tenant reads in its own row of `tenant_llm_metrics`; it can read and
write nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timezone
from decimal import Decimal
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from tests.alerts.receiver import Receiver, running_receiver
from tests.conftest import REPO, Database, Dbt, prefixed_roles, run_loader
from tests.e2e.test_llm_costs import Span, insert_spans, mini_chat

pytestmark = pytest.mark.dbt

PREFIX = f"aa_a{uuid.uuid4().hex[:8]}_"
SERVICE = f"{PREFIX}service_login"
READER = f"{PREFIX}tenant_a_login"
TODAY = datetime.now(timezone.utc).date()
VARS = ("--vars", json.dumps({"as_of": TODAY.isoformat()}))
# Each call is a `mini_chat` span costing 0.0009 (seeds/model_prices.csv).
# tenant-a: 3 calls, 0.0027 of a 0.002 budget = 1.35 (both budget rules); tenant-b: 1 call,
# 0.0009 of 0.01 = 0.09 (none).
CALLS = {"tenant-a": 3, "tenant-b": 1}
BUDGETS = {"tenant-a": Decimal("0.002"), "tenant-b": Decimal("0.01")}


def chat_span(number: int, tenant: str) -> Span:
    return Span(
        number,
        "chat gpt-4o-mini",
        mini_chat(tenant),
        datetime.combine(TODAY, time(0, 0, number), tzinfo=timezone.utc),
        trace=number,
    )


@dataclass
class Setup:
    database: Database
    service: Database
    hooks: dict[str, Receiver]
    result: dict


def as_login(database: Database, login: str) -> Database:
    return Database({**database.params, "user": login})


@pytest.fixture(scope="module")
def setup(module_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder: Path = tmp_path_factory.mktemp("alerts_role")
    with prefixed_roles(module_db, PREFIX, {SERVICE: "alerts", READER: None}):
        run_loader(module_db, "grant-tenant", READER, "tenant-a", "--prefix", PREFIX)
        spans = [
            chat_span(10 * index + call, tenant)
            for index, (tenant, count) in enumerate(CALLS.items(), start=1)
            for call in range(count)
        ]
        insert_spans(module_db, spans, batch_id=1)
        dbt = Dbt(module_db, folder / "dbt", AGENT_ANALYTICS_ROLE_PREFIX=PREFIX)
        dbt("seed")
        for tenant, budget in BUDGETS.items():
            module_db.query(
                "insert into seeds.tenant_llm_budgets values (%s, %s)", (tenant, budget)
            )
        dbt("run", "--select", "+tenant_llm_metrics", "+operational_health_live", *VARS)
        with running_receiver() as hook_a, running_receiver() as hook_b:
            hooks = {"tenant-a": hook_a, "tenant-b": hook_b}
            routes = folder / "routes.json"
            routes.write_text(
                json.dumps(
                    {
                        "routes": [
                            {"scope": "tenant", "subject_id": tenant, "url": hook.url,
                             "secret_env": "TENANT_SECRET"}
                            for tenant, hook in hooks.items()
                        ]
                    }
                )
            )  # fmt: skip
            service = as_login(module_db, SERVICE)
            process = run_alerts(service, routes)
        yield Setup(module_db, service, hooks, json.loads(process.splitlines()[-1]))


def run_alerts(database: Database, routes: Path) -> str:
    """`agent-loader alerts --once --json` as the database's login; its stdout."""
    process = subprocess.run(
        [sys.executable, "-m", "loader", "alerts", "--once", "--json", "--routes", str(routes)],
        env={**database.env, "TENANT_SECRET": "tenant-secret"},
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert process.returncode == 0, process.stderr
    return process.stdout


def test_the_breaching_tenant_alone_is_told_what_it_reads_itself(setup: Setup) -> None:
    hook_a, hook_b = setup.hooks["tenant-a"], setup.hooks["tenant-b"]
    assert sorted(hook_a.alert_ids) == [
        ("llm_budget_80_percent/tenant:tenant-a/", "firing"),
        ("llm_budget_exceeded/tenant:tenant-a/", "firing"),
    ]
    assert hook_b.requests == []
    assert setup.result["notices"] == []
    alert = hook_a.requests[0].document["alert"]
    # 0.0027 / 0.002, on 3 calls: by hand above
    assert (alert["value"], alert["samples"]) == ("1.35000000", 3)
    assert alert["period_start_date"] == TODAY.replace(day=1).isoformat()
    reader = as_login(setup.database, READER).connect()
    with reader.cursor() as cur:
        cur.execute(
            "select tenant_id, metric_value, sample_size from marts.tenant_llm_metrics"
            " where metric_name = 'llm_budget_used_rate'"
        )
        assert cur.fetchall() == [("tenant-a", Decimal("1.35000000"), 3)]
    reader.close()


def refused(conn: psycopg2.extensions.connection, statement: str) -> bool:
    with conn.cursor() as cur:
        try:
            cur.execute(statement)
        except psycopg2.errors.InsufficientPrivilege:
            return True
        finally:
            conn.rollback()
    return False


def test_the_alerts_role_reads_its_rules_inputs_and_writes_schema_alerts_only(
    setup: Setup,
) -> None:
    conn = setup.service.connect()
    with conn.cursor() as cur:
        # every tenant's row of its marts (a policy of its own), and the rules
        cur.execute("select distinct tenant_id from marts.tenant_llm_metrics order by 1")
        assert cur.fetchall() == [("tenant-a",), ("tenant-b",)]
        cur.execute("select count(*) from seeds.alert_rules where scope = 'tenant'")
        assert cur.fetchone() == (3,)
        cur.execute("select count(*) from alerts.transitions")
        assert cur.fetchone() == (2,)
    conn.rollback()
    for statement in (
        "select * from raw.spans",
        "select * from raw.marketplace_events",
        # built by this module (the cost metrics' parents), not the alerts role's
        "select * from marts.llm_cost_daily",
        "select * from marts.tenant_unit_economics_monthly",
        "select * from intermediate.int_llm_calls_priced",
        "select * from seeds.tenant_llm_budgets",
        "select * from access.reader_grants",
        "insert into seeds.alert_rules (rule_id) values ('mine')",
        "delete from alerts.transitions",
        "truncate alerts.delivery_attempts",
        "create table alerts.mine (id int)",
        "create table marts.mine (id int)",
        "insert into raw.schema_migrations (version) values (999)",
    ):
        assert refused(conn, statement), statement
    conn.close()
