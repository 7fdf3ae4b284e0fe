"""Retention: delete raw events and quarantine rows older than the compliance window.

Events go by event time (`event_ts`), quarantine rows by `quarantined_at`. Rows are deleted
in batches of `batch_rows`, each batch its own transaction, so a purge of years of data
never holds long locks or one giant transaction, and can be interrupted and rerun. Each
batch adds what it deleted to its load batches' `purged_events` / `purged_quarantined`, so
the ledger still reconciles; the purge as a whole is recorded in `raw.purges`, which the dbt
models read to drop purged events from their incremental tables.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg2.extensions

_DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}

# table, its key, its time column, the ledger column that counts its purged rows
_TARGETS = (
    ("agent_events", "event_id", "event_ts", "purged_events"),
    ("marketplace_events", "id", "event_ts", "purged_events"),
    ("quarantine", "quarantine_id", "quarantined_at", "purged_quarantined"),
)


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h` or `2w` as a timedelta; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"expected a positive duration like 90d, 12h or 2w, got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class PurgeResult:
    cutoff: datetime
    dry_run: bool
    agent_events: int = 0
    marketplace_events: int = 0
    quarantine: int = 0
    purge_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def purge(
    conn: psycopg2.extensions.connection,
    older_than: timedelta,
    batch_rows: int = 10_000,
    dry_run: bool = False,
) -> PurgeResult:
    """Delete (or with `dry_run`, count) every raw row older than now - `older_than`."""
    with conn.cursor() as cur:
        cur.execute("select now() - %s, now()", (older_than,))
        cutoff, started_at = cur.fetchone()
    conn.commit()
    result = PurgeResult(cutoff, dry_run)
    for table, key, time_column, ledger_column in _TARGETS:
        if dry_run:
            with conn.cursor() as cur:
                cur.execute(f"select count(*) from raw.{table} where {time_column} < %s", (cutoff,))
                setattr(result, table, cur.fetchone()[0])
            conn.rollback()
            continue
        total = 0
        while True:
            deleted = _delete_batch(
                conn, table, key, time_column, ledger_column, cutoff, batch_rows
            )
            total += deleted
            if deleted < batch_rows:
                break
        setattr(result, table, total)
    if not dry_run:
        with conn.cursor() as cur:
            cur.execute(
                """
                insert into raw.purges (
                    older_than, cutoff, agent_events, marketplace_events, quarantine,
                    started_at, finished_at
                )
                values (%s, %s, %s, %s, %s, %s, clock_timestamp())
                returning purge_id
                """,
                (
                    older_than,
                    cutoff,
                    result.agent_events,
                    result.marketplace_events,
                    result.quarantine,
                    started_at,
                ),
            )
            result.purge_id = cur.fetchone()[0]
        conn.commit()
    return result


def _delete_batch(
    conn: psycopg2.extensions.connection,
    table: str,
    key: str,
    time_column: str,
    ledger_column: str,
    cutoff: datetime,
    batch_rows: int,
) -> int:
    """Delete up to `batch_rows` old rows and credit them to their batches, in one commit."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
            with doomed as (
                select {key} from raw.{table}
                where {time_column} < %(cutoff)s
                limit %(batch_rows)s
                for update skip locked
            ),
            deleted as (
                delete from raw.{table} as t
                using doomed
                where t.{key} = doomed.{key}
                returning t.batch_id
            ),
            per_batch as (
                select batch_id, count(*) as purged from deleted group by batch_id
            ),
            credited as (
                update raw.load_batches as b
                set {ledger_column} = b.{ledger_column} + per_batch.purged
                from per_batch
                where b.batch_id = per_batch.batch_id
                returning 1
            )
            select coalesce(sum(purged), 0) from per_batch
            """,
            {"cutoff": cutoff, "batch_rows": batch_rows},
        )
        deleted = int(cur.fetchone()[0])
    conn.commit()
    return deleted
