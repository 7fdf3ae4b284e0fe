"""One alerts cycle (evaluate, then deliver what is due), and the loops around it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg2.extensions

from loader.alerts import deliver, rules, state
from loader.alerts.routes import Routes


@dataclass
class CycleResult:
    transitions: list[state.Transition] = field(default_factory=list)
    attempts: list[deliver.Attempt] = field(default_factory=list)
    # what the cycle could not evaluate, one line each (a mart not built yet)
    notices: list[str] = field(default_factory=list)


def run_cycle(
    conn: psycopg2.extensions.connection,
    routes: Routes,
    policy: deliver.Policy,
    metrics_relation: str = rules.METRICS_RELATION,
    now: datetime | None = None,
    show: Callable[[str], None] = print,
    tenant_metrics_relation: str = rules.TENANT_METRICS_RELATION,
) -> CycleResult:
    """Evaluate every rule on the freshest rows of its mart (publisher rules: the live
    operational view; tenant rules: the hourly cost metrics), then send every delivery due
    (new transitions, and retries whose backoff has passed). Tenant rules wait, with a
    notice, until the cost metrics mart is built."""
    ruleset = rules.read_rules(conn)
    observations = rules.read_observations(conn, metrics_relation)
    observed = ["publisher"]
    notices = []
    if "tenant" in ruleset.scopes:
        tenants = rules.read_tenant_observations(conn, tenant_metrics_relation)
        if tenants is None:
            notices.append(
                f"tenant rules not evaluated: {tenant_metrics_relation} is missing"
                " (run `dbt build --selector hourly`)"
            )
        else:
            observations += tenants
            observed.append("tenant")
    conn.commit()
    moment = now or datetime.now(timezone.utc)
    transitions = state.evaluate(
        conn, ruleset, observations, routes.receivers_for, moment, tuple(observed)
    )
    attempts = deliver.deliver_due(conn, routes.receivers, policy, show)
    return CycleResult(transitions, attempts, notices)


def run_once(
    conn: psycopg2.extensions.connection,
    routes: Routes,
    policy: deliver.Policy,
    metrics_relation: str = rules.METRICS_RELATION,
    retry_within: float = 50.0,
    show: Callable[[str], None] = print,
) -> CycleResult:
    """One cycle for cron, then the retries falling due within `retry_within` seconds (so a
    once-a-minute cron line retries a failing receiver before the next run starts)."""
    result = run_cycle(conn, routes, policy, metrics_relation, show=show)
    deadline = time.monotonic() + retry_within
    while (wait := deliver.seconds_to_next_retry(conn)) is not None:
        if time.monotonic() + wait > deadline:
            break
        time.sleep(wait)
        result.attempts.extend(deliver.deliver_due(conn, routes.receivers, policy, show))
    return result


def run_forever(
    conn: psycopg2.extensions.connection,
    routes: Routes,
    policy: deliver.Policy,
    interval: float,
    metrics_relation: str = rules.METRICS_RELATION,
    show: Callable[[str], None] = print,
    report: Callable[[CycleResult], None] = lambda result: None,
) -> None:
    """A cycle every `interval` seconds until stopped (systemd)."""
    while True:
        started = time.monotonic()
        report(run_cycle(conn, routes, policy, metrics_relation, show=show))
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
