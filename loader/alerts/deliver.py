"""Sending transitions to receivers: bodies, signatures, retries, and the delivery log.

Never twice: a delivery (one transition, one receiver) is claimed with
`select ... for update skip locked` and marked `sending` (with the sender's backend pid and
start time) in a committed transaction before its request goes out; the outcome is recorded
after. Two senders never claim the same row; a sender that dies mid-request leaves `sending`
behind, and the next run, seeing that backend gone, marks it `interrupted` and does not send
it again: at most once in that window (the receiver may or may not have it), recorded in the
delivery log, rather than a duplicate. A failed attempt (non-2xx, timeout, refused) is retried
after `backoff * 2 ** (attempt - 1)` seconds, up to `max_attempts`, then `failed`.
"""

from __future__ import annotations

import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions

from loader.alerts.routes import STDOUT, Receiver
from loader.ingest.warehouse import one_row

SIGNATURE_HEADER = "X-Agent-Analytics-Signature"
TIMESTAMP_HEADER = "X-Agent-Analytics-Timestamp"
DELIVERY_HEADER = "X-Agent-Analytics-Delivery"

# What each audience may not read. A publisher reads no mart with the exact operational
# values (its marts are the coarsened, suppressed `*_shared` ones), so its body says which
# rule crossed which threshold, never the value or the sample. A tenant reads its own rows
# of `tenant_llm_metrics`, value and sample included, so its body has both; it only ever
# gets its own alerts (routes.py), which name no publisher or other tenant.
HIDDEN_FROM: dict[str, tuple[str, ...]] = {"publisher": ("value", "samples")}


@dataclass(frozen=True)
class Policy:
    timeout_seconds: float = 5.0
    max_attempts: int = 5
    backoff_seconds: float = 2.0


@dataclass(frozen=True)
class Attempt:
    transition_id: int
    receiver: str
    attempt: int
    status_code: int | None
    error: str | None
    outcome: str


def visible_facts(facts: dict[str, Any], audience: str) -> dict[str, Any]:
    hidden = HIDDEN_FROM.get(audience, ())
    return {key: value for key, value in facts.items() if key not in hidden}


def slack_text(facts: dict[str, Any]) -> str:
    subject = facts.get("publisher_id") or facts.get("tenant_id")
    agent = f", agent {facts['agent_id']}" if facts.get("agent_id") else ""
    window = (
        f"over {facts['window_minutes']} min"
        if facts.get("window_minutes")
        else f"in the month from {facts.get('period_start_date')}"
    )
    line = (
        f"[{facts['status'].upper()}] {facts['severity']} {facts['rule_id']}:"
        f" {facts['scope']} {subject}{agent}:"
        f" {facts['metric']} {facts['comparison']} {facts['threshold']} {window}"
    )
    if facts.get("value") is not None:
        line += f" (now {facts['value']}, {facts['samples']} samples)"
    return line


def body(facts: dict[str, Any], receiver: Receiver, delivery_id: str) -> bytes:
    """The request body: the generic JSON document or Slack's `{"text": ...}`."""
    shown = visible_facts(facts, receiver.audience)
    if receiver.format == "slack":
        document: dict[str, Any] = {"text": slack_text(shown)}
    else:
        document = {"delivery_id": delivery_id, "event": f"alert.{facts['status']}", "alert": shown}
    return json.dumps(document, sort_keys=True).encode()


