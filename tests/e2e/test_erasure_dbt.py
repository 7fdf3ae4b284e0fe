"""Erasure end to end: after `agent-loader purge --user` and `--tenant`, the next incremental
`dbt build` leaves no row of that user or tenant in staging, intermediate, marts or the
snapshot, and gives what `--full-refresh` gives on the erased raw tables.

The warehouse tokenizes user ids, so raw and every model hold the user's token: the purge is
given the clear id. The erased user's conversations and the erased tenant's invocations,
tool events, ratings and installs are spread over days, publishers and agents that other
users and tenants share, so the models must recompute shared grains, not only drop keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from loader.ingest.privacy import TOKEN_KEY_VARIABLE, Privacy
from tests.conftest import Database, Dbt, run_loader
from tests.e2e.test_retention_dbt import (
    ERROR,
    MESSAGE,
    VARS,
    ago,
    assert_same,
    contents,
    marketplace,
)
from tests.factories import agent_event, write_ndjson

pytestmark = pytest.mark.dbt

KEY = "erasure-dbt-test-key-0123456789"
ERASED_USER = "jonas.weber@example.de"
KEPT_USER = "user-kept"
ERASED_TENANT = "tenant-erased"
KEPT_TENANT = "tenant-kept"


def user_conversation(conversation_id: str, user: str, days: float) -> list[dict]:
    steps = [
        ("conversation_start", "triage", {}),
        ("message", "triage", MESSAGE),
        ("error", "billing", ERROR),
        ("completion", "billing", {}),
    ]
    return [
        agent_event(
            event_id=f"{conversation_id}-{i}",
            conversation_id=conversation_id,
            timestamp=ago(days, -i),
            agent_name=agent,
            event_type=event_type,
            payload=payload,
            user_id=user,
        )
        for i, (event_type, agent, payload) in enumerate(steps)
    ]


def first_batch() -> list[dict]:
    return [
        *user_conversation("conv-erased-1", ERASED_USER, 3),
        *user_conversation("conv-erased-2", ERASED_USER, 1),
        *user_conversation("conv-kept-1", KEPT_USER, 3),  # same day and agents as erased-1
        *user_conversation("conv-kept-2", KEPT_USER, 2),
        *marketplace("m-erased-1", 3, ERASED_TENANT),
        *marketplace("m-erased-2", 1, ERASED_TENANT, publisher="pub-2"),
        *marketplace("m-kept-1", 3, KEPT_TENANT),  # same day and publisher as erased-1
        *marketplace("m-kept-2", 2, KEPT_TENANT, publisher="pub-2"),
    ]


def second_batch() -> list[dict]:
    """Loaded after the erasure, before the next build."""
    return [
        *user_conversation("conv-kept-3", KEPT_USER, 0.2),
        *marketplace("m-kept-3", 0.2, KEPT_TENANT),
    ]


def rows_mentioning(db: Database, needles: list[str]) -> dict[str, int]:
    """For every table and view dbt built (snapshot included), its rows holding a needle."""
    relations = db.query(
        "select schemaname || '.' || tablename from pg_tables"
        " where schemaname in ('staging', 'intermediate', 'marts')"
        " union all select schemaname || '.' || viewname from pg_views"
        " where schemaname in ('staging', 'intermediate', 'marts')"
    )
    found = {}
    for (relation,) in relations:
        count = db.scalar(
            f"select count(*) from {relation} as t"
            " where exists (select from unnest(%s::text[]) as n"
            " where strpos(to_jsonb(t)::text, n) > 0)",
            (needles,),
        )
        if count:
            found[relation] = count
    return found


class Keyed(Database):
    """A database whose `agent-loader` subprocesses get the token key."""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, TOKEN_KEY_VARIABLE: KEY}


class Scenario:
    before: dict[str, int]
    user_purge: dict
    tenant_purge: dict
    after: dict[str, int]
    kept: dict[str, int]
    incremental: dict[str, list[str]]
    full_refresh: dict[str, list[str]]


@pytest.fixture(scope="module")
def scenario(
    module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    folder: Path = tmp_path_factory.mktemp("erasure")
    state = Scenario()
    token = Privacy(key=KEY.encode()).token(ERASED_USER)
    needles = [ERASED_USER, token, ERASED_TENANT, "conv-erased", "m-erased"]
    keyed = Keyed(module_db.params)
    run_loader(keyed, "init", "--tokenize-users")
    run_loader(keyed, "load", str(write_ndjson(folder / "1.ndjson", first_batch())))
    dbt("build", *VARS)
    state.before = rows_mentioning(module_db, needles)

    state.user_purge = json.loads(
        run_loader(keyed, "purge", "--user", ERASED_USER, "--json").stdout
    )
    state.tenant_purge = json.loads(
        run_loader(keyed, "purge", "--tenant", ERASED_TENANT, "--json").stdout
    )
    run_loader(keyed, "load", str(write_ndjson(folder / "2.ndjson", second_batch())))
    dbt("build", *VARS)
    state.after = rows_mentioning(module_db, needles)
    kept_token = Privacy(key=KEY.encode()).token(KEPT_USER)
    state.kept = rows_mentioning(module_db, [kept_token, KEPT_TENANT])
    state.incremental = contents(module_db)
    dbt("run", *VARS, "--full-refresh")
    state.full_refresh = contents(module_db)
    yield state


def test_the_purges_deleted_the_user_and_tenant_raw_rows(scenario, module_db):
    assert scenario.user_purge["agent_events"] == 8
    assert scenario.tenant_purge["marketplace_events"] == 10
    assert module_db.query("select erased from raw.purges order by purge_id") == [
        ("user",),
        ("tenant",),
    ]


def test_before_the_purge_the_user_and_tenant_were_in_every_layer(scenario):
    layers = {relation.split(".")[0] for relation in scenario.before}
    assert layers == {"staging", "intermediate", "marts"}
    assert "marts.fct_conversations" in scenario.before
    assert "marts.fct_invocations" in scenario.before


def test_after_the_next_build_no_layer_holds_a_row_of_either(scenario):
    assert scenario.after == {}


def test_the_other_user_and_tenant_are_still_there(scenario):
    assert "marts.fct_conversations" in scenario.kept
    assert "marts.fct_invocations" in scenario.kept
    assert "staging.stg_agent_events__events" in scenario.kept


def test_the_incremental_build_after_an_erasure_equals_a_full_refresh(scenario):
    assert_same(scenario.incremental, scenario.full_refresh)
