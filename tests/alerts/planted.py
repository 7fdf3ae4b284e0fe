"""The two relations `agent-loader alerts` reads, planted in a test database without dbt:
`seeds.alert_rules` as `dbt seed` makes it (the shipped CSV, with the seed's column types),
and the operational mart `alerts` reads (`rules.METRICS_RELATION`) as a table with the mart's
columns and rows the test chooses. The dbt
suite (test_alerts_dbt.py) reads the real ones, built from loaded events."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timezone

from loader.alerts.rules import METRICS_RELATION
from tests.conftest import REPO, Database

RULES_CSV = REPO / "seeds" / "alert_rules.csv"


@dataclass(frozen=True)
class Pair:
    """One publisher's agent over one window: `errored` of `invocations` failed."""

    publisher_id: str
    invocations: int
    errored: int
    p95_ms: int = 100
    agent_id: str = "agent-1"
    window_minutes: int = 15


def plant_rules(db: Database, extra_rows: list[str] | tuple[str, ...] = ()) -> None:
    """The shipped rules, plus `extra_rows` (CSV lines: overrides for one subject)."""
    db.query(
        """
        create schema if not exists seeds;
        drop table if exists seeds.alert_rules;
        create table seeds.alert_rules (
            rule_id text, metric text, comparison text, threshold numeric,
            window_minutes integer, min_samples integer, severity text, for_minutes integer,
            cooldown_minutes integer, scope text, subject_id text
        )
        """
    )
    lines = RULES_CSV.read_text().splitlines()[1:] + list(extra_rows)
    for row in csv.reader(lines):
        db.query(
            "insert into seeds.alert_rules values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " nullif(%s, ''))",
            row,
        )


def plant_metrics(db: Database, pairs: list[Pair], window_end_at: datetime | None = None) -> None:
    """Replace the mart's rows with `pairs` (error rate = errored / invocations)."""
    end = window_end_at or datetime.now(timezone.utc)
    db.query(
        f"""
        create schema if not exists marts;
        create table if not exists {METRICS_RELATION} (
            publisher_id text, agent_id text, window_minutes integer, invocations bigint,
            completed_invocations bigint, errored_invocations bigint, error_rate numeric(38, 8),
            p95_response_time_ms numeric(38, 6), window_end_at timestamptz
        );
        truncate {METRICS_RELATION}
        """
    )
    for pair in pairs:
        db.query(
            f"insert into {METRICS_RELATION} values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                pair.publisher_id,
                pair.agent_id,
                pair.window_minutes,
                pair.invocations,
                pair.invocations - pair.errored,
                pair.errored,
                pair.errored / pair.invocations,
                pair.p95_ms,
                end,
            ),
        )
