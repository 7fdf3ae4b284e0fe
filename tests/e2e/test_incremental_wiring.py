"""Every incremental model is declared with `incremental_model()` (macros/incremental_model.sql),
so it carries the retention pre-hook and, outside staging, its dependency on the purges:
without the hook, what `agent-loader purge` deleted would stay in the model; without the
dependency, the lineage would not show who reads the purges."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

Node = dict[str, Any]

PURGES = "model.agent_analytics.stg_loader__purges"
RETENTION_HOOKS = ("delete_purged_rows(", "delete_rows_to_rebuild(")


def missing_wiring(node: Node) -> list[str]:
    """What an incremental model of the manifest lacks of its wiring; nothing for the others."""
    config = node["config"]
    if config["materialized"] != "incremental":
        return []
    missing = []
    if "incremental_model(" not in node["raw_code"]:
        missing.append("declared with incremental_model()")
    hooks = [hook["sql"] for hook in config["pre-hook"]]
    if not any(name in hook for hook in hooks for name in RETENTION_HOOKS):
        missing.append("retention pre-hook")
    # staging names no edge: the source `loader.purges` would have a second child
    if node["fqn"][1] != "staging" and PURGES not in node["depends_on"]["nodes"]:
        missing.append("purges dependency")
    if config["on_schema_change"] != "fail":
        missing.append("on_schema_change='fail'")
    return missing


@pytest.fixture(scope="module")
def models(dbt) -> dict[str, Node]:
    """The project's models, by name, as `dbt parse` writes them into the manifest."""
    dbt("parse")
    manifest = json.loads((dbt.target_dir / "manifest.json").read_text())
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


def test_every_incremental_model_has_the_retention_wiring(models):
    incremental = {
        name for name, node in models.items() if node["config"]["materialized"] == "incremental"
    }
    # both layers that read raw or staging incrementally, and both kinds of retention
    assert {"stg_agent_events__events", "fct_conversations", "publisher_daily"} <= incremental
    unwired = {name: missing_wiring(models[name]) for name in incremental}
    assert {name: missing for name, missing in unwired.items() if missing} == {}
    staging_parents = models["stg_agent_events__events"]["depends_on"]["nodes"]
    assert PURGES not in staging_parents
    assert "source.agent_analytics.loader.purges" not in staging_parents


def test_incremental_model_writes_the_strategy_and_hook_of_each_kind(models):
    def declared(name: str) -> tuple[str, object, list[str]]:
        config = models[name]["config"]
        hooks = [hook["sql"] for hook in config["pre-hook"] if "model_planner" not in hook["sql"]]
        return config["incremental_strategy"], config["unique_key"], hooks

    assert declared("int_invocations_enriched") == (
        "append",
        None,
        [
            "{{ delete_purged_rows('finished_at', ['invocation_id', 'publisher_id'], "
            "ref('stg_marketplace__events'), ['event_id', 'publisher_id'], 'loaded_at') }}"
        ],
    )
    assert declared("fct_conversations") == (
        "delete+insert",
        "conversation_id",
        [
            "{{ delete_purged_rows('started_at', 'conversation_id', "
            "ref('stg_agent_events__events'), 'conversation_id', 'last_loaded_at') }}"
        ],
    )
    assert declared("publisher_daily") == (
        "delete+insert",
        ["publisher_id", "date_day"],
        ["{{ delete_rows_to_rebuild('date_day', marketplace_as_of_date()) }}"],
    )
    assert declared("conversations_hourly")[2] == ["{{ delete_rows_to_rebuild('hour') }}"]


def test_an_incremental_model_without_its_wiring_is_reported(models):
    wired = models["fct_conversations"]
    assert missing_wiring(wired) == []

    by_hand = copy.deepcopy(wired)
    by_hand["raw_code"] = "{{ config(materialized='incremental') }} select 1 as conversation_id"
    by_hand["config"]["pre-hook"] = [
        hook for hook in wired["config"]["pre-hook"] if "delete_purged_rows" not in hook["sql"]
    ]
    by_hand["depends_on"]["nodes"] = [
        parent for parent in wired["depends_on"]["nodes"] if parent != PURGES
    ]
    by_hand["config"]["on_schema_change"] = "ignore"
    assert missing_wiring(by_hand) == [
        "declared with incremental_model()",
        "retention pre-hook",
        "purges dependency",
        "on_schema_change='fail'",
    ]

    in_staging = copy.deepcopy(by_hand)
    in_staging["fqn"] = ["agent_analytics", "staging", "agent_events", "stg_x"]
    assert "purges dependency" not in missing_wiring(in_staging)

    # a table is rebuilt whole by every build: it needs no retention of its own
    table = copy.deepcopy(by_hand)
    table["config"]["materialized"] = "table"
    assert missing_wiring(table) == []
