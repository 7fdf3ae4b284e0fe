"""Loading batch files into a lake of Parquet files for Spark: the loader's guarantees, no server.

`agent-loader load --lake DIR` reads and validates exactly as the PostgreSQL load does
(`checked_event`, the same privacy settings) and writes the raw tables Spark reads:

    DIR/agent_events/batch_id=N/part-K.parquet        conversation events of load batch N
    DIR/marketplace_events/batch_id=N/part-K.parquet  marketplace events
    DIR/spans/batch_id=N/part-K.parquet               OpenTelemetry spans (OTLP JSON lines)
    DIR/quarantine/batch_id=N/part-K.parquet          each refused record, with its reason
    DIR/load_batches/batch_id=N/ledger.parquet        the ledger row of batch N
    DIR/_privacy.json                                 the lake's privacy settings

Tables are partitioned by load batch (Hive style), so an incremental model that asks for
`batch_id > (the largest it has built)` reads only the new partitions.

Exactly once, without transactions: a file's partitions are written under a hidden folder
(`.staging-N`, which Spark never reads), renamed into place, and the ledger row is written
last (by rename, atomically). A batch exists only once its ledger row does: a load that dies
before leaves partitions without a ledger row, which the next load removes before it starts.
One loader at a time holds `DIR/.lock`.

A line of OTLP JSON (an export request) gives a row per span, each validated on its own, by
the same code as the PostgreSQL load (`checked_spans`, `span_columns`, `quarantined_span` in
loader/ingest/load.py): the lake's spans are raw.spans' rows, attributes as JSON text.

Duplicate events (an id loaded before, in this file or an earlier one) are removed here, in
the loader, as PostgreSQL's `on conflict do nothing` does: the lake holds each event identity
(its id and sender, as raw's primary keys: `event_id` with `agent_name`, `id` with
`publisher_id`, a span's `span_id` with its `trace_id`) once and the ledger counts the rest as
duplicates. The loader keeps the
identities already in the lake in memory (read from those Parquet columns only, once per run):
about 150 bytes an event, the cost a cluster plan replaces (docs/spark.md). A duplicate that
differs from the stored copy is counted as a duplicate but not kept: the lake has no
`conflicts` table.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loader import __version__
from loader.errors import LockBusy
from loader.ingest.contract import ContractError
from loader.ingest.load import (
    AGENT,
    MARKETPLACE,
    QUARANTINE,
    SPAN,
    FileChanged,
    FileResult,
    checked_event,
    checked_spans,
    export_request,
    quarantined_span,
    raw_columns,
    reason_kind,
    span_columns,
)
from loader.ingest.privacy import (
    NO_PRIVACY,
    TOKEN_KEY_VARIABLE,
    Privacy,
    PrivacyMismatch,
)
from loader.ingest.readers import (
    DEFAULT_MAX_RECORD_BYTES,
    BatchFile,
    Record,
    Undecoded,
    decoded,
    file_checksum,
)
from loader.shown import shown_path

_UTC_MICROS = pa.timestamp("us", tz="UTC")

# The raw tables, column for column as in PostgreSQL's schema `raw` (jsonb becomes JSON
# text); `batch_id` is the partition column, in the folder name, not in the files.
AGENT_EVENTS = pa.schema(
    [
        ("event_id", pa.string()),
        ("conversation_id", pa.string()),
        ("session_id", pa.string()),
        ("event_type", pa.string()),
        ("event_ts", _UTC_MICROS),
        ("agent_name", pa.string()),
        ("user_id", pa.string()),
        ("payload", pa.string()),
        ("metadata", pa.string()),
        ("loaded_at", _UTC_MICROS),
    ]
)
MARKETPLACE_EVENTS = pa.schema(
    [
        ("id", pa.string()),
        ("event_type", pa.string()),
        ("agent_id", pa.string()),
        ("publisher_id", pa.string()),
        ("tenant_id", pa.string()),
        ("event_ts", _UTC_MICROS),
        ("properties", pa.string()),
        ("loaded_at", _UTC_MICROS),
    ]
)
SPANS = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("start_time", _UTC_MICROS),
        ("end_time", _UTC_MICROS),
        ("duration_ns", pa.int64()),
        ("status_code", pa.string()),
        ("status_message", pa.string()),
        ("attributes", pa.string()),
        ("resource_attributes", pa.string()),
        ("scope_name", pa.string()),
        ("scope_version", pa.string()),
        ("events", pa.string()),
        ("loaded_at", _UTC_MICROS),
    ]
)
# `span_index`: the span's number in its line, for a quarantined span (null otherwise).
QUARANTINE_TABLE = pa.schema(
    [
        ("position", pa.int64()),
        ("span_index", pa.int64()),
        ("raw_text", pa.string()),
        ("raw_bytes", pa.int64()),
        ("reason", pa.string()),
        ("quarantined_at", _UTC_MICROS),
    ]
)
LOAD_BATCHES = pa.schema(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("modified_ns", pa.int64()),
        ("file_format", pa.string()),
        ("status", pa.string()),
        ("records_read", pa.int64()),
        ("loaded", pa.int64()),
        ("duplicates", pa.int64()),
        ("quarantined", pa.int64()),
        ("agent_events_loaded", pa.int64()),
        ("marketplace_events_loaded", pa.int64()),
        ("spans_loaded", pa.int64()),
        ("error", pa.string()),
        ("privacy", pa.string()),
        ("key_fingerprint", pa.string()),
        ("loader_version", pa.string()),
        ("started_at", _UTC_MICROS),
        ("finished_at", _UTC_MICROS),
    ]
)
TABLES = {
    AGENT: ("agent_events", AGENT_EVENTS),
    MARKETPLACE: ("marketplace_events", MARKETPLACE_EVENTS),
    SPAN: ("spans", SPANS),
    QUARANTINE: ("quarantine", QUARANTINE_TABLE),
}
# An event's identity (raw's primary keys), the columns that hold it: id, then sender.
IDENTITIES = {
    AGENT: ("event_id", "agent_name"),
    MARKETPLACE: ("id", "publisher_id"),
    SPAN: ("span_id", "trace_id"),
}
LEDGER = "load_batches"
PRIVACY_FILE = "_privacy.json"

PART_ROWS = 200_000
"""Rows per Parquet file: a large file streams through in parts, so memory stays flat."""


class _PartWriter:
    """Rows of one table of one batch, written as Parquet files of PART_ROWS rows."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        self.folder = folder
        self.schema = schema
        self.columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        self.parts = 0
        self.rows = 0

    def add(self, row: tuple[Any, ...]) -> None:
        for column, value in zip(self.columns.values(), row, strict=True):
            column.append(value)
        self.rows += 1
        if len(self.columns[self.schema.names[0]]) >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.columns[self.schema.names[0]]:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        table = pa.table(self.columns, schema=self.schema)
        pq.write_table(table, self.folder / f"part-{self.parts:05d}.parquet")
        self.parts += 1
        self.columns = {name: [] for name in self.schema.names}


