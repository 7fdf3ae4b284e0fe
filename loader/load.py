"""Loading batch files: read, validate, COPY, exactly once, with a ledger row per file.

One file is one transaction: its ledger row in `raw.load_batches`, its events and its
quarantine rows commit together or not at all. Records stream through a single COPY into a
temporary table (Python validates the next rows while the server parses the previous ones),
then move to the raw tables with `insert ... on conflict do nothing`, so an event seen before
counts as a duplicate instead of loading twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from loader import __version__
from loader.events import AgentEvent, ContractError, parse_event
from loader.readers import DEFAULT_MAX_RECORD_BYTES, BatchFile, Record, file_checksum

AGENT, MARKETPLACE, QUARANTINE = "a", "m", "q"

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"

# The single COPY target: one row per record, whichever table it is bound for.
_CREATE_LOAD_RECORDS = """
create temporary table load_records (
    position bigint not null,
    kind "char" not null,
    event_id text,
    conversation_id text,
    session_id text,
    event_type text,
    event_ts timestamptz,
    agent_name text,
    user_id text,
    agent_id text,
    publisher_id text,
    tenant_id text,
    body jsonb,
    metadata jsonb,
    raw_text text,
    raw_bytes bigint,
    reason text
) on commit drop
"""

_INSERT_AGENT_EVENTS = """
insert into raw.agent_events (
    event_id, conversation_id, session_id, event_type, event_ts, agent_name, user_id,
    payload, metadata, batch_id, loaded_at
)
select
    event_id, conversation_id, session_id, event_type, event_ts, agent_name, user_id,
    body, metadata, %(batch_id)s, now()
from load_records
where kind = 'a'
on conflict (event_id) do nothing
"""

_INSERT_MARKETPLACE_EVENTS = """
insert into raw.marketplace_events (
    id, event_type, agent_id, publisher_id, tenant_id, event_ts, properties,
    batch_id, loaded_at
)
select
    event_id, event_type, agent_id, publisher_id, tenant_id, event_ts, body,
    %(batch_id)s, now()
from load_records
where kind = 'm'
on conflict (id) do nothing
"""

_INSERT_QUARANTINE = """
insert into raw.quarantine (batch_id, position, raw_text, raw_bytes, reason, quarantined_at)
select %(batch_id)s, position, raw_text, raw_bytes, reason, now()
from load_records
where kind = 'q'
"""


class FileChanged(Exception):
    """The file's bytes changed between checksumming and loading (a collector still writing)."""


@dataclass
class FileResult:
    """What happened to one file; `status` is loaded, skipped (already loaded) or failed."""

    path: str
    status: str
    sha256: str | None = None
    bytes: int = 0
    file_format: str | None = None
    batch_id: int | None = None
    records_read: int = 0
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    agent_events_loaded: int = 0
    marketplace_events_loaded: int = 0
    error: str | None = None
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- records to COPY rows ----------------------------------------------------------------


def _text(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


def _json(value: Any) -> str:
    # json.dumps escapes control characters itself; only backslashes need COPY escaping.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace(
        "\\", "\\\\"
    )


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _quarantine_row(record: Record, reason: str) -> bytes:
    raw = record.raw.replace("\x00", "\\x00")
    fields = [str(record.position), QUARANTINE] + [_NULL] * 12
    fields += [_text(raw), str(record.size), _text(reason)]
    return ("\t".join(fields) + "\n").encode("utf-8", "backslashreplace")