def signature(secret: bytes, timestamp: str, payload: bytes) -> str:
    """`sha256=` + HMAC-SHA256 of `timestamp.body`: a receiver checks both, so an old
    request replayed later fails its timestamp check."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + payload, "sha256").hexdigest()


def post(receiver: Receiver, payload: bytes, delivery_id: str, timeout: float) -> int:
    """POST once; returns the status code (raises OSError on timeout or refusal)."""
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        receiver.url,
        data=payload,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "agent-loader-alerts",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(receiver.secret, timestamp, payload),
            DELIVERY_HEADER: delivery_id,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def mark_interrupted(conn: psycopg2.extensions.connection) -> int:
    """Deliveries left `sending` by a sender whose backend is gone: `interrupted`."""
    with conn.cursor() as cur:
        cur.execute(
            """
            with gone as (
                update alerts.deliveries as deliveries
                set status = 'interrupted', finished_at = now()
                where status = 'sending'
                    and not exists (
                        select 1 from pg_stat_activity as activity
                        where activity.pid = deliveries.sender_pid
                            and activity.backend_start = deliveries.sender_backend_start
                    )
                returning transition_id, receiver
            )
            update alerts.delivery_attempts as attempts
            set finished_at = now(),
                error = 'interrupted: the sender stopped mid-request; not sent again'
            from gone
            where attempts.transition_id = gone.transition_id
                and attempts.receiver = gone.receiver
                and attempts.finished_at is null
            """
        )
        count = cur.rowcount
    conn.commit()
    return count


def _claim(conn: psycopg2.extensions.connection) -> tuple[int, str, int, dict, int] | None:
    """Claim one due delivery (committed as `sending`); None when none is due."""
    with conn.cursor() as cur:
        cur.execute(
            """
            select deliveries.transition_id, deliveries.receiver, deliveries.attempts + 1,
                   transitions.facts
            from alerts.deliveries as deliveries
            inner join alerts.transitions as transitions
                on deliveries.transition_id = transitions.transition_id
            where deliveries.status = 'pending' and deliveries.next_attempt_at <= now()
            order by deliveries.next_attempt_at, deliveries.transition_id
            limit 1
            for update of deliveries skip locked
            """
        )
        row = cur.fetchone()
        if row is None:
            conn.commit()
            return None
        transition_id, receiver, attempt, facts = row
        cur.execute(
            """
            update alerts.deliveries
            set status = 'sending', attempts = %s, sender_pid = pg_backend_pid(),
                sender_backend_start = (
                    select backend_start from pg_stat_activity where pid = pg_backend_pid()
                )
            where transition_id = %s and receiver = %s
            """,
            (attempt, transition_id, receiver),
        )
        cur.execute(
            """
            insert into alerts.delivery_attempts (transition_id, receiver, attempt, started_at)
            values (%s, %s, %s, clock_timestamp())
            returning attempt_id
            """,
            (transition_id, receiver, attempt),
        )
        attempt_id = one_row(cur)[0]
    conn.commit()
    return transition_id, receiver, attempt, facts, attempt_id


def _record(
    conn: psycopg2.extensions.connection,
    transition_id: int,
    receiver: str,
    attempt_id: int,
    status_code: int | None,
    error: str | None,
    outcome: str,
    retry_in: float,
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            """
            update alerts.delivery_attempts
            set finished_at = clock_timestamp(), status_code = %s, error = %s
            where attempt_id = %s
            """,
            (status_code, error, attempt_id),
        )
        cur.execute(
            """
            update alerts.deliveries
            set status = %s,
                next_attempt_at = clock_timestamp() + make_interval(secs => %s),
                finished_at = case when %s = 'pending' then null else clock_timestamp() end,
                sender_pid = null, sender_backend_start = null
            where transition_id = %s and receiver = %s
            """,
            (outcome, retry_in, outcome, transition_id, receiver),
        )
    conn.commit()


def deliver_due(
    conn: psycopg2.extensions.connection,
    receivers: dict[str, Receiver],
    policy: Policy,
    show: Callable[[str], None] = print,
) -> list[Attempt]:
    """Send every delivery due now, once each; returns the attempts made."""
    mark_interrupted(conn)
    attempts: list[Attempt] = []
    while (claimed := _claim(conn)) is not None:
        transition_id, name, attempt, facts, attempt_id = claimed
        delivery_id = f"{transition_id}-{name}"
        status_code: int | None = None
        error: str | None = None
        if name == STDOUT:
            show(json.dumps({"delivery_id": delivery_id, "alert": facts}, sort_keys=True))
            status_code = 0
        elif name not in receivers:
            error = f"no receiver configured for {name} (route removed?)"
        else:
            receiver = receivers[name]
            try:
                payload = body(facts, receiver, delivery_id)
                status_code = post(receiver, payload, delivery_id, policy.timeout_seconds)
            except (OSError, ValueError) as failure:
                error = f"{type(failure).__name__}: {failure}"[:500]
        succeeded = status_code is not None and (status_code == 0 or 200 <= status_code < 300)
        if succeeded:
            outcome, retry_in = "delivered", 0.0
        elif attempt >= policy.max_attempts or name not in (*receivers, STDOUT):
            outcome, retry_in = "failed", 0.0
        else:
            outcome, retry_in = "pending", policy.backoff_seconds * 2 ** (attempt - 1)
        _record(conn, transition_id, name, attempt_id, status_code, error, outcome, retry_in)
        attempts.append(Attempt(transition_id, name, attempt, status_code, error, outcome))
    return attempts


def seconds_to_next_retry(conn: psycopg2.extensions.connection) -> float | None:
    """Seconds until the next pending delivery is due (0 if overdue); None when none pends."""
    with conn.cursor() as cur:
        cur.execute(
            """
            -- greatest() skips nulls: with nothing pending, min() is null and so is this
            select extract(epoch from min(next_attempt_at) - now())
            from alerts.deliveries where status = 'pending'
            """
        )
        value = one_row(cur)[0]
    conn.commit()
    return None if value is None else max(0.0, float(value))
