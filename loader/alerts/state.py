"""Each alert's state (ok, pending, firing, resolved) and the transitions that notify.

An alert is one rule for one subject: a publisher and agent, or a tenant (agent empty).
Hysteresis both ways: a breach fires only once it has lasted `for_minutes` (shorter ones
stay `pending` and notify nobody), and a firing alert resolves only once its rule has been
clear for `cooldown_minutes` (a breach within that keeps it firing, unnotified). So a
flapping metric notifies at most once per episode.

One evaluation at a time: it holds `alerts.alert_states` in exclusive mode (a lock only
the alerts role and the loader's owner can take), so two instances evaluate one after the
other, and the second sees the first's states. A transition is a row with a unique
(alert, episode, kind): written once, with one delivery row per receiver, in the same
transaction as the state change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2.extensions

from loader.alerts.rules import Observation, Rule, RuleSet


@dataclass
class AlertState:
    alert_key: str
    rule_id: str
    scope: str
    subject_id: str
    agent_id: str
    status: str
    episode: int
    breaching_since: datetime | None
    clear_since: datetime | None
    fired_at: datetime | None
    resolved_at: datetime | None
    last_value: Decimal | None
    last_samples: int | None


@dataclass(frozen=True)
class Transition:
    transition_id: int
    kind: str
    facts: dict[str, Any]
    receivers: list[str]


def alert_key(rule_id: str, scope: str, subject_id: str, agent_id: str) -> str:
    return f"{rule_id}/{scope}:{subject_id}/{agent_id}"


def step(
    state: AlertState, rule: Rule, value: Decimal | None, samples: int, now: datetime
) -> str | None:
    """Advance one alert by one evaluation; returns 'firing' or 'resolved' when it notifies."""
    state.last_value = value
    state.last_samples = samples
    breach = rule.breaches(value, samples)
    if state.status == "firing":
        if breach:
            state.clear_since = None
            return None
        state.clear_since = state.clear_since or now
        if now - state.clear_since >= timedelta(minutes=rule.cooldown_minutes):
            state.status = "resolved"
            state.resolved_at = now
            state.breaching_since = None
            state.clear_since = None
            return "resolved"
        return None
    # ok, pending or resolved
    if not breach:
        if state.status == "pending":
            state.status = "ok"
        state.breaching_since = None
        return None
    state.breaching_since = state.breaching_since or now
    if now - state.breaching_since >= timedelta(minutes=rule.for_minutes):
        state.status = "firing"
        state.episode += 1
        state.fired_at = now
        state.resolved_at = None
        state.clear_since = None
        return "firing"
    state.status = "pending"
    return None


def facts(
    state: AlertState, rule: Rule, kind: str, now: datetime, observation: Observation | None
) -> dict:
    """Everything a notification may say; each receiver's body takes what it may read."""
    window_end_at = observation.window_end_at if observation else None
    period_start = observation.period_start_date if observation else None
    return {
        "alert_id": state.alert_key,
        "status": kind,
        "episode": state.episode,
        "rule_id": rule.rule_id,
        "severity": rule.severity,
        "metric": rule.metric,
        "comparison": rule.comparison,
        "threshold": str(rule.threshold),
        "window_minutes": rule.window_minutes,
        "scope": rule.scope,
        "publisher_id": state.subject_id if rule.scope == "publisher" else None,
        "tenant_id": state.subject_id if rule.scope == "tenant" else None,
        "agent_id": state.agent_id or None,
        "value": None if state.last_value is None else str(state.last_value),
        "samples": state.last_samples,
        "window_end_at": window_end_at.isoformat() if window_end_at else None,
        "period_start_date": period_start.isoformat() if period_start else None,
        "fired_at": state.fired_at.isoformat() if state.fired_at else None,
        "resolved_at": state.resolved_at.isoformat() if state.resolved_at else None,
        "occurred_at": now.isoformat(),
    }


_STATE_COLUMNS = (
    "alert_key, rule_id, scope, subject_id, agent_id, status, episode, breaching_since,"
    " clear_since, fired_at, resolved_at, last_value, last_samples"
)


def _read_states(conn: psycopg2.extensions.connection) -> dict[str, AlertState]:
    with conn.cursor() as cur:
        cur.execute(f"select {_STATE_COLUMNS} from alerts.alert_states")
        return {row[0]: AlertState(*row) for row in cur.fetchall()}