def _event_row(record: Record) -> tuple[str, bytes]:
    """The COPY row for a valid record; raises ContractError for an invalid one."""
    if record.error:
        raise ContractError(record.error)
    event = parse_event(record.value)
    if "\\u0000" in record.raw and _has_nul(record.value):
        raise ContractError(
            "contains a NUL character (\\u0000), which PostgreSQL cannot store in text or jsonb"
        )
    try:
        if isinstance(event, AgentEvent):
            kind = AGENT
            fields = (
                _text(event.event_id),
                _text(event.conversation_id),
                _text(event.session_id),
                event.event_type,
                event.timestamp.isoformat(),
                _text(event.agent_name),
                _text(event.user_id),
                _NULL,
                _NULL,
                _NULL,
                _json(event.payload),
                _json(event.metadata),
            )
        else:
            kind = MARKETPLACE
            fields = (
                _text(event.id),
                _NULL,
                _NULL,
                event.event_type,
                event.timestamp.isoformat(),
                _NULL,
                _NULL,
                _text(event.agent_id),
                _text(event.publisher_id),
                _text(event.tenant_id),
                _json(event.properties),
                _NULL,
            )
    except ValueError:
        raise ContractError("contains NaN or Infinity, which JSON and jsonb do not allow") from None
    line = f"{record.position}\t{kind}\t" + "\t".join(fields) + "\t\\N\t\\N\t\\N\n"
    try:
        return kind, line.encode("utf-8")
    except UnicodeEncodeError:
        raise ContractError(
            "contains an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff escape),"
            " which is not valid Unicode"
        ) from None


def copy_row(record: Record) -> tuple[str, bytes, str | None]:
    """(kind, COPY row, quarantine reason or None) for one record."""
    try:
        kind, line = _event_row(record)
    except ContractError as error:
        return QUARANTINE, _quarantine_row(record, error.reason), error.reason
    return kind, line, None


class CopySource:
    """A file-like object for COPY FROM STDIN that turns records into rows as it is read.

    Rows are produced on demand, so memory stays at one chunk however big the file is.
    """

    def __init__(self, records: Iterable[Record]) -> None:
        self._records = iter(records)
        self.counts = {AGENT: 0, MARKETPLACE: 0, QUARANTINE: 0}
        self.reasons: dict[str, int] = {}

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else 1 << 18
        parts = []
        total = 0
        for record in self._records:
            kind, line, reason = copy_row(record)
            self.counts[kind] += 1
            if reason is not None:
                key = _reason_kind(reason)
                self.reasons[key] = self.reasons.get(key, 0) + 1
            parts.append(line)
            total += len(line)
            if total >= size:
                break
        return b"".join(parts)

    readline = read


def _reason_kind(reason: str) -> str:
    """A short family name for a reason, for summaries: `event_type`, `invalid JSON`, ..."""
    head = reason.split(";")[0]
    return head.split(":")[0] if ":" in head else head


# --- files -------------------------------------------------------------------------------


