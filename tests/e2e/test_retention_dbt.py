"""Retention end to end: after `agent-loader purge`, the next incremental `dbt build` gives
exactly what `dbt build --full-refresh` gives on the purged raw tables.

Events are placed around the 90-day cutoff: a conversation entirely older (purged whole), one
that straddles it (its early events and its first agent purged, the rest kept), a recent one;
marketplace invocations, tool events, ratings and installs on both sides. The scenario:
build; purge; load newer events (so the purge is no longer the latest thing that happened);
build incrementally and compare every staging, intermediate and mart table with a full
refresh; then load events older than the cutoff *after* the purge (late events, which the
purge never saw and a full refresh keeps), and check that incremental builds keep them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Database, Dbt, run_loader
from tests.factories import agent_event, marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

NOW = datetime.now(timezone.utc).replace(microsecond=0)
VARS = ("--vars", json.dumps({"as_of": NOW.date().isoformat()}))
# Tables compared with a full refresh: everything dbt builds except the snapshot, whose
# validity timestamps are the build times.
SCHEMAS = ("staging", "intermediate", "marts")
# Nor the live views (operational_health_live and its staging buckets), which read raw when
# queried, over windows ending at the query's now(): two reads seconds apart differ.
EXCLUDED = {"insights_history", "operational_health_live", "stg_marketplace__invocation_buckets"}


def ago(days: float, hours: float = 0) -> str:
    return (NOW - timedelta(days=days, hours=hours)).isoformat()


def conversation(conversation_id: str, *events: tuple[str, str, str, dict]) -> list[dict]:
    """Events of one conversation: (timestamp, agent, event_type, payload) each."""
    return [
        agent_event(
            event_id=f"{conversation_id}-{i}",
            conversation_id=conversation_id,
            timestamp=timestamp,
            agent_name=agent,
            event_type=event_type,
            payload=payload,
            user_id=f"user-{conversation_id}",
        )
        for i, (timestamp, agent, event_type, payload) in enumerate(events)
    ]


MESSAGE = {"text": "hello", "role": "user"}
ERROR = {"error_type": "timeout", "message": "slow"}


def marketplace(prefix: str, days: float, tenant: str, publisher: str = "pub-1") -> list[dict]:
    """One invocation with listed tools, a tool event, a rating and an install."""
    base = {"publisher_id": publisher, "tenant_id": tenant, "agent_id": f"{publisher}-agent"}
    return [
        marketplace_event(id=f"{prefix}-completed", timestamp=ago(days), **base),
        marketplace_event(
            id=f"{prefix}-errored",
            event_type="agent_errored",
            timestamp=ago(days, 1),
            properties={
                "input_tokens": 10,
                "output_tokens": 0,
                "duration_ms": 50,
                "cost_usd": 0,
                "tool_calls": ["search"],
                "error_type": "boom",
            },
            **base,
        ),
        marketplace_event(
            id=f"{prefix}-tool",
            event_type="tool_failed",
            timestamp=ago(days, 2),
            properties={"tool_name": "search", "duration_ms": 12, "error": "x"},
            **base,
        ),
        marketplace_event(
            id=f"{prefix}-rating",
            event_type="user_feedback",
            timestamp=ago(days, 3),
            properties={"rating": 4, "comment": None},
            **base,
        ),
        marketplace_event(
            id=f"{prefix}-install",
            event_type="install",
            timestamp=ago(days, 4),
            properties={"plan": "pro"},
            **base,
        ),
    ]


def first_batch() -> list[dict]:
    return [
        *conversation(
            "conv-old",
            (ago(120), "triage", "conversation_start", {}),
            (ago(120, -1), "triage", "message", MESSAGE),
            (ago(119), "triage", "error", ERROR),
        ),
        *conversation(
            "conv-straddle",
            (ago(90, 3), "triage", "conversation_start", {}),
            (ago(90, 2), "triage", "error", ERROR),
            (ago(90, -2), "billing", "message", MESSAGE),
            (ago(90, -3), "billing", "completion", {}),
        ),
        *conversation(
            "conv-recent",
            (ago(1), "triage", "conversation_start", {}),
            (ago(1, -1), "triage", "message", MESSAGE),
        ),
        *marketplace("m-old-1", 100, "tenant-1"),
        *marketplace("m-old-2", 95, "tenant-2"),
        *marketplace("m-kept-1", 89, "tenant-1"),
        *marketplace("m-recent-2", 3, "tenant-2"),
        *marketplace("m-recent-3", 2, "tenant-3", publisher="pub-2"),
    ]


def second_batch() -> list[dict]:
    """Loaded after the purge, before the next build: newer events only."""
    return [
        *conversation("conv-new", (ago(0, 5), "triage", "message", MESSAGE)),
        *marketplace("m-new-4", 0.2, "tenant-4"),
    ]


def late_batch() -> list[dict]:
    """Loaded after the purge but older than its cutoff: raw keeps them, so must dbt."""
    return [
        *conversation("conv-late-old", (ago(150), "triage", "error", ERROR)),
        agent_event(
            event_id="conv-straddle-late",
            conversation_id="conv-straddle",
            timestamp=ago(95),
            agent_name="intake",
            event_type="message",
            payload=MESSAGE,
            user_id="user-conv-straddle",
        ),
        *marketplace("m-late-5", 140, "tenant-5"),
    ]


def tables(db: Database) -> list[str]:
    rows = db.query(
        "select schemaname || '.' || tablename from pg_tables where schemaname = any(%s)"
        " union all"
        " select schemaname || '.' || viewname from pg_views where schemaname = any(%s)"
        " order by 1",
        (list(SCHEMAS), list(SCHEMAS)),
    )
    return [row[0] for row in rows if row[0].split(".")[1] not in EXCLUDED]


def contents(db: Database) -> dict[str, list[str]]:
    """Every table dbt built, as sorted JSON rows."""
    return {
        table: sorted(row[0] for row in db.query(f"select to_jsonb(t)::text from {table} as t"))
        for table in tables(db)
    }


def assert_same(incremental: dict[str, list[str]], full_refresh: dict[str, list[str]]) -> None:
    assert incremental.keys() == full_refresh.keys()
    for table in incremental:
        assert incremental[table] == full_refresh[table], table


class Scenario:
    purge: dict[str, Any]
    after_purge: dict[str, list[str]]
    after_purge_full_refresh: dict[str, list[str]]
    after_late: dict[str, list[str]]
    after_late_rebuild: dict[str, list[str]]
    after_late_full_refresh: dict[str, list[str]]


@pytest.fixture(scope="module")
def scenario(
    module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    folder: Path = tmp_path_factory.mktemp("retention")
    state = Scenario()
    run_loader(module_db, "load", str(write_ndjson(folder / "1.ndjson", first_batch())))
    dbt("build", *VARS)

    purged = run_loader(module_db, "purge", "--older-than", "90d", "--json")
    state.purge = json.loads(purged.stdout)
    run_loader(module_db, "load", str(write_ndjson(folder / "2.ndjson", second_batch())))
    dbt("build", *VARS)
    state.after_purge = contents(module_db)
    dbt("run", *VARS, "--full-refresh")
    state.after_purge_full_refresh = contents(module_db)

    run_loader(module_db, "load", str(write_ndjson(folder / "3.ndjson", late_batch())))
    dbt("build", *VARS)
    state.after_late = contents(module_db)
    dbt("build", *VARS)
    state.after_late_rebuild = contents(module_db)
    dbt("run", *VARS, "--full-refresh")
    state.after_late_full_refresh = contents(module_db)
    yield state


def test_purge_deleted_exactly_the_old_events(scenario, module_db):
    # conv-old (3 events) and conv-straddle's first two; two marketplace groups of five
    assert (scenario.purge["agent_events"], scenario.purge["marketplace_events"]) == (5, 10)
    assert module_db.scalar("select count(*) from raw.purges") == 1


def test_incremental_build_after_purge_equals_full_refresh(scenario):
    assert_same(scenario.after_purge, scenario.after_purge_full_refresh)


def test_purged_conversations_and_events_are_gone_from_the_marts(scenario):
    staged = "\n".join(scenario.after_purge["staging.stg_agent_events__events"])
    assert "conv-old" not in staged
    assert "conv-straddle-0" not in staged and "conv-straddle-1" not in staged
    facts = [json.loads(row) for row in scenario.after_purge["marts.fct_conversations"]]
    by_id = {row["conversation_id"]: row for row in facts}
    assert set(by_id) == {"conv-straddle", "conv-recent", "conv-new"}
    straddle = by_id["conv-straddle"]
    # recomputed from the two kept events: the purged agent and error are gone
    assert (straddle["events"], straddle["errors"], straddle["agent_names"]) == (2, 0, "billing")
    agents = [
        json.loads(row)
        for row in scenario.after_purge["intermediate.int_conversation_agents_rolled_up"]
    ]
    assert {(a["conversation_id"], a["agent_name"]) for a in agents} == {
        ("conv-straddle", "billing"),
        ("conv-recent", "triage"),
        ("conv-new", "triage"),
    }
    invocations = "\n".join(scenario.after_purge["intermediate.int_invocations_enriched"])
    tool_uses = "\n".join(scenario.after_purge["intermediate.int_tool_uses_unioned"])
    for purged in ("m-old-1", "m-old-2"):
        assert purged not in invocations and purged not in tool_uses
    assert "m-kept-1" in invocations and "m-new-4" in invocations


def test_events_older_than_the_cutoff_loaded_after_the_purge_stay(scenario):
    assert_same(scenario.after_late, scenario.after_late_full_refresh)
    assert_same(scenario.after_late_rebuild, scenario.after_late_full_refresh)
    staged = "\n".join(scenario.after_late_rebuild["staging.stg_agent_events__events"])
    assert "conv-late-old" in staged and "conv-straddle-late" in staged
    assert "m-late-5" in "\n".join(scenario.after_late_rebuild["staging.stg_marketplace__events"])