class Lake:
    """One lake folder, opened by one loader at a time (see the module docstring)."""

    def __init__(self, root: Path, wait: bool = True) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = open(root / ".lock", "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            self._lock.close()
            raise LockBusy(f"another load is writing to the lake {root}; try again later") from None
        self.ledger = self._read_ledger()
        self._remove_uncommitted()
        self._ids: dict[str, set[tuple[str, str]]] | None = None

    def close(self) -> None:
        self._lock.close()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the ledger ---------------------------------------------------------------------

    def _read_ledger(self) -> list[dict[str, Any]]:
        rows = []
        folder = self.root / LEDGER
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                # A folder without its file is a load that died before its commit.
                if entry.name.startswith("batch_id=") and (entry / "ledger.parquet").exists():
                    batch_id = int(entry.name.removeprefix("batch_id="))
                    for row in pq.read_table(entry / "ledger.parquet").to_pylist():
                        rows.append({"batch_id": batch_id, **row})
        return sorted(rows, key=lambda row: row["batch_id"])

    def _remove_uncommitted(self) -> None:
        """Partitions without a ledger row are what a load that died left behind."""
        committed = {row["batch_id"] for row in self.ledger}
        for entry in self.root.glob(".staging-*"):
            shutil.rmtree(entry)
        for name, _ in TABLES.values():
            for entry in (self.root / name).glob("batch_id=*"):
                if int(entry.name.removeprefix("batch_id=")) not in committed:
                    shutil.rmtree(entry)

    def _next_batch_id(self) -> int:
        return max((row["batch_id"] for row in self.ledger), default=0) + 1

    def _loaded(self, **match: Any) -> int | None:
        for row in self.ledger:
            if row["status"] == "loaded" and all(row[key] == value for key, value in match.items()):
                return row["batch_id"]
        return None

    def _commit_ledger_row(self, result: FileResult, row: dict[str, Any]) -> None:
        folder = self.root / LEDGER / f"batch_id={result.batch_id}"
        temporary = self.root / f".ledger-{result.batch_id}.parquet"
        pq.write_table(pa.Table.from_pylist([row], schema=LOAD_BATCHES), temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(temporary, folder / "ledger.parquet")
        self.ledger.append({"batch_id": result.batch_id, **row})

    # --- event ids already in the lake ----------------------------------------------------

    def _seen_ids(self) -> dict[str, set[tuple[str, str]]]:
        if self._ids is None:
            self._ids = {kind: set() for kind in IDENTITIES}
            for kind, columns in IDENTITIES.items():
                folder = self.root / TABLES[kind][0]
                for path in sorted(folder.glob("batch_id=*/*.parquet")):
                    table = pq.read_table(path, columns=list(columns))
                    self._ids[kind].update(
                        zip(*(table.column(column).to_pylist() for column in columns), strict=True)
                    )
        return self._ids

    # --- privacy ------------------------------------------------------------------------

    def privacy(self, tokenize_users: bool | None, redact: str | None) -> Privacy:
        """The lake's stored privacy settings, checked against the options (as for PostgreSQL).

        The first load that asks for protection stores it, while the lake holds no batch;
        from then on every load applies it, and options or a key that differ are refused.
        """
        settings_file = self.root / PRIVACY_FILE
        if not settings_file.exists():
            wanted_tokenize, wanted_redact = bool(tokenize_users), redact or "none"
            privacy = Privacy.from_options(wanted_tokenize, wanted_redact)
            loaded = [row for row in self.ledger if row["status"] == "loaded"]
            if not privacy.active:
                if any(row["privacy"] for row in loaded):
                    raise PrivacyMismatch("the lake's privacy settings file is missing")
                return NO_PRIVACY
            if loaded:
                raise PrivacyMismatch(
                    f"the lake already holds {len(loaded)} loaded batch(es) without protection;"
                    " changing the privacy settings would mix protected and unprotected rows."
                    " Load into a new lake to change them."
                )
            stored = {
                "tokenize_users": wanted_tokenize,
                "key_fingerprint": privacy.key_fingerprint,
                "redact": wanted_redact,
            }
            settings_file.write_text(json.dumps(stored, indent=2) + "\n")
            return privacy
        stored = json.loads(settings_file.read_text())
        requested = (
            stored["tokenize_users"] if tokenize_users is None else tokenize_users,
            stored["redact"] if redact is None else redact,
        )
        if requested != (stored["tokenize_users"], stored["redact"]):
            tokenize = "on" if stored["tokenize_users"] else "off"
            raise PrivacyMismatch(
                f"this lake is set to --tokenize-users={tokenize} --redact={stored['redact']};"
                " the load asked for something else. Drop the"
                " options (the stored settings apply to every load) or load into another lake."
            )
        privacy = Privacy.from_options(stored["tokenize_users"], stored["redact"])
        if privacy.key_fingerprint != stored["key_fingerprint"]:
            raise PrivacyMismatch(
                f"${TOKEN_KEY_VARIABLE} holds a different key (fingerprint"
                f" {privacy.key_fingerprint}) from the one this lake tokenizes with"
                f" (fingerprint {stored['key_fingerprint']}). Use the lake's key."
            )
        return privacy

    # --- loading ------------------------------------------------------------------------

    def load_file(
        self,
        path: Path,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        rehash: bool = False,
        privacy: Privacy = NO_PRIVACY,
    ) -> FileResult:
        """Load one file exactly once; skipped when the ledger has loaded it (as `load_file`)."""
        started = time.perf_counter()
        started_at = datetime.now(timezone.utc)
        result = FileResult(shown_path(path), "failed")
        modified_ns = None
        try:
            stat = os.lstat(path)
            modified_ns = stat.st_mtime_ns
            earlier = None
            if not rehash:
                earlier = self._loaded(
                    path=privacy.ledger_path(result.path),
                    bytes=stat.st_size,
                    modified_ns=modified_ns,
                )
            if earlier is None:
                result.sha256, result.bytes = file_checksum(path)
                earlier = self._loaded(sha256=result.sha256)
            if earlier is not None:
                result.status, result.batch_id = "skipped", earlier
            else:
                result.batch_id = self._next_batch_id()
                self._write_batch(path, result, max_record_bytes, privacy, started_at)
                result.status = "loaded"
        except (OSError, FileChanged) as error:
            self._discard(result.batch_id)
            result.status = "failed"
            result.error = (
                str(error)
                if isinstance(error, FileChanged)
                else (f"cannot read the file: {error.strerror or error}")
            )
            result.batch_id = self._next_batch_id()
        except BaseException:
            self._discard(result.batch_id)
            raise
        result.seconds = time.perf_counter() - started
        if result.status != "skipped":
            self._commit_ledger_row(
                result,
                {
                    "path": privacy.ledger_path(result.path),
                    "sha256": result.sha256,
                    "bytes": result.bytes,
                    "modified_ns": modified_ns if result.status == "loaded" else None,
                    "file_format": result.file_format,
                    "status": result.status,
                    "records_read": result.records_read,
                    "loaded": result.loaded,
                    "duplicates": result.duplicates,
                    "quarantined": result.quarantined,
                    "agent_events_loaded": result.agent_events_loaded,
                    "marketplace_events_loaded": result.marketplace_events_loaded,
                    "spans_loaded": result.spans_loaded,
                    "error": result.error,
                    "privacy": privacy.describe() if result.status == "loaded" else None,
                    "key_fingerprint": privacy.key_fingerprint
                    if result.status == "loaded"
                    else None,
                    "loader_version": __version__,
                    "started_at": started_at,
                    "finished_at": datetime.now(timezone.utc),
                },
            )
        return result

    def _staging(self, batch_id: int | None) -> Path:
        return self.root / f".staging-{batch_id}"

    def _discard(self, batch_id: int | None) -> None:
        shutil.rmtree(self._staging(batch_id), ignore_errors=True)

    def _write_batch(
        self,
        path: Path,
        result: FileResult,
        max_record_bytes: int,
        privacy: Privacy,
        loaded_at: datetime,
    ) -> None:
        staging = self._staging(result.batch_id)
        writers = {
            kind: _PartWriter(staging / name, schema) for kind, (name, schema) in TABLES.items()
        }
        seen = self._seen_ids()
        new_ids: dict[str, set[tuple[str, str]]] = {kind: set() for kind in IDENTITIES}
        counts = {AGENT: 0, MARKETPLACE: 0, SPAN: 0, QUARANTINE: 0}
        reasons: dict[str, int] = {}
        with BatchFile(path, max_record_bytes) as batch:
            for record in batch.records():
                for kind, row, identity, reason in _rows(record, privacy, loaded_at):
                    counts[kind] += 1
                    if reason is not None:
                        family = reason_kind(reason)
                        reasons[family] = reasons.get(family, 0) + 1
                    elif identity in seen[kind] or identity in new_ids[kind]:
                        continue  # a duplicate: counted, not written
                    else:
                        assert identity is not None  # only a quarantined record has none
                        new_ids[kind].add(identity)
                    writers[kind].add(row)
            for writer in writers.values():
                writer.flush()
            if batch.sha256 != result.sha256:
                raise FileChanged(
                    "the file changed while it was being loaded (is a collector still writing"
                    " it?); nothing was loaded from it, the next run retries"
                )
            result.file_format = batch.format + (".gz" if batch.compressed else "")
        for kind, (name, _) in TABLES.items():
            if writers[kind].rows:
                (self.root / name).mkdir(exist_ok=True)
                os.replace(staging / name, self.root / name / f"batch_id={result.batch_id}")
        self._discard(result.batch_id)
        for kind in IDENTITIES:
            seen[kind].update(new_ids[kind])
        result.records_read = sum(counts.values())
        result.quarantined = counts[QUARANTINE]
        result.agent_events_loaded = len(new_ids[AGENT])
        result.marketplace_events_loaded = len(new_ids[MARKETPLACE])
        result.spans_loaded = len(new_ids[SPAN])
        result.loaded = sum(len(ids) for ids in new_ids.values())
        result.duplicates = counts[AGENT] + counts[MARKETPLACE] + counts[SPAN] - result.loaded
        result.reasons = dict(sorted(reasons.items(), key=lambda item: -item[1]))


LakeRow = tuple[str, tuple[Any, ...], tuple[str, str] | None, str | None]
"""(kind, row, event identity, quarantine reason) of one row a record gives; the identity is
(id, sender), raw's primary key; a quarantined row has a reason and no identity."""


def _rows(record: Record, privacy: Privacy, loaded_at: datetime) -> list[LakeRow]:
    """The rows of one record, by the contract's verdict: an event's one row, or a row per
    span of a line of OTLP JSON (a span the contract refuses is quarantined alone, with its
    `span_index`, as in PostgreSQL)."""
    found = export_request(record)
    if found is None:
        return [_row(record, privacy, loaded_at)]
    record, request = found
    try:
        items = checked_spans(record, request)
    except ContractError as error:  # no span can be told apart: the line is one record
        return [_quarantined(record, error.reason, privacy, loaded_at)]
    rows: list[LakeRow] = []
    for item in items:
        if item.values is None:
            text, size = quarantined_span(item, privacy)
            refused = (record.position, item.index, text, size, item.reason, loaded_at)
            rows.append((QUARANTINE, refused, None, item.reason))
        else:
            row: tuple[Any, ...] = (*span_columns(item.values, privacy), loaded_at)
            rows.append((SPAN, row, (row[1], row[0]), None))
    return rows


def _row(record: Record, privacy: Privacy, loaded_at: datetime) -> LakeRow:
    """The row of one event record."""
    if isinstance(record.value, Undecoded):  # the lake reads every field: decode the line
        record = decoded(record)
    try:
        kind, event, value = checked_event(record, privacy)
    except ContractError as error:
        return _quarantined(record, error.reason, privacy, loaded_at)
    value = privacy.apply(value) if privacy.active else value
    stamp = event.timestamp.astimezone(timezone.utc)
    row = (*raw_columns(value, kind == AGENT, stamp), loaded_at)
    return kind, row, (row[0], row[5] if kind == AGENT else row[3]), None


def _quarantined(record: Record, reason: str, privacy: Privacy, loaded_at: datetime) -> LakeRow:
    """A record refused whole, as PostgreSQL's quarantine keeps it."""
    raw = record.raw.replace("\x00", "\\x00")
    if privacy.active:
        raw = privacy.raw_text(raw, record.value)
    return QUARANTINE, (record.position, None, raw, record.size, reason, loaded_at), None, reason


@contextmanager
def open_lake(root: Path, wait: bool = True) -> Iterator[Lake]:
    lake = Lake(root, wait)
    try:
        yield lake
    finally:
        lake.close()