def validate_file(path: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> FileResult:
    """Read and validate a file without a database: what `load` would load and quarantine."""
    started = time.perf_counter()
    with BatchFile(path, max_record_bytes) as batch:
        source = CopySource(batch.records())
        while source.read(1 << 20):
            pass
        result = FileResult(str(path), "validated", batch.sha256, batch.bytes, batch.format)
    _fill_counts(result, source)
    result.seconds = time.perf_counter() - started
    return result


def _fill_counts(result: FileResult, source: CopySource) -> None:
    result.records_read = sum(source.counts.values())
    result.quarantined = source.counts[QUARANTINE]
    result.reasons = dict(sorted(source.reasons.items(), key=lambda item: -item[1]))


def load_file(
    conn: psycopg2.extensions.connection,
    path: Path,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> FileResult:
    """Load one file exactly once; see the module docstring for how."""
    started = time.perf_counter()
    result = FileResult(str(path), "failed")
    try:
        result.sha256, result.bytes = file_checksum(path)
        earlier = _loaded_batch(conn, result.sha256)
        if earlier is not None:
            result.status, result.batch_id = "skipped", earlier
        else:
            _load_in_one_transaction(conn, path, result, max_record_bytes)
            result.status = "loaded"
    except psycopg2.errors.UniqueViolation:
        # A concurrent loader (without the lock) committed the same file first.
        conn.rollback()
        result.status, result.batch_id = "skipped", _loaded_batch(conn, result.sha256)
    except (OSError, FileChanged) as error:
        conn.rollback()
        result.error = _describe_failure(error)
        _record_failure(conn, result)
    except psycopg2.Error as error:
        if conn.closed:
            raise
        conn.rollback()
        result.error = f"PostgreSQL refused the batch: {str(error).strip().splitlines()[0]}"
        _record_failure(conn, result)
    result.seconds = time.perf_counter() - started
    return result


def _describe_failure(error: Exception) -> str:
    if isinstance(error, FileChanged):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"cannot read the file: {error.strerror}"
    return f"cannot read the file: {error}"


def _loaded_batch(conn: psycopg2.extensions.connection, sha256: str) -> int | None:
    with conn.cursor() as cur:
        cur.execute(
            "select batch_id from raw.load_batches where sha256 = %s and status = 'loaded'",
            (sha256,),
        )
        row = cur.fetchone()
    conn.rollback()
    return row[0] if row else None


def _load_in_one_transaction(
    conn: psycopg2.extensions.connection, path: Path, result: FileResult, max_record_bytes: int
) -> None:
    with BatchFile(path, max_record_bytes) as batch, conn.cursor() as cur:
        cur.execute(
            """
            insert into raw.load_batches (
                path, sha256, bytes, status, loader_version, started_at, finished_at
            )
            values (%s, %s, %s, 'loaded', %s, clock_timestamp(), clock_timestamp())
            returning batch_id
            """,
            (str(path), result.sha256, result.bytes, __version__),
        )
        result.batch_id = cur.fetchone()[0]
        cur.execute(_CREATE_LOAD_RECORDS)
        source = CopySource(batch.records())
        cur.copy_expert("copy load_records from stdin", source, size=1 << 18)
        if batch.sha256 != result.sha256:
            raise FileChanged(
                "the file changed while it was being loaded (is a collector still writing it?);"
                " nothing was loaded from it, the next run retries"
            )
        result.file_format = batch.format + (".gz" if batch.compressed else "")
        _fill_counts(result, source)
        ids = {"batch_id": result.batch_id}
        cur.execute(_INSERT_AGENT_EVENTS, ids)
        result.agent_events_loaded = cur.rowcount
        cur.execute(_INSERT_MARKETPLACE_EVENTS, ids)
        result.marketplace_events_loaded = cur.rowcount
        cur.execute(_INSERT_QUARANTINE, ids)
        result.loaded = result.agent_events_loaded + result.marketplace_events_loaded
        result.duplicates = source.counts[AGENT] + source.counts[MARKETPLACE] - result.loaded
        cur.execute(
            """
            update raw.load_batches
            set file_format = %(file_format)s,
                records_read = %(records_read)s,
                loaded = %(loaded)s,
                duplicates = %(duplicates)s,
                quarantined = %(quarantined)s,
                agent_events_loaded = %(agent_events_loaded)s,
                marketplace_events_loaded = %(marketplace_events_loaded)s,
                finished_at = clock_timestamp()
            where batch_id = %(batch_id)s
            """,
            result.as_dict(),
        )
    conn.commit()


def _record_failure(conn: psycopg2.extensions.connection, result: FileResult) -> None:
    """A failed file gets a ledger row of its own, so `history` shows it; reruns retry it."""
    with conn.cursor() as cur:
        cur.execute(
            """
            insert into raw.load_batches (
                path, sha256, bytes, status, error, loader_version, started_at, finished_at
            )
            values (%s, %s, %s, 'failed', %s, %s, clock_timestamp(), clock_timestamp())
            returning batch_id
            """,
            (result.path, result.sha256, result.bytes, result.error, __version__),
        )
        result.batch_id = cur.fetchone()[0]
    conn.commit()


def batch_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files to load: each file given, and every file under each directory given.

    Directories are walked recursively in sorted path order; hidden files and folders
    (a leading '.', as in a collector's temporary `.part` file) are left out.
    """
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                # A broken symlink is listed too: loading it fails loudly instead of vanishing.
                is_candidate = child.is_file() or (child.is_symlink() and not child.exists())
                if is_candidate and not any(part.startswith(".") for part in relative):
                    yield child
        else:
            yield path
