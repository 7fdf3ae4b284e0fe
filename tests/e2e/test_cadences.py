"""The three build cadences (selectors.yml) end to end.

The retention scenario of test_retention_dbt (a build, a purge, newer events, then events
older than the purge's cutoff loaded late), built this time only by the cadences as cron runs
them (`dbt build --selector realtime`, then `hourly`, then `daily`): after each step every
staging, intermediate and mart table equals a full refresh. Alongside, invocations planted
minutes and hours before now give `operational_health` values worked out by hand, and a
broken row shows what the frequent cadences test (the rows loaded within `lookback_hours`)
and what only the daily cadence does (every row).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import Database, Dbt, run_loader
from tests.e2e.test_retention_dbt import (
    NOW,
    VARS,
    assert_same,
    contents,
    first_batch,
    late_batch,
    second_batch,
)
from tests.factories import marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

CADENCES = ("realtime", "hourly", "daily")
OPS = {"publisher_id": "pub-ops", "tenant_id": "tenant-ops", "agent_id": "pub-ops-agent"}


def invocation(name: str, minutes_ago: float, duration_ms: float, ok: bool = True) -> dict:
    return marketplace_event(
        id=f"ops-{name}",
        event_type="agent_completed" if ok else "agent_errored",
        timestamp=(NOW - timedelta(minutes=minutes_ago)).isoformat(),
        properties={
            "input_tokens": 10,
            "output_tokens": 5,
            "duration_ms": duration_ms,
            "cost_usd": 0.01,
            "tool_calls": [],
            **({} if ok else {"error_type": "upstream_timeout"}),
        },
        **OPS,
    )


def operational_batch() -> list[dict]:
    """pub-ops: the newest invocation 2 minutes ago ends every window."""
    return [
        invocation("a", 2, 100),
        invocation("b", 10, 5000, ok=False),
        invocation("c", 40, 300),
        invocation("d", 180, 200),
        invocation("e", 20 * 60, 50, ok=False),
        invocation("f", 30 * 60, 999),  # older than the widest window (24 h)
    ]


class Scenario:
    after_purge: dict[str, list[str]]
    after_purge_full_refresh: dict[str, list[str]]
    operational: list[dict]
    after_late: dict[str, list[str]]
    after_late_full_refresh: dict[str, list[str]]


def run_cadences(dbt: Dbt) -> None:
    for cadence in CADENCES:
        dbt("build", "--selector", cadence, *VARS)


@pytest.fixture(scope="module")
def scenario(
    module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    folder: Path = tmp_path_factory.mktemp("cadences")
    state = Scenario()
    run_loader(module_db, "load", str(write_ndjson(folder / "1.ndjson", first_batch())))
    dbt("build", *VARS)

    run_loader(module_db, "purge", "--older-than", "90d")
    newer = [*second_batch(), *operational_batch()]
    run_loader(module_db, "load", str(write_ndjson(folder / "2.ndjson", newer)))
    run_cadences(dbt)
    state.after_purge = contents(module_db)
    state.operational = [
        dict(zip(("publisher_id", "agent_id", "window_minutes"), row[:3], strict=True))
        | dict(zip(FIGURES, row[3:], strict=True))
        for row in module_db.query(
            f"select publisher_id, agent_id, window_minutes, {', '.join(FIGURES)}"
            " from marts.operational_health order by 1, 2, 3"
        )
    ]
    dbt("run", *VARS, "--full-refresh")
    state.after_purge_full_refresh = contents(module_db)

    run_loader(module_db, "load", str(write_ndjson(folder / "3.ndjson", late_batch())))
    run_cadences(dbt)
    state.after_late = contents(module_db)
    dbt("run", *VARS, "--full-refresh")
    state.after_late_full_refresh = contents(module_db)
    yield state


FIGURES = (
    "invocations",
    "errored_invocations",
    "error_rate",
    "avg_response_time_ms",
    "p50_response_time_ms",
    "p95_response_time_ms",
)


def test_cadences_after_a_purge_equal_a_full_refresh(scenario):
    assert "marts.operational_health" in scenario.after_purge
    assert_same(scenario.after_purge, scenario.after_purge_full_refresh)


def test_cadences_after_late_events_equal_a_full_refresh(scenario):
    assert_same(scenario.after_late, scenario.after_late_full_refresh)
    assert "m-late-5" in "\n".join(scenario.after_late["intermediate.int_invocations_enriched"])


def test_operational_windows_end_at_the_newest_invocation(scenario):
    ops = {
        row["window_minutes"]: row
        for row in scenario.operational
        if row["agent_id"] == OPS["agent_id"]
    }
    # 15 minutes before the newest (2 min ago): a (100 ms) and b (errored)
    # 60 minutes: a, b, c (300 ms); 24 hours: a to e (d 200 ms, e errored); f is 30 h old
    expected = {
        15: (2, 1, 1 / 2, 100, 100, 100),
        60: (3, 1, 1 / 3, 200, 100, 300),
        1440: (5, 2, 2 / 5, 200, 200, 300),
    }
    # rates are stored at 8 decimals (1/3 is 0.33333333), the other figures at 6
    got = {minutes: tuple(round(float(row[f]), 8) for f in FIGURES) for minutes, row in ops.items()}
    assert got == {
        minutes: tuple(round(float(v), 8) for v in figures) for minutes, figures in expected.items()
    }
    # pub-1's newest invocation (m-new-4, 0.2 days ago: completed, and errored an hour
    # earlier) is older than the last hour before the newest invocation: the day window only
    pub_1 = [row for row in scenario.operational if row["publisher_id"] == "pub-1"]
    assert [(r["window_minutes"], r["invocations"], r["errored_invocations"]) for r in pub_1] == [
        (1440, 2, 1)
    ]


@pytest.fixture(scope="module")
def broken_old_row(scenario, module_db: Database) -> Iterator[None]:
    """An invocation loaded a day ago loses its publisher (outside every build's window)."""
    broken = module_db.query(
        "update intermediate.int_invocations_enriched"
        " set publisher_id = null, loaded_at = loaded_at - interval '1 day'"
        " where invocation_id = 'ops-f' returning 1"
    )
    assert broken == [(1,)]
    yield


def test_hourly_tests_check_the_rows_loaded_within_the_lookback(broken_old_row, dbt):
    assert dbt("test", "--selector", "hourly", *VARS, check=False).returncode == 0
    daily = dbt("test", "--selector", "daily", *VARS, check=False)
    assert daily.returncode == 1
    assert "not_null_int_invocations_enriched_publisher_id" in daily.stdout


def test_hourly_tests_fail_on_a_broken_row_loaded_recently(broken_old_row, module_db, dbt):
    broken = module_db.query(
        "update intermediate.int_invocations_enriched set publisher_id = null"
        " where invocation_id = 'ops-a' returning 1"
    )
    assert broken == [(1,)]
    hourly = dbt("test", "--selector", "hourly", *VARS, check=False)
    assert hourly.returncode == 1
    assert "not_null_int_invocations_enriched_publisher_id" in hourly.stdout


def test_hourly_relationships_fail_on_an_orphan_loaded_recently(broken_old_row, module_db, dbt):
    """The windowed `relationships` test (macros/relationships_test.sql) still finds orphans."""
    orphaned = module_db.query(
        "update intermediate.int_invocations_enriched set invocation_id = 'ops-orphan'"
        " where invocation_id = 'ops-c' returning 1"
    )
    assert orphaned == [(1,)]
    hourly = dbt("test", "--selector", "hourly", *VARS, check=False)
    assert hourly.returncode == 1
    failed = re.findall(r"Failure in test (\S+)", hourly.stdout)
    assert (
        "relationships_int_invocations_enriched_invocation_id__event_id__ref_stg_marketplace__events_"
        in failed
    )
