"""End to end for event identity: an id squatted under another sender reaches the marts as
two events, each under its own sender and with its own cost, and an incremental build that
sees the squatted copy later equals a full refresh (docs/contract.md, "Exactly once")."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import Database, Dbt, run_loader
from tests.factories import agent_event, marketplace_event, write_ndjson

NOW = datetime.now(timezone.utc).replace(microsecond=0)
VARS = ("--vars", json.dumps({"as_of": NOW.date().isoformat()}))
SELECT = (
    "--select",
    "source:marketplace+",
    "source:agent_events+",
    "+tenant_llm_insights",
    "+fct_conversations",
    "insight_rules+",
)


def completion(publisher_id: str, tenant_id: str, cost_usd: float, event_id: str = "inv-1"):
    return marketplace_event(
        id=event_id,
        publisher_id=publisher_id,
        agent_id=f"{publisher_id}-agent",
        tenant_id=tenant_id,
        timestamp=(NOW - timedelta(days=1)).isoformat(),
        properties={
            "input_tokens": 10,
            "output_tokens": 5,
            "tool_calls": ["search"],
            "duration_ms": 100,
            "cost_usd": cost_usd,
        },
    )


def error(agent_name: str, error_type: str, event_id: str = "evt-1"):
    return agent_event(
        event_id=event_id,
        conversation_id=f"conv-{agent_name}",
        agent_name=agent_name,
        event_type="error",
        timestamp=(NOW - timedelta(hours=5)).replace(tzinfo=None).isoformat(),
        payload={"error_type": error_type, "message": "failed"},
    )


@pytest.fixture(scope="module")
def built(module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The squatter's file loaded first, then the real senders'; then one build."""
    folder = tmp_path_factory.mktemp("identity")
    squat = [completion("pub-squat", "tenant-squat", 999_999), error("impostor", "Forged")]
    real = [completion("pub-real", "tenant-real", 0.25), error("billing", "Timeout")]
    run_loader(module_db, "load", str(write_ndjson(folder / "1-squat.ndjson", squat)))
    run_loader(module_db, "load", str(write_ndjson(folder / "2-real.ndjson", real)))
    dbt("build", *SELECT, *VARS)
    return folder


def test_a_squatted_id_reaches_the_marts_under_both_senders_with_their_costs(built, module_db):
    assert module_db.query(
        "select publisher_id, tenant_id, cost_usd from marts.fct_invocations"
        " where invocation_id = 'inv-1' order by publisher_id"
    ) == [
        ("pub-real", "tenant-real", Decimal("0.25")),
        ("pub-squat", "tenant-squat", Decimal("999999")),
    ]
    assert module_db.query(
        "select publisher_id, tenant_id, invocations, revenue_usd from marts.tenant_revenue"
        " order by publisher_id"
    ) == [
        ("pub-real", "tenant-real", 1, Decimal("0.25")),
        ("pub-squat", "tenant-squat", 1, Decimal("999999")),
    ]
    assert module_db.query(
        "select publisher_id, tool_name from intermediate.int_tool_uses_unioned"
        " where event_id = 'inv-1' order by publisher_id"
    ) == [("pub-real", "search"), ("pub-squat", "search")]
    assert module_db.query(
        "select error_type, occurrences from marts.error_types_ranked order by error_type"
    ) == [("Forged", 1), ("Timeout", 1)]


def test_an_incremental_build_over_a_later_squat_equals_a_full_refresh(built, module_db, dbt):
    # the other direction: the real sender's events are built, then a squatter's copy arrives
    later = [
        completion("pub-real", "tenant-real", 0.5, event_id="inv-2"),
        completion("pub-squat", "tenant-squat", 999_999, event_id="inv-2"),
        error("billing", "Timeout", event_id="evt-2"),
        error("impostor", "Forged", event_id="evt-2"),
    ]
    run_loader(module_db, "load", str(write_ndjson(built / "3-later.ndjson", later)))
    dbt("build", *SELECT, *VARS)
    tables = {
        "staging.stg_marketplace__events": "event_id, publisher_id",
        "staging.stg_agent_events__events": "event_id, agent_name",
        "intermediate.int_invocations_enriched": "invocation_id, publisher_id",
        "intermediate.int_tool_uses_unioned": "tool_use_id, publisher_id",
        "intermediate.int_conversation_errors": "error_id, agent_name",
        "marts.fct_invocations": "invocation_id, publisher_id",
        "marts.tenant_revenue": "publisher_id, tenant_id",
        "marts.error_types_ranked": "error_type",
    }

    incremental = {table: module_db.fingerprint(table, key) for table, key in tables.items()}
    assert incremental["marts.fct_invocations"][0] == 4
    assert incremental["staging.stg_agent_events__events"][0] == 4
    dbt("build", "--full-refresh", *SELECT, *VARS)
    full_refresh = {table: module_db.fingerprint(table, key) for table, key in tables.items()}
    assert full_refresh == incremental
