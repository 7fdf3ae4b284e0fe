"""The alert rules (seed `alert_rules`) and the metric values they are evaluated on.

The metrics are read, never computed here: `marts.operational_health_live` (a view over the
raw tail, fresh as soon as a load commits) holds them with the formulas of macros/metrics.sql,
the same as every other mart.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg2.extensions
import psycopg2.sql

from loader.errors import AlertRulesNotBuilt
from loader.ingest.warehouse import one_row

RULES_RELATION = "seeds.alert_rules"
METRICS_RELATION = "marts.operational_health_live"

# metric -> the column counting its sample, in the metrics relation
SAMPLE_COLUMNS: dict[str, str] = {
    "error_rate": "invocations",
    "p95_response_time_ms": "completed_invocations",
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
    window_minutes: int
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


@dataclass(frozen=True)
class Observation:
    """One publisher's agent's metrics over one window, as the mart has them."""

    publisher_id: str
    agent_id: str
    window_minutes: int
    values: dict[str, Decimal | None]
    samples: dict[str, int]
    window_end_at: datetime


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
            publisher_id=publisher_id,
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
