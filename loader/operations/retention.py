"""Retention and erasure: delete raw rows older than the compliance window (`purge`), or
every row of one user or tenant (`erase`: `purge --user/--tenant`).

Events go by event time (`event_ts`), quarantine rows by `quarantined_at`. Rows are deleted
in batches of `batch_rows`, each batch its own transaction, so a purge of years of data
never holds long locks or one giant transaction, and can be interrupted and rerun. Each
batch adds what it deleted to its load batches' `purged_events` / `purged_quarantined`, so
the ledger still reconciles; the purge as a whole is recorded in `raw.purges`, which the dbt
models read to drop purged events from their incremental tables.

Spans (raw.spans) go by their start time. An erasure deletes the subject's events from both
event tables (a user's by `user_id`, clear or tokenized; a tenant's by `tenant_id`), their
spans (a user's by the `user.id` or `enduser.id` attribute, a tenant's by `tenant.id`, on the
span or on its resource) and the quarantine rows whose text mentions the id
(`Erasure`, loader/ingest/privacy.py), and records itself in `raw.purges` with an infinite
cutoff: any row may have gone, so the next build checks every row (as after a retention
purge, the build after an erasure costs about a full build). It also rewrites the files of
the `--move-loaded-to` archive without the subject's records (`erase_archive`) and, for a
lake, its Parquet files (`erase_lake`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2.extensions

from loader.ingest.load import batch_files
from loader.ingest.privacy import Erasure
from loader.ingest.readers import BatchFile
from loader.ingest.spans import TENANT_ATTRIBUTE, USER_ATTRIBUTES
from loader.ingest.warehouse import one_row
from loader.shown import shown_path

_DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}

# An event's key is its id within its sender (migration 0008): deleting by id alone would
# take another sender's event with the same id along.
_AGENT_KEY = ("event_id", "agent_name")
_MARKETPLACE_KEY = ("id", "publisher_id")
_SPAN_KEY = ("trace_id", "span_id")

# table, its key, its time column, the ledger column that counts its purged rows (none: the
# conflicts, copies of events that differed from the stored one, go with the window but are
# not counted per batch)
_TARGETS = (
    ("agent_events", _AGENT_KEY, "event_ts", "purged_events"),
    ("marketplace_events", _MARKETPLACE_KEY, "event_ts", "purged_events"),
    ("spans", _SPAN_KEY, "start_time", "purged_events"),
    ("quarantine", ("quarantine_id",), "quarantined_at", "purged_quarantined"),
    ("conflicts", ("conflict_id",), "detected_at", None),
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
    spans: int = 0
    quarantine: int = 0
    conflicts: int = 0
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
        cutoff, started_at = one_row(cur)
    conn.commit()
    result = PurgeResult(cutoff, dry_run)
    for table, key, time_column, ledger_column in _TARGETS:
        condition = f"{time_column} < %(cutoff)s"
        rows = _delete_all(
            conn, table, key, ledger_column, condition, {"cutoff": cutoff}, batch_rows, dry_run
        )
        setattr(result, table, rows)
    if not dry_run:
        result.purge_id = _record_purge(conn, result, started_at, older_than=older_than)
    return result


def _record_purge(
    conn: psycopg2.extensions.connection,
    result: PurgeResult | EraseResult,
    started_at: datetime,
    older_than: timedelta | None = None,
    erased: str | None = None,
) -> int:
    """The purge's row in `raw.purges`, which the next `dbt build` reads: a window's cutoff,
    or for an erasure its kind and an infinite cutoff (every row is checked)."""
    cutoff = result.cutoff if isinstance(result, PurgeResult) else "infinity"
    with conn.cursor() as cur:
        cur.execute(
            """
            insert into raw.purges (
                older_than, erased, cutoff, agent_events, marketplace_events, spans,
                quarantine, started_at, finished_at
            )
            values (%s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())
            returning purge_id
            """,
            (
                older_than,
                erased,
                cutoff,
                result.agent_events,
                result.marketplace_events,
                result.spans,
                result.quarantine,
                started_at,
            ),
        )
        purge_id = int(one_row(cur)[0])
    conn.commit()
    return purge_id


def _delete_all(
    conn: psycopg2.extensions.connection,
    table: str,
    key: tuple[str, ...],
    ledger_column: str | None,
    condition: str,
    parameters: dict[str, Any],
    batch_rows: int,
    dry_run: bool,
) -> int:
    """Every row of `table` meeting `condition`, deleted in commits of `batch_rows` (or with
    `dry_run`, counted): how many."""
    if dry_run:
        with conn.cursor() as cur:
            cur.execute(f"select count(*) from raw.{table} where {condition}", parameters)
            count = int(one_row(cur)[0])
        conn.rollback()
        return count
    total = 0
    while True:
        deleted = _delete_where(conn, table, key, ledger_column, condition, parameters, batch_rows)
        total += deleted
        if deleted < batch_rows:
            return total


def _delete_where(
    conn: psycopg2.extensions.connection,
    table: str,
    key: tuple[str, ...],
    ledger_column: str | None,
    condition: str,
    parameters: dict[str, Any],
    batch_rows: int,
) -> int:
    """Delete up to `batch_rows` rows meeting `condition` (SQL written here, never taken from
    input; values in `parameters`) and credit them to their batches, in one commit."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
            with doomed as (
                select {", ".join(key)} from raw.{table}
                where {condition}
                limit %(batch_rows)s
                for update skip locked
            ),
            deleted as (
                delete from raw.{table} as t
                using doomed
                where {" and ".join(f"t.{column} = doomed.{column}" for column in key)}
                returning t.batch_id
            ),
            per_batch as (
                select batch_id, count(*) as purged from deleted group by batch_id
            ){_credited(ledger_column)}
            select coalesce(sum(purged), 0) from per_batch
            """,
            {**parameters, "batch_rows": batch_rows},
        )
        deleted = int(one_row(cur)[0])
    conn.commit()
    return deleted


def _credited(ledger_column: str | None) -> str:
    """The CTE adding a batch's purged rows to its ledger row, when they are counted there."""
    if ledger_column is None:
        return ""
    return f""",
            credited as (
                update raw.load_batches as b
                set {ledger_column} = b.{ledger_column} + per_batch.purged
                from per_batch
                where b.batch_id = per_batch.batch_id
                returning 1
            )"""


