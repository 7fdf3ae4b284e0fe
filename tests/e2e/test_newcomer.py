"""What a newcomer meets when a step is skipped or interrupted: one message that says what to do."""

from __future__ import annotations

import pytest

from tests.conftest import Dbt


@pytest.mark.dbt
def test_dbt_build_before_init_stops_at_once_naming_agent_loader_init(empty_db, tmp_path):
    result = Dbt(empty_db, tmp_path)("build", check=False)
    assert result.returncode != 0
    assert (
        f"schema raw is not set up in database {empty_db.name} (missing: raw.agent_events,"
        " raw.marketplace_events, raw.marketplace_live_rollup, raw.purges, raw.spans): run"
        " `agent-loader init` against this database" in result.stdout
    ), result.stdout[-3000:]
    assert 'relation "raw.' not in result.stdout  # no model ran against the missing tables


SNAPSHOT_TIMES = ("dbt_updated_at", "dbt_valid_from", "dbt_valid_to")


def column_types(database, table: str) -> dict[str, str]:
    return dict(
        database.query(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = 'marts' and table_name = %s and column_name like 'dbt_%%'",
            (table,),
        )
    )


@pytest.fixture(scope="module")
def built(dbt, module_db):
    """The insights, the snapshot of them and every model they read (no data: types only)."""
    dbt("build", "--select", "+insights_history", "--resource-type", "model", "seed", "snapshot")
    return module_db


@pytest.mark.dbt
def test_the_publisher_dashboards_key_is_not_null_in_the_database(built):
    nullable = built.scalar(
        "select is_nullable from information_schema.columns where table_schema = 'marts'"
        " and table_name = 'publisher_dashboard' and column_name = 'publisher_id'"
    )
    assert nullable == "NO"


@pytest.mark.dbt
def test_insights_history_records_its_times_with_time_zone_and_converts_an_older_table(
    built, dbt, module_db
):
    types = column_types(module_db, "insights_history")
    assert {name: types[name] for name in SNAPSHOT_TIMES} == dict.fromkeys(
        SNAPSHOT_TIMES, "timestamp with time zone"
    )

    # A table recorded before: the times without a time zone, written in the session's zone.
    module_db.query(
        "alter table marts.insights_history"
        + ",".join(f" alter column {name} type timestamp" for name in SNAPSHOT_TIMES)
    )
    module_db.query(
        "insert into marts.insights_history (insight_id, dbt_scd_id, dbt_updated_at,"
        " dbt_valid_from) values ('old-finding', 'old-version', '2026-01-02 03:04:05',"
        " '2026-01-02 03:04:05')"
    )
    dbt("snapshot", "--select", "insights_history")
    types = column_types(module_db, "insights_history")
    assert {name: types[name] for name in SNAPSHOT_TIMES} == dict.fromkeys(
        SNAPSHOT_TIMES, "timestamp with time zone"
    )
    assert module_db.scalar(
        "select dbt_valid_from = '2026-01-02 03:04:05'::timestamp::timestamptz"
        " from marts.insights_history where insight_id = 'old-finding'"
    )
