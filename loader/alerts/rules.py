"""The alert rules (seed `alert_rules`) and the metric values they are evaluated on.

The metrics are read, never computed here. Publisher rules read
`marts.operational_health_live` (a view over the live rollup raw's triggers keep, fresh as
soon as a load commits), which holds them with the formulas of macros/metrics.sql, the same
as every other mart. Tenant rules read the current period's rows of
`marts.tenant_llm_metrics` (built hourly), the LLM cost metrics the cost insights test: the
month's budget used, the day's cost spike.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import psycopg2.extensions
import psycopg2.sql

from loader.errors import AlertRulesNotBuilt
from loader.ingest.warehouse import one_row

RULES_RELATION = "seeds.alert_rules"
METRICS_RELATION = "marts.operational_health_live"
TENANT_METRICS_RELATION = "marts.tenant_llm_metrics"

# metric -> the column counting its sample, in the metrics relation
SAMPLE_COLUMNS: dict[str, str] = {
    "error_rate": "invocations",
    "p95_response_time_ms": "completed_invocations",
}

# tenant metric -> the window its rules name: the UTC day (1440) or none (the calendar month
# to date); the sample is the mart's `sample_size`
TENANT_METRIC_WINDOWS: dict[str, int | None] = {
    "llm_budget_used_rate": None,
    "llm_cost_spike_ratio": 1440,
}

COMPARISONS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True)
class Rule:
    rule_id: str
    metric: str
    comparison: str
    threshold: Decimal
    window_minutes: int | None
    min_samples: int
    severity: str
    for_minutes: int
    cooldown_minutes: int
    scope: str
    subject_id: str | None

    def breaches(self, value: Decimal | None, samples: int) -> bool:
        """True when the value is known, the sample large enough and the comparison holds."""
        if value is None or samples < self.min_samples:
            return False
        return COMPARISONS[self.comparison](Decimal(value), self.threshold)


@dataclass(frozen=True)
class RuleSet:
    """Each rule's default row and its per-subject overrides."""

    defaults: dict[str, Rule]
    overrides: dict[tuple[str, str], Rule]

    @property
    def rule_ids(self) -> list[str]:
        return sorted({*self.defaults, *(rule_id for rule_id, _ in self.overrides)})

    def for_subject(self, rule_id: str, subject_id: str) -> Rule | None:
        """The subject's own row when it has one, else the default (None: no rule for it)."""
        return self.overrides.get((rule_id, subject_id)) or self.defaults.get(rule_id)

    @property
    def scopes(self) -> set[str]:
        return {rule.scope for rule in (*self.defaults.values(), *self.overrides.values())}


@dataclass(frozen=True)
class Observation:
    """One subject's metrics over one window, as the mart has them: a publisher's agent
    (scope `publisher`), or a tenant (scope `tenant`, `agent_id` empty) over its day or
    month (`period_start_date`)."""

    scope: str
    subject_id: str
    agent_id: str
    window_minutes: int | None
    values: dict[str, Decimal | None]
    samples: dict[str, int]
    window_end_at: datetime | None
    period_start_date: date | None = None


def _exists(conn: psycopg2.extensions.connection, relation: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("select to_regclass(%s) is not null", (relation,))
        return bool(one_row(cur)[0])


def read_rules(conn: psycopg2.extensions.connection) -> RuleSet:
    """The seed's rules; AlertRulesNotBuilt when `dbt seed` has not built it."""
    if not _exists(conn, RULES_RELATION):
        raise AlertRulesNotBuilt(
            f"{RULES_RELATION} is missing: run `dbt seed` (or `dbt build`) first"
        )
    with conn.cursor() as cur:
        cur.execute(
            """
            select rule_id, metric, comparison, threshold, window_minutes, min_samples,
                   severity, for_minutes, cooldown_minutes, scope, nullif(subject_id, '')
            from seeds.alert_rules
            order by rule_id, subject_id nulls first
            """
        )
        rows = [Rule(*row) for row in cur.fetchall()]
    defaults = {rule.rule_id: rule for rule in rows if rule.subject_id is None}
    overrides = {
        (rule.rule_id, rule.subject_id): rule for rule in rows if rule.subject_id is not None
    }
    return RuleSet(defaults, overrides)


def read_observations(
    conn: psycopg2.extensions.connection, relation: str = METRICS_RELATION
) -> list[Observation]:
    """Every row of the operational mart (per publisher, agent and window)."""
    if not _exists(conn, relation):
        raise AlertRulesNotBuilt(f"{relation} is missing: run `dbt build --selector realtime` once")
    schema, _, name = relation.rpartition(".")
    query = psycopg2.sql.SQL(
        """
        select publisher_id, agent_id, window_minutes, error_rate, invocations,
               p95_response_time_ms, completed_invocations, window_end_at
        from {}
        """
    ).format(psycopg2.sql.Identifier(schema or "public", name))
    with conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    return [
        Observation(
            scope="publisher",
            subject_id=publisher_id,
            agent_id=agent_id,
            window_minutes=window_minutes,
            values={"error_rate": error_rate, "p95_response_time_ms": p95},
            samples={"error_rate": invocations, "p95_response_time_ms": completed},
            window_end_at=window_end_at,
        )
        for publisher_id, agent_id, window_minutes, error_rate, invocations, p95, completed, (
            window_end_at
        ) in rows
    ]


def read_tenant_observations(
    conn: psycopg2.extensions.connection, relation: str = TENANT_METRICS_RELATION
) -> list[Observation] | None:
    """Each tenant's cost metrics of the current period (the `as_of` month or day), one
    observation per tenant and metric; None when the mart has not been built yet."""
    if not _exists(conn, relation):
        return None
    schema, _, name = relation.rpartition(".")
    query = psycopg2.sql.SQL(
        """
        select tenant_id, metric_name, metric_value, sample_size, period_start_date
        from {}
        where is_current_period and metric_name = any(%s)
        """
    ).format(psycopg2.sql.Identifier(schema or "public", name))
    with conn.cursor() as cur:
        cur.execute(query, (list(TENANT_METRIC_WINDOWS),))
        rows = cur.fetchall()
    return [
        Observation(
            scope="tenant",
            subject_id=tenant_id,
            agent_id="",
            window_minutes=TENANT_METRIC_WINDOWS[metric],
            values={metric: value},
            samples={metric: samples},
            window_end_at=None,
            period_start_date=period_start_date,
        )
        for tenant_id, metric, value, samples, period_start_date in rows
    ]