# --- erasure: one user's or one tenant's rows ----------------------------------------------

# Which rows of each table are the subject's, per kind (table, key, condition, ledger column).
_QUARANTINE_MENTIONS = (
    "exists (select from unnest(%(mentions)s::text[]) as m where strpos(raw_text, m) > 0)"
)


def _span_owner(attributes: tuple[str, ...], in_conflict: bool = False) -> str:
    """A span is the subject's when one of these attributes, on the span or on its resource,
    is the id (`in_conflict`: the span is a raw.conflicts `record`). Every one is looked at,
    not only the first present: an erasure takes whatever names the subject."""
    return " or ".join(
        f"{f'record->{column!r}' if in_conflict else column}->>'{name}' = any(%(values)s)"
        for column in ("attributes", "resource_attributes")
        for name in attributes
    )


# A span's user is `user.id`, then `enduser.id`; its tenant `tenant.id` (docs/opentelemetry.md).
_SPAN_USER = _span_owner(USER_ATTRIBUTES)
_SPAN_TENANT = _span_owner((TENANT_ATTRIBUTE,))
_ERASED = {
    "user": (
        ("agent_events", _AGENT_KEY, "user_id = any(%(values)s)", "purged_events"),
        ("spans", _SPAN_KEY, _SPAN_USER, "purged_events"),
        ("quarantine", ("quarantine_id",), _QUARANTINE_MENTIONS, "purged_quarantined"),
        (
            "conflicts",
            ("conflict_id",),
            "record->>'user_id' = any(%(values)s) or "
            + _span_owner(USER_ATTRIBUTES, in_conflict=True),
            None,
        ),
    ),
    "tenant": (
        ("marketplace_events", _MARKETPLACE_KEY, "tenant_id = any(%(values)s)", "purged_events"),
        ("spans", _SPAN_KEY, _SPAN_TENANT, "purged_events"),
        ("quarantine", ("quarantine_id",), _QUARANTINE_MENTIONS, "purged_quarantined"),
        (
            "conflicts",
            ("conflict_id",),
            "record->>'tenant_id' = any(%(values)s) or "
            + _span_owner((TENANT_ATTRIBUTE,), in_conflict=True),
            None,
        ),
    ),
}


@dataclass
class ArchiveResult:
    """What an erasure did to the `--move-loaded-to` archive (or a lake's files)."""

    records: int = 0
    files_rewritten: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)


@dataclass
class EraseResult:
    kind: str
    dry_run: bool
    agent_events: int = 0
    marketplace_events: int = 0
    spans: int = 0
    quarantine: int = 0
    conflicts: int = 0
    purge_id: int | None = None
    archive: ArchiveResult | None = None
    lake_rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def erase(
    conn: psycopg2.extensions.connection,
    erasure: Erasure,
    batch_rows: int = 10_000,
    dry_run: bool = False,
) -> EraseResult:
    """Delete (or with `dry_run`, count) the subject's rows in raw, and record the erasure
    in `raw.purges` (without the id: the record of an erasure must not be the PII it
    erased), so the next `dbt build` drops them from every model (macros/retention.sql)."""
    parameters = {"values": erasure.values, "mentions": erasure.mentions}
    with conn.cursor() as cur:
        cur.execute("select now()")
        started_at = one_row(cur)[0]
    conn.commit()
    result = EraseResult(erasure.kind, dry_run)
    for table, key, condition, ledger_column in _ERASED[erasure.kind]:
        rows = _delete_all(
            conn, table, key, ledger_column, condition, parameters, batch_rows, dry_run
        )
        setattr(result, table, rows)
    if not dry_run:
        result.purge_id = _record_purge(conn, result, started_at, erased=erasure.kind)
    return result