def _save_state(cur: Any, state: AlertState, now: datetime) -> None:
    cur.execute(
        f"""
        insert into alerts.alert_states ({_STATE_COLUMNS}, evaluated_at)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (alert_key) do update set
            status = excluded.status, episode = excluded.episode,
            breaching_since = excluded.breaching_since, clear_since = excluded.clear_since,
            fired_at = excluded.fired_at, resolved_at = excluded.resolved_at,
            last_value = excluded.last_value, last_samples = excluded.last_samples,
            evaluated_at = excluded.evaluated_at
        """,
        (
            state.alert_key,
            state.rule_id,
            state.scope,
            state.subject_id,
            state.agent_id,
            state.status,
            state.episode,
            state.breaching_since,
            state.clear_since,
            state.fired_at,
            state.resolved_at,
            state.last_value,
            state.last_samples,
            now,
        ),
    )


Input = tuple[AlertState, Rule, Decimal | None, int, Observation | None]


def _inputs(
    rules: RuleSet,
    observations: list[Observation],
    states: dict[str, AlertState],
    observed_scopes: tuple[str, ...],
) -> list[Input]:
    """Each alert to step, with its value, sample and observation: every rule on every
    observation of its scope, metric and window (alerts that never breached get no state
    until they do), then each pending or firing alert of an observed scope that no
    observation named (clear: value None)."""
    seen: set[str] = set()
    inputs: list[Input] = []
    for observation in observations:
        for rule_id in rules.rule_ids:
            rule = rules.for_subject(rule_id, observation.subject_id)
            if (
                rule is None
                or rule.scope != observation.scope
                or rule.metric not in observation.values
                or rule.window_minutes != observation.window_minutes
            ):
                continue
            scope, subject_id = observation.scope, observation.subject_id
            key = alert_key(rule_id, scope, subject_id, observation.agent_id)
            value = observation.values[rule.metric]
            samples = observation.samples.get(rule.metric) or 0
            state = states.get(key)
            if state is None:
                if not rule.breaches(value, samples):
                    continue  # no row for alerts that never breached
                state = AlertState(
                    key, rule_id, scope, subject_id, observation.agent_id,
                    "ok", 0, None, None, None, None, None, None,
                )  # fmt: skip
            seen.add(key)
            inputs.append((state, rule, value, samples, observation))
    for key, state in states.items():
        rule = rules.for_subject(state.rule_id, state.subject_id)
        if (
            key not in seen
            and rule is not None
            and state.scope in observed_scopes
            and state.status in ("pending", "firing")
        ):
            inputs.append((state, rule, None, 0, None))
    return inputs


def evaluate(
    conn: psycopg2.extensions.connection,
    rules: RuleSet,
    observations: list[Observation],
    receivers_for: Any,
    now: datetime,
    observed_scopes: tuple[str, ...] = ("publisher", "tenant"),
) -> list[Transition]:
    """One evaluation of every rule on every observation, committed as one transaction.

    `receivers_for(scope, subject_id)` names the receivers of a subject's alerts; each new
    transition gets one delivery row per receiver. An alert whose subject has no row any
    more (no invocation in the window; no LLM call in the new month or day) counts as clear,
    when its scope was observed (`observed_scopes`: a mart not built yet clears nothing).
    """
    transitions: list[Transition] = []
    with conn.cursor() as cur:
        cur.execute("lock table alerts.alert_states in exclusive mode")
        inputs = _inputs(rules, observations, _read_states(conn), observed_scopes)
        for state, rule, value, samples, seen_in in inputs:
            kind = step(state, rule, value, samples, now)
            _save_state(cur, state, now)
            if kind is None:
                continue
            body = facts(state, rule, kind, now, seen_in)
            cur.execute(
                """
                insert into alerts.transitions (alert_key, episode, kind, occurred_at, facts)
                values (%s, %s, %s, %s, %s)
                on conflict (alert_key, episode, kind) do nothing
                returning transition_id
                """,
                (state.alert_key, state.episode, kind, now, json.dumps(body)),
            )
            row = cur.fetchone()
            if row is None:
                continue
            receivers = receivers_for(state.scope, state.subject_id)
            for receiver in receivers:
                cur.execute(
                    """
                    insert into alerts.deliveries (transition_id, receiver, status, next_attempt_at)
                    values (%s, %s, 'pending', now())
                    """,
                    (row[0], receiver),
                )
            transitions.append(Transition(row[0], kind, body, receivers))
    conn.commit()
    return transitions
