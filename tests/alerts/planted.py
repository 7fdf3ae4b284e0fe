"""The relations `agent-loader alerts` reads, planted in a test database without dbt:
`seeds.alert_rules` as `dbt seed` makes it (the shipped CSV, with the seed's column types),
the operational mart (`rules.METRICS_RELATION`) and the tenant cost metrics
(`rules.TENANT_METRICS_RELATION`) as tables with the marts' columns and rows the test
chooses. The dbt suite (test_alerts_dbt.py) reads the real ones, built from loaded events."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timezone

from loader.alerts.rules import METRICS_RELATION, TENANT_METRICS_RELATION
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
            "insert into seeds.alert_rules values (%s, %s, %s, %s, nullif(%s, '')::integer, %s,"
            " %s, %s, %s, %s, nullif(%s, ''))",
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


@dataclass(frozen=True)
class TenantMetric:
    """One tenant's metric of the current period, as `tenant_llm_metrics` has it."""

    tenant_id: str
    metric_name: str
    value: float | None
    sample_size: int
    period_start_date: date
    period: str = "month"


def plant_tenant_metrics(db: Database, metrics: list[TenantMetric]) -> None:
    """Replace the tenant metrics mart's rows with `metrics` (all of the current period)."""
    db.query(
        f"""
        create schema if not exists marts;
        create table if not exists {TENANT_METRICS_RELATION} (
            tenant_id text, metric_name text, period text, metric_value numeric(38, 8),
            sample_size bigint, is_current_period boolean, period_start_date date,
            as_of_date date
        );
        truncate {TENANT_METRICS_RELATION}
        """
    )
    for metric in metrics:
        db.query(
            f"insert into {TENANT_METRICS_RELATION} values (%s, %s, %s, %s, %s, true, %s, %s)",
            (
                metric.tenant_id,
                metric.metric_name,
                metric.period,
                metric.value,
                metric.sample_size,
                metric.period_start_date,
                metric.period_start_date,
            ),
        )