def erase_archive(folder: Path, erasure: Erasure, dry_run: bool = False) -> ArchiveResult:
    """Rewrite each file of a `--move-loaded-to` archive without the subject's records.

    A file is rewritten, not removed, because it holds other people's records too (the
    archive is what a warehouse is rebuilt from); a file left with no record is removed.
    The records kept are written back one per line (NDJSON, gzipped when the file was; a
    record of a JSON document re-serialised), through a temporary file renamed into place.
    """
    result = ArchiveResult()
    for path in batch_files((folder,)):
        kept: list[str] = []
        erased = 0
        with BatchFile(path) as batch:
            compressed = batch.compressed
            for record in batch.records():
                if not record.raw:
                    continue
                if erasure.owns(record):
                    erased += 1
                elif record.error is None:
                    kept.append(json.dumps(record.value, ensure_ascii=False))
                else:  # not JSON: its text, on one line
                    kept.append(record.raw.replace("\r", "\\r").replace("\n", "\\n"))
        if not erased:
            continue
        result.records += erased
        if dry_run:
            (result.files_rewritten if kept else result.files_removed).append(shown_path(path))
            continue
        if not kept:
            path.unlink()
            result.files_removed.append(shown_path(path))
            continue
        partial = path.with_name(f".{path.name}.partial")
        with open(partial, "wb") as raw:
            out: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="wb") if compressed else raw
            with out:
                for text in kept:
                    out.write(text.encode("utf-8", "backslashreplace") + b"\n")
        os.replace(partial, path)
        result.files_rewritten.append(shown_path(path))
    return result


class LakeUnavailable(RuntimeError):
    """`purge --lake` needs pyarrow, which comes with the [spark] extra."""


def erase_lake(root: Path, kind: str, subject_id: str, dry_run: bool = False) -> ArchiveResult:
    """Rewrite the lake's Parquet files (`load --lake`) without the subject's rows.

    Holds the lake's lock, as a load does, and reads the lake's privacy settings (a user's
    rows hold its token when the lake tokenizes: the key must be in the environment).
    Conversation events go by `user_id`, marketplace events by `tenant_id`, spans by their
    user or tenant attributes (on the span or its resource), quarantine rows by their text
    (as in PostgreSQL). Each file is written beside itself and renamed into place; a file
    left with no row is removed.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from loader.ingest.lake import open_lake
    except ImportError:
        raise LakeUnavailable(
            "purge --lake needs pyarrow: pip install 'agent-analytics[spark]'"
        ) from None
    column = {"user": ("agent_events", "user_id"), "tenant": ("marketplace_events", "tenant_id")}
    table_name, id_column = column[kind]
    result = ArchiveResult()
    with open_lake(root) as lake:
        erasure = Erasure(kind, subject_id, lake.privacy(None, None))  # type: ignore[arg-type]
        for name in (table_name, "spans", "quarantine"):
            for path in sorted((root / name).glob("batch_id=*/*.parquet")):
                table = pq.read_table(path, partitioning=None)
                if name == "quarantine":
                    doomed = pa.array([False] * table.num_rows, pa.bool_())
                    for mention in erasure.mentions:
                        found = pc.match_substring(table["raw_text"], mention)
                        doomed = pc.or_(doomed, pc.fill_null(found, False))
                elif name == "spans":
                    doomed = pa.array(_spans_owned(table, erasure), pa.bool_())
                else:
                    found = pc.is_in(table[id_column], value_set=pa.array(erasure.values))
                    doomed = pc.fill_null(found, False)
                erased = pc.sum(doomed).as_py() or 0
                if not erased:
                    continue
                result.records += erased
                kept = table.filter(pc.invert(doomed))
                if dry_run:
                    pass
                elif kept.num_rows == 0:
                    path.unlink()
                else:
                    partial = path.with_name(f".{path.name}.partial")
                    pq.write_table(kept, partial)
                    os.replace(partial, path)
                (result.files_rewritten if kept.num_rows else result.files_removed).append(
                    shown_path(path)
                )
    return result


def _spans_owned(table: Any, erasure: Erasure) -> list[bool]:
    """Which spans of a lake table (`pyarrow.Table`) are the subject's: one of its user
    attributes (a tenant's: `tenant.id`), on the span or its resource, is the id, as
    `_SPAN_USER` / `_SPAN_TENANT` find them in raw.spans (a value's text, `->>`)."""
    names = USER_ATTRIBUTES if erasure.kind == "user" else (TENANT_ATTRIBUTE,)
    values = set(erasure.values)
    owned = []
    for texts in zip(
        table.column("attributes").to_pylist(),
        table.column("resource_attributes").to_pylist(),
        strict=True,
    ):
        found = [json.loads(text).get(name) for text in texts for name in names]
        owned.append(
            any(
                (value if isinstance(value, str) else json.dumps(value)) in values
                for value in found
                if value is not None
            )
        )
    return owned
