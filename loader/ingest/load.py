"""Loading batch files: read, validate, COPY, exactly once, with a ledger row per file.

One file is one transaction: its ledger row in `raw.load_batches`, its events and its
quarantine rows commit together or not at all. A background thread reads and validates the
file a segment at a time, writing each record as a COPY row of the raw table it is bound for,
while the loading thread COPYs the previous segment straight into the raw tables under a
savepoint. The first event seen before rolls its segment back; from then on segments go
through a temporary table and `insert ... on conflict do nothing`, so an event seen before
counts as a duplicate instead of loading twice. An event is the same event when its id and its
sender match (migration 0008: a conversation event's `agent_name`, a marketplace event's
`publisher_id`); a duplicate whose content differs from the stored copy is also kept in
`raw.conflicts` and counted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg2
import psycopg2.errors
import psycopg2.extensions

from loader import __version__
from loader.errors import DatabaseError
from loader.ingest.contract import (
    AgentEvent,
    ContractError,
    MarketplaceEvent,
    check_event_json,
    checked_record,
    parse_event,
)
from loader.ingest.privacy import NO_PRIVACY, Privacy, mask_text, mask_tree
from loader.ingest.readers import (
    DEFAULT_MAX_RECORD_BYTES,
    BatchFile,
    Record,
    Undecoded,
    decoded,
    file_checksum,
    read_whole,
)
from loader.ingest.spans import USER_ATTRIBUTES, SpanItem, is_export_request, request_spans
from loader.ingest.warehouse import one_row
from loader.shown import shown, shown_path

AGENT, MARKETPLACE, QUARANTINE = "a", "m", "q"
SPAN, SPAN_QUARANTINE = "s", "t"
"""Kinds of rows: raw.spans rows, and quarantine rows of single spans (with a span_index)."""

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

# Rows travel in the raw tables' own column order and types, so the server parses each
# value once, on COPY: a conversation event as raw.agent_events' columns, a marketplace event
# as raw.marketplace_events', a quarantined record as raw.quarantine's, each row ending with
# the batch id and the load's time: `now`, which PostgreSQL reads as the transaction's start,
# `now()` (the server spends about 0.3 µs a row less than on a timestamp). A segment is COPYed
# straight into the raw tables under a savepoint; the first event id seen before (a
# replayed file, a collector's retry) rolls that segment back, and from then on segments go
# through temporary tables and `insert ... on conflict do nothing`.
_AGENT_COLUMNS = (
    "event_id, conversation_id, session_id, event_type, event_ts, agent_name, user_id,"
    " payload, metadata, batch_id, loaded_at"
)
_MARKETPLACE_COLUMNS = (
    "id, event_type, agent_id, publisher_id, tenant_id, event_ts, properties, batch_id, loaded_at"
)
_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, start_time, end_time, duration_ns,"
    " status_code, status_message, attributes, resource_attributes, scope_name, scope_version,"
    " events, batch_id, loaded_at"
)
_QUARANTINE_COLUMNS = "position, raw_text, raw_bytes, reason, batch_id, quarantined_at"
_SPAN_QUARANTINE_COLUMNS = (
    "position, span_index, raw_text, raw_bytes, reason, batch_id, quarantined_at"
)
_TABLES = {
    AGENT: ("raw.agent_events", _AGENT_COLUMNS),
    MARKETPLACE: ("raw.marketplace_events", _MARKETPLACE_COLUMNS),
    SPAN: ("raw.spans", _SPAN_COLUMNS),
}

# An event's identity (migration 0008): its id within its sender's name, so one sender's id
# can never suppress another's event. Per raw table: the id column, the sender column, and
# the columns compared to tell a conflicting duplicate from an identical one.
_IDENTITY = {
    AGENT: (
        "event_id",
        "agent_name",
        "conversation_id, session_id, event_type, event_ts, user_id, payload, metadata",
    ),
    MARKETPLACE: ("id", "publisher_id", "event_type, agent_id, tenant_id, event_ts, properties"),
    # A span is the same span when its trace and span ids match (migration 0012); in
    # raw.conflicts its span id is the `event_id` and its trace id the `sender`.
    SPAN: (
        "span_id",
        "trace_id",
        "parent_span_id, name, kind, start_time, end_time, duration_ns, status_code,"
        " status_message, attributes, resource_attributes, scope_name, scope_version, events",
    ),
}

# Careful mode, after PostgreSQL refused a value of the file: every row goes into
# `load_records` as text (c1-c9: the event's columns in raw order; `record`: its text). A
# segment's events go in with one insert per table; when PostgreSQL refuses that too, each
# record is tried on its own, and a record it refuses (SQLSTATE class 22 or 23, or 54000)
# becomes a quarantine row with its position. The reason keeps the error's kind and
# SQLSTATE, never the value.
_CREATE_LOAD_RECORDS = """
create temporary table load_records (
    position bigint not null,
    kind "char" not null,
    c1 text, c2 text, c3 text, c4 text, c5 text, c6 text, c7 text, c8 text, c9 text,
    record text,
    raw_text text,
    raw_bytes bigint,
    reason text,
    loaded boolean not null default false
) on commit drop
"""

_LOAD_RECORDS_COLUMNS = (
    "position, kind, c1, c2, c3, c4, c5, c6, c7, c8, c9, record, raw_text, raw_bytes, reason"
)

_INSERT_ONE_AT_A_TIME = """
do $$
declare
    row record;
begin
    for row in select ctid as at, * from load_records where kind <> 'q' order by position loop
        begin
            if row.kind = 'a' then
                insert into raw.agent_events (%(agent_columns)s)
                values (
                    row.c1, row.c2, row.c3, row.c4, row.c5::timestamptz, row.c6, row.c7,
                    row.c8::jsonb, row.c9::jsonb, %(batch_id)s, now()
                )
                on conflict (event_id, agent_name) do nothing;
            else
                insert into raw.marketplace_events (%(marketplace_columns)s)
                values (
                    row.c1, row.c2, row.c3, row.c4, row.c5, row.c6::timestamptz,
                    row.c7::jsonb, %(batch_id)s, now()
                )
                on conflict (id, publisher_id) do nothing;
            end if;
            if found then
                update load_records set loaded = true where ctid = row.at;
            end if;
        exception
            when data_exception or integrity_constraint_violation or program_limit_exceeded then
                update load_records
                set kind = 'q',
                    raw_text = row.record,
                    raw_bytes = octet_length(row.record),
                    reason = 'PostgreSQL refused this record: ' || split_part(sqlerrm, ':', 1)
                        || ' (SQLSTATE ' || sqlstate || ')'
                where ctid = row.at;
        end;
    end loop;
end
$$
"""

# Careful mode: the records PostgreSQL accepts go from `load_records` into the temporary
# table of their raw table, and from there the idempotent way (`_insert_new`).
_CAREFUL_STAGE = {
    AGENT: f"""
insert into load_agent_events ({_AGENT_COLUMNS})
select c1, c2, c3, c4, c5::timestamptz, c6, c7, c8::jsonb, c9::jsonb, %(batch_id)s, now()
from load_records
where kind = 'a'""",
    MARKETPLACE: f"""
insert into load_marketplace_events ({_MARKETPLACE_COLUMNS})
select c1, c2, c3, c4, c5, c6::timestamptz, c7::jsonb, %(batch_id)s, now()
from load_records
where kind = 'm'""",
}

_CAREFUL_INSERT_QUARANTINE = """
insert into raw.quarantine (batch_id, position, raw_text, raw_bytes, reason, quarantined_at)
select %(batch_id)s, position, raw_text, raw_bytes, reason, now()
from load_records
where kind = 'q'
"""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: the current file is rolled back and the run stops."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_signals_received: list[int] = []


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While loading, SIGINT and SIGTERM raise `Interrupted` (main thread only).

    Also silences `sys.excepthook` meanwhile: when the server goes away in the middle of a
    COPY, psycopg2 prints the error chain from C; the loader reports it in one line.

    A signal can arrive inside psycopg2's COPY, which reports it as a COPY error: the
    signal is remembered, so `load_file` tells an interrupt from a refusal.
    """

    def handler(signum: int, frame: object) -> None:
        _signals_received.append(signum)
        raise Interrupted(signum)

    def quiet(*exc_info: object) -> None:
        """psycopg2 prints (PyErr_Print) a broken COPY's errors itself; `load_file` reports them."""

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_hook, sys.excepthook = sys.excepthook, quiet
    try:
        yield
    finally:
        sys.excepthook = previous_hook
        for sig, action in previous.items():
            signal.signal(sig, action)
        _signals_received.clear()


# What an error means is its SQLSTATE, never its exception class: psycopg2 reports a
# program limit (54000, an index row over the b-tree maximum) as OperationalError, the class
# it also uses for a dropped socket.
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin, crash, cannot connect now
_REFUSED_CLASSES = ("22", "23")  # data exception, integrity constraint violation
_REFUSED_STATES = frozenset({"54000"})  # program limit exceeded (index row size, ...)


def _connection_lost(conn: psycopg2.extensions.connection, error: psycopg2.Error) -> bool:
    """Is the connection gone: closed, SQLSTATE class 08, or the server shutting it (57P0x)?

    An error without a SQLSTATE that is not from the server (a socket closed under libpq)
    is a lost connection too; anything else the server said is about the statement.
    """
    if conn.closed:
        return True
    code = error.pgcode
    if code is None:
        return isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError))
    return code.startswith("08") or code in _SHUTDOWN_STATES


def _refused_value(error: psycopg2.Error) -> bool:
    """Did PostgreSQL refuse a value of the file (then it loads a record at a time)?

    Class 22 (data exception), 23 (integrity constraint) and 54000 (program limit, such as
    an index row over the b-tree maximum), except the ledger's own unique index on loaded
    sha256s: that one means another loader committed the same file first.
    """
    code = error.pgcode or ""
    if isinstance(error, psycopg2.errors.UniqueViolation) and _is_ledger(error):
        return False
    return code[:2] in _REFUSED_CLASSES or code in _REFUSED_STATES


def _is_ledger(error: psycopg2.Error) -> bool:
    return error.diag.table_name == "load_batches"


class FileChanged(Exception):
    """The file's bytes changed between checksumming and loading (a collector still writing)."""


@dataclass
class FileResult:
    """What happened to one file; `status` is loaded, skipped (already loaded), failed,
    validated (`validate`) or ignored (in a folder, not a batch file name: never read)."""

    path: str
    status: str
    sha256: str | None = None
    bytes: int = 0
    file_format: str | None = None
    batch_id: int | None = None
    records_read: int = 0
    loaded: int = 0
    duplicates: int = 0
    conflicts: int = 0  # duplicates whose content differs from the stored copy (raw.conflicts)
    quarantined: int = 0
    agent_events_loaded: int = 0
    marketplace_events_loaded: int = 0
    spans_loaded: int = 0
    error: str | None = None
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    valid: int = 0  # `validate` only: records that pass the contract (load unless seen before)
    problems: list[dict[str, Any]] = field(default_factory=list)  # `validate`: position, reason

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (shallow: `dataclasses.asdict` deep-copies, 0.2 ms a file)."""
        return dict(vars(self))


# --- records to COPY rows ----------------------------------------------------------------


def _text(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


def unstorable(value: Any) -> str | None:
    """Why PostgreSQL would refuse a decoded JSON value in jsonb, or None.

    Python's JSON decoder accepts three things jsonb does not: NaN and Infinity (the reader
    refuses those, and numbers too large for a float, as it decodes), the NUL character
    (\\u0000) and unpaired UTF-16 surrogates (a lone \\ud800 escape). The walk is
    iterative: no nesting can exhaust the stack.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character (\\u0000), which PostgreSQL cannot store"
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return (
                        "contains an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff escape),"
                        " which is not valid Unicode"
                    )
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


# Only text holding one of these can decode to what jsonb refuses: check those records fully.
_SUSPECT = re.compile(r"\\u")


def _quarantine_row(record: Record, reason: str, privacy: Privacy, layout: Layout) -> bytes:
    raw = record.raw.replace("\x00", "\\x00")
    raw = _text(privacy.raw_text(raw, record.value) if privacy.active else raw)
    if layout.careful:
        line = (
            f"{record.position}\t{QUARANTINE}\t{_NO_COLUMNS}\t\\N"
            f"\t{raw}\t{record.size}\t{_text(reason)}\n"
        )
    else:
        line = f"{record.position}\t{raw}\t{record.size}\t{_text(reason)}{layout.suffix}"
    return line.encode("utf-8", "backslashreplace")


def checked_event(
    record: Record, privacy: Privacy
) -> tuple[str, AgentEvent | MarketplaceEvent, dict[str, Any]]:
    """(kind, event, values to store) for a record the contract accepts; raises
    ContractError otherwise. The values are the record's, identifiers and names in NFC.

    The lake's verdict (`loader/ingest/lake.py`): the pydantic models themselves, which the
    PostgreSQL path's faster check (`_event_row`) is tested to agree with, so both
    destinations keep and quarantine exactly the same records.
    """
    if isinstance(record.value, Undecoded):
        record = decoded(record)
    if record.error:
        raise ContractError(record.error)
    event = parse_event(record.value, show_values=not privacy.active)
    if _SUSPECT.search(record.raw) and (reason := unstorable(record.value)):
        raise ContractError(reason)
    kind = AGENT if isinstance(event, AgentEvent) else MARKETPLACE
    return kind, event, event.model_dump(exclude_unset=True)


_NO_COLUMNS = "\t".join(["\\N"] * 9)


@dataclass(frozen=True)
class Layout:
    """How rows are written: for the raw tables (ending with `suffix`: batch id and load
    time), or, `careful`, all for `load_records`, with each record's text."""

    suffix: str = "\t\\N\t\\N\n"
    careful: bool = False


# `json.dumps` with options builds an encoder per call; these are built once. No circular
# check (`markers` None): the values come from a JSON decoder, which cannot make cycles.
# Without `allow_nan`, NaN and infinities raise ValueError: the one-call validation of a line lets
# them through, and such a line is then read the standard way, whose reader refuses them.
_ENCODERS = {
    allow_nan: json.encoder.c_make_encoder  # type: ignore[attr-defined]
    and json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, None, json.encoder.encode_basestring, None, ":", ",", False, False, allow_nan
    )
    for allow_nan in (True, False)
}


def _json(value: Any, allow_nan: bool = True) -> str:
    """Compact JSON text of a decoded value, as `json.dumps(..., ensure_ascii=False)` writes it.

    orjson first (three times faster); its text differs only in how a float's exponent is
    written (1e-7, not 1e-07), the same number to jsonb. What orjson would change or
    refuses goes to the standard encoder: NaN and infinities, which it writes as null (so
    any text holding `null` does), integers beyond 64 bits and lone surrogates.
    """
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        text = b"null"
    if b"null" not in text:
        return text.decode()
    encode = _ENCODERS[allow_nan]
    if encode is None:  # a Python without the C accelerator
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=allow_nan)
    return "".join(encode(value, 0))


def _escaped(values: str) -> str:
    """COPY text escapes, only where needed (most records have nothing to escape)."""
    if "\\" in values or "\t" in values or "\n" in values or "\r" in values:
        return values.translate(_COPY_ESCAPES)
    return values


def _event_row(record: Record, privacy: Privacy, layout: Layout) -> tuple[str, bytes]:
    """The COPY row for a valid record; raises ContractError for an invalid one."""
    if isinstance(record.value, Undecoded):
        # An NDJSON line the reader left as text (no \u escape, shallow): validated in one
        # pydantic-core call. Anything that call refuses, or a value JSON cannot hold
        # (NaN, or a number too large for a float, which the encoder refuses), takes the
        # standard way below, which gives the verdict and the reason.
        checked = check_event_json(record.raw)
        if checked is not None:
            value, stamp = checked
            try:
                conversation = "event_id" in value
                return _formatted(record, value, conversation, stamp, privacy, layout, False)
            except ValueError:
                pass
        record = decoded(record)
    if record.error:
        raise ContractError(record.error)
    value, conversation, timestamp = checked_record(record.value, not privacy.active)
    if _SUSPECT.search(record.raw) and (reason := unstorable(record.value)):
        raise ContractError(reason)
    # In UTC: PostgreSQL then never sees an offset it might refuse.
    if timestamp.tzinfo is not timezone.utc:  # (most are: naive ones are read as UTC)
        timestamp = timestamp.astimezone(timezone.utc)
    stamp = timestamp.isoformat()
    return _formatted(record, value, conversation, stamp, privacy, layout, True)


def raw_columns(
    value: dict[str, Any], conversation: bool, stamp: Any, allow_nan: bool = True
) -> tuple[Any, ...]:
    """A valid record's values in its raw table's column order, up to `batch_id` (JSON bodies
    as text, `stamp` as the caller writes the timestamp). The one place that order is written:
    COPY rows (`_formatted`, `_plain_row`) and the lake's Parquet rows (`lake._row`) use it."""
    if conversation:
        metadata = value.get("metadata")  # missing or empty: `{}`, without the encoder
        return (
            value["event_id"],
            value["conversation_id"],
            value["session_id"],
            value["event_type"],
            stamp,
            value["agent_name"],
            value["user_id"],
            _json(value["payload"], allow_nan),
            _json(metadata, allow_nan) if metadata else "{}",
        )
    return (
        value["id"],
        value["event_type"],
        value["agent_id"],
        value["publisher_id"],
        value["tenant_id"],
        stamp,
        _json(value["properties"], allow_nan),
    )


def _formatted(
    record: Record,
    value: dict[str, Any],
    conversation: bool,
    stamp: str,
    privacy: Privacy,
    layout: Layout,
    allow_nan: bool,
) -> tuple[str, bytes]:
    """The COPY row of a record the contract accepts (`value`: its fields; `stamp`: its
    timestamp as UTC text)."""
    text = record.raw  # careful mode: the text quarantined if PostgreSQL refuses the row
    if privacy.active:  # the protected record is what gets written
        if layout.careful:
            text = privacy.raw_text(record.raw, value)
        value = privacy.apply(value)
    # No value holds NUL (the contract's jsonb check refuses it): it stands for the tab
    # until the values are escaped for COPY.
    kind = AGENT if conversation else MARKETPLACE
    line = _escaped("\x00".join(raw_columns(value, conversation, stamp, allow_nan)))
    line = line.replace("\x00", "\t")
    if layout.careful:
        padding = "" if conversation else "\t\\N\t\\N"
        line = f"{record.position}\t{kind}\t{line}{padding}\t{_text(text)}\t\\N\t\\N\t\\N\n"
    else:
        line += layout.suffix
    return kind, line.encode("utf-8")


def _plain_row(raw: str, suffix: str) -> tuple[str, bytes] | None:
    """`_event_row` for the usual record, in fewer steps: an undecoded NDJSON line without a
    backslash, loaded without privacy options into the raw tables (`suffix`: the layout's).

    A JSON text without a backslash holds no tab, newline, carriage return or backslash in
    any key or value (JSON refuses them raw), so its row needs no COPY escapes. None: the
    one-call check did not accept the line, or a value JSON cannot hold; `copy_row` then
    gives the verdict and the reason.
    """
    if "\\" in raw:
        return None
    checked = check_event_json(raw)
    if checked is None:
        return None
    value, stamp = checked
    conversation = "event_id" in value
    try:
        line = "\t".join(raw_columns(value, conversation, stamp, False))
    except ValueError:  # NaN or a float too large, written by the encoder: not storable
        return None
    return (AGENT if conversation else MARKETPLACE), (line + suffix).encode("utf-8")


def copy_row(
    record: Record, privacy: Privacy = NO_PRIVACY, layout: Layout = Layout()
) -> tuple[str, bytes, str | None]:
    """(kind, COPY row, quarantine reason or None) for one record."""
    try:
        kind, line = _event_row(record, privacy, layout)
    except ContractError as error:
        quarantined = _quarantine_row(decoded(record), error.reason, privacy, layout)
        return QUARANTINE, quarantined, error.reason
    return kind, line, None


def verdict(record: Record, privacy: Privacy = NO_PRIVACY) -> str | None:
    """The loader's verdict on one record: None when it loads, or the quarantine reason.

    The one verdict: `load` writes each record by it (`copy_row`) and the endpoint answers
    by it (`agent-loader serve`, on each line it writes, read by `readers.line_record`), so
    a record the answer calls accepted is never quarantined by the loader, nor the reverse.
    """
    return copy_row(record, privacy)[2]


# --- spans: one line of OTLP JSON, many records ---------------------------------------------


def export_request(record: Record) -> tuple[Record, dict[str, Any]] | None:
    """(the record decoded, its value) when a line is an OTLP export request, else None."""
    if '"resourceSpans"' not in record.raw:
        return None
    record = decoded(record)
    if record.error is None and is_export_request(record.value):
        return record, record.value
    return None


def checked_spans(record: Record, request: dict[str, Any]) -> list[SpanItem]:
    """The spans of an export request line, each with its values or its reason (the span
    contract, then what jsonb cannot hold); ContractError when no span can be told apart."""
    items = request_spans(request)
    if _SUSPECT.search(record.raw) is not None:  # else no value can hold what jsonb refuses
        for item in items:
            if item.values is not None and (reason := unstorable(item.values)):
                item.values, item.reason = None, f"span {reason}"
    return items


def span_rows(
    record: Record, request: dict[str, Any], privacy: Privacy, layout: Layout
) -> list[tuple[str, bytes, str | None]]:
    """(kind, COPY row, quarantine reason or None) for each span of an export request line.

    Each span is a record: a valid one becomes a raw.spans row, an invalid one a quarantine
    row of its own (its line's position and its `span_index`). A line whose layout is
    broken, so that no span can be told apart, is one quarantined record, as an event is.
    """
    try:
        items = checked_spans(record, request)
    except ContractError as error:
        return [(QUARANTINE, _quarantine_row(record, error.reason, privacy, layout), error.reason)]
    rows: list[tuple[str, bytes, str | None]] = []
    for item in items:
        if item.values is None:
            assert item.reason is not None
            row = _span_quarantine_row(record, item, privacy, layout)
            rows.append((SPAN_QUARANTINE, row, item.reason))
        else:
            rows.append((SPAN, _span_row(item.values, privacy, layout), None))
    return rows


def _nullable(value: str | None) -> str:
    return "\\N" if value is None else _text(value)


def span_columns(values: dict[str, Any], privacy: Privacy) -> tuple[Any, ...]:
    """A valid span's values in raw.spans' column order, up to `batch_id`: protected under
    `privacy`, JSON as text, times as UTC datetimes. The one place that order is written:
    COPY rows (`_span_row`) and the lake's Parquet rows (`lake._rows`) use it."""
    if privacy.active:
        values = protected_span(values, privacy)
    return (
        values["trace_id"],
        values["span_id"],
        values["parent_span_id"],
        values["name"],
        values["kind"],
        values["start_time"],
        values["end_time"],
        values["duration_ns"],
        values["status_code"],
        values["status_message"],
        _json(values["attributes"], False),
        _json(values["resource_attributes"], False),
        values["scope_name"],
        values["scope_version"],
        _json(values["events"], False),
    )


def _span_row(values: dict[str, Any], privacy: Privacy, layout: Layout) -> bytes:
    """A valid span as a raw.spans COPY row (times in UTC: `span_values` makes them so)."""
    columns = (
        value.isoformat()
        if isinstance(value, datetime)
        else str(value)
        if isinstance(value, int)
        else _nullable(value)
        for value in span_columns(values, privacy)
    )
    return ("\t".join(columns) + layout.suffix).encode("utf-8")


def protected_span(values: dict[str, Any], privacy: Privacy) -> dict[str, Any]:
    """A span's values with user ids tokenized (`USER_ATTRIBUTES`, on the span and on its
    resource) and, under any redaction mode, every string of its attributes, events and
    status message masked (`--redact drop` masks too: a span has no free-text field the
    contract knows)."""
    values = dict(values)
    for column in ("attributes", "resource_attributes"):
        attributes = dict(values[column])
        if privacy.key is not None:
            for name in USER_ATTRIBUTES:
                if name in attributes:
                    attributes[name] = privacy.token(attributes[name])
        if privacy.redact != "none":
            attributes = {
                name: value if name in USER_ATTRIBUTES and privacy.key else mask_tree(value)
                for name, value in attributes.items()
            }
        values[column] = attributes
    if privacy.redact != "none":
        values["events"] = mask_tree(values["events"])
        if values["status_message"] is not None:
            values["status_message"] = mask_text(values["status_message"])
    return values


def quarantined_span(item: SpanItem, privacy: Privacy) -> tuple[str, int]:
    """A quarantined span's text (a one-span export request, protected like any quarantined
    record's, user attributes tokenized, NUL written as `\\x00`) and its size in bytes: the
    quarantine row of PostgreSQL (`_span_quarantine_row`) and of the lake (`lake._rows`)."""
    text = _json(item.request)
    if privacy.active:
        text = privacy.raw_text(text, item.request)
    size = len(text.encode("utf-8", "surrogatepass"))
    return text.replace("\x00", "\\x00"), size


def _span_quarantine_row(record: Record, item: SpanItem, privacy: Privacy, layout: Layout) -> bytes:
    """A quarantined span: its line's position, its span_index, and its text
    (`quarantined_span`)."""
    text, size = quarantined_span(item, privacy)
    line = (
        f"{record.position}\t{item.index}\t{_text(text)}\t{size}\t{_text(item.reason or '')}"
        f"{layout.suffix}"
    )
    return line.encode("utf-8", "backslashreplace")


def span_verdicts(record: Record) -> list[str | None] | None:
    """The loader's verdict on each span of an export request line (None: it loads), or
    None when the line is not one. `agent-loader serve` answers `POST /v1/traces` by it."""
    found = export_request(record)
    if found is None:
        return None
    try:  # `span_rows`' verdicts, without writing the rows
        return [item.reason for item in checked_spans(*found)]
    except ContractError as error:
        return [error.reason]


class Tally:
    """Records per kind, and quarantine reasons by family, as rows are produced."""

    def __init__(self, privacy: Privacy = NO_PRIVACY, layout: Layout = Layout()) -> None:
        self.privacy = privacy
        self.layout = layout
        self.counts = {AGENT: 0, MARKETPLACE: 0, SPAN: 0, QUARANTINE: 0}
        self.reasons: dict[str, int] = {}
        self.last_reason: str | None = None
        self.last_kind = QUARANTINE
        self.last_problems: list[tuple[int | None, str]] = []  # `rows`: (span_index, reason)

    def row(self, record: Record) -> bytes:
        kind, line, reason = copy_row(record, self.privacy, self.layout)
        self.counts[kind] += 1
        self.last_kind = kind
        self.last_reason = reason
        if reason is not None:
            family = reason_kind(reason)
            self.reasons[family] = self.reasons.get(family, 0) + 1
        return line

    def rows(self, record: Record) -> list[tuple[str, bytes]]:
        """`row` for any record: a line of OTLP gives a row per span, (kind, row) each;
        a quarantined span's kind is SPAN_QUARANTINE and it counts as quarantined."""
        found = export_request(record)
        if found is None:
            line = self.row(record)
            self.last_problems = [] if self.last_reason is None else [(None, self.last_reason)]
            return [(QUARANTINE if self.layout.careful else self.last_kind, line)]
        rows = []
        self.last_problems = []
        for index, (kind, line, reason) in enumerate(
            span_rows(found[0], found[1], self.privacy, self.layout), start=1
        ):
            self.counts[QUARANTINE if reason is not None else SPAN] += 1
            self.last_reason = reason
            if reason is not None:
                family = reason_kind(reason)
                self.reasons[family] = self.reasons.get(family, 0) + 1
                self.last_problems.append((index if kind == SPAN_QUARANTINE else None, reason))
            rows.append((kind, line))
        return rows


_END = object()

Segment = dict[str, bytes]
"""A segment's COPY rows by kind (AGENT, MARKETPLACE, QUARANTINE); careful: all under QUARANTINE."""


class RowStream(Tally):
    """Turns records into COPY rows on a background thread, a segment at a time.

    Reading and validating is Python work that holds the GIL; psycopg2 releases it while
    the server runs a COPY or an insert, so this thread prepares the next segment while the
    server stores the previous one. At most QUEUE_SEGMENTS segments of SEGMENT_ROWS rows wait
    between them, so memory stays flat however large the file.
    """

    SEGMENT_ROWS = 10_000
    FIRST_SEGMENT_ROWS = 1_000
    QUEUE_SEGMENTS = 2

    def __init__(
        self, records: Iterable[Record], privacy: Privacy = NO_PRIVACY, layout: Layout = Layout()
    ) -> None:
        super().__init__(privacy, layout)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=self.QUEUE_SEGMENTS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(records,), daemon=True)
        self._thread.start()

    def _produce(self, records: Iterable[Record]) -> None:
        try:
            parts: dict[str, list[bytes]] = self._parts()
            all_in_one = self.layout.careful
            rows = 0
            # The server waits for the first segment and Python for nothing after it: a
            # small first segment lets the server start sooner; segments then grow fourfold.
            segment_rows = self.FIRST_SEGMENT_ROWS
            # The usual record takes `_plain_row`, the others `rows` (a line of spans gives
            # a row per span): the same rows either way.
            plain = not (self.privacy.active or all_in_one)
            suffix, counts = self.layout.suffix, self.counts
            for record in records:
                row = None
                if plain and isinstance(record.value, Undecoded):
                    row = _plain_row(record.raw, suffix)
                if row is None:
                    produced = self.rows(record)
                    for kind, line in produced:
                        parts[kind].append(line)
                    rows += len(produced)
                else:
                    kind, line = row
                    counts[kind] += 1
                    parts[kind].append(line)
                    rows += 1
                if rows >= segment_rows:
                    self._put({kind: b"".join(lines) for kind, lines in parts.items() if lines})
                    parts = self._parts()
                    rows = 0
                    segment_rows = min(segment_rows * 4, self.SEGMENT_ROWS)
            if rows:
                self._put({kind: b"".join(lines) for kind, lines in parts.items() if lines})
            self._put(_END)
        except _Stopped:
            pass
        except BaseException as error:  # handed to the loading thread, which re-raises it
            self._put(error)

    @staticmethod
    def _parts() -> dict[str, list[bytes]]:
        return {AGENT: [], MARKETPLACE: [], SPAN: [], QUARANTINE: [], SPAN_QUARANTINE: []}

    def _put(self, item: object) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def segments(self) -> Iterator[Segment]:
        """The segments in order; re-raises the producer's error."""
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


THREAD_SWITCH_SECONDS = 0.0005
"""`sys.setswitchinterval` while files load (the `load` command sets it; Python's default is
5 ms): how long the thread feeding COPY waits to take the GIL back from the validating
thread after each call into libpq. At a segment's end and start the server waits on that
thread, so each wait is server time lost: at 5 ms, about a tenth of a 300,000-event load."""


class _Stopped(Exception):
    """The loading side gave up; the producer thread ends quietly."""


def reason_kind(reason: str) -> str:
    """A short family name for a reason, for summaries: `event_type`, `invalid JSON`, ..."""
    head = reason.split(";")[0]
    return head.split(":")[0] if ":" in head else head


# --- files -------------------------------------------------------------------------------


MAX_PROBLEMS_SHOWN = 1000
"""`validate` lists the position and reason of at most this many quarantined records a file."""


def validate_file(path: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> FileResult:
    """Read and validate a file without a database: what `load` would load and quarantine."""
    started = time.perf_counter()
    tally = Tally(NO_PRIVACY)
    problems: list[dict[str, Any]] = []
    with BatchFile(path, max_record_bytes) as batch:
        for record in batch.records():
            tally.rows(record)
            for span_index, reason in tally.last_problems:
                if len(problems) < MAX_PROBLEMS_SHOWN:
                    problem: dict[str, Any] = {"position": record.position, "reason": reason}
                    if span_index is not None:
                        problem["span_index"] = span_index
                    problems.append(problem)
        result = FileResult(shown_path(path), "validated", batch.sha256, batch.bytes, batch.format)
    _fill_counts(result, tally)
    result.valid = tally.counts[AGENT] + tally.counts[MARKETPLACE] + tally.counts[SPAN]
    result.problems = problems
    result.seconds = time.perf_counter() - started
    return result


def _fill_counts(result: FileResult, tally: Tally) -> None:
    result.records_read = sum(tally.counts.values())
    result.quarantined = tally.counts[QUARANTINE]
    result.reasons = dict(sorted(tally.reasons.items(), key=lambda item: -item[1]))


IN_MEMORY_BYTES = 8 << 20
"""Files up to this size (8 MiB; every file `serve` writes) are read once, into memory, and
checksummed and loaded from there; larger ones are read twice (checksum, then records), so
memory stays flat in the file size."""

_CHANGED = (
    "the file changed while it was being loaded (is a collector still writing it?);"
    " nothing was loaded from it, the next run retries"
)


def load_file(
    conn: psycopg2.extensions.connection,
    path: Path,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    rehash: bool = False,
    privacy: Privacy = NO_PRIVACY,
    known: KnownFiles | None = None,
) -> FileResult:
    """Load one file exactly once; see the module docstring for how.

    A file is skipped when the ledger has loaded it before: at once when its path, size,
    modification time, inode, device and inode-change time match a loaded batch (unless
    `rehash`), otherwise when its sha256 does. `known`: the ledger's loaded files under the
    run's folders (`known_files`), fetched once per run, so an unchanged file costs a `stat`
    and no query.

    Round trips, for a small file: the path lookup (none with `known`), then (one
    statement) the sha256 lookup with the ledger row's insert, one per COPY, the ledger
    row's update and the commit; the path lookup's transaction goes on into the load's, so
    nothing is rolled back between.

    A large file (over IN_MEMORY_BYTES) is checksummed on a thread while it loads, not
    before: its ledger row gets the sha256 in the update that ends the load, where the
    unique index on loaded sha256s refuses content loaded before under another name (the
    whole load is then rolled back and the file skipped, as before, only later). The load
    reads the file a second time and hashes what it reads: a file whose two checksums
    differ changed meanwhile and loads nothing.

    A value PostgreSQL refuses (SQLSTATE class 22 or 23, or 54000) sends the file through
    careful mode, where each refused record is quarantined and the rest loads; only a lost
    connection raises (DatabaseError), any other refusal fails this file alone.
    """
    started = time.perf_counter()
    result = FileResult(shown_path(path), "failed")
    try:
        stat = os.lstat(path)
        earlier = None if rehash else _loaded_before(conn, result, stat, privacy, known)
        if earlier is not None:
            conn.rollback()
            result.status, result.batch_id = "skipped", earlier
        else:
            data, checksum = _read_or_checksum(path, stat, result)
            try:
                _load_in_one_transaction(
                    conn,
                    path,
                    result,
                    max_record_bytes,
                    stat,
                    privacy,
                    data=data,
                    checksum=checksum,
                )
            except psycopg2.Error as error:
                # PostgreSQL refused a value: load the file again, a record at a time where
                # it matters, so that record is quarantined and the rest loads now.
                if _signals_received or conn.closed or not _refused_value(error):
                    raise
                conn.rollback()
                if checksum is not None:
                    result.sha256, result.bytes = checksum.result()
                result = FileResult(result.path, "failed", result.sha256, result.bytes)
                _load_in_one_transaction(
                    conn, path, result, max_record_bytes, stat, privacy, careful=True, data=data
                )
    except (OSError, FileChanged) as error:
        conn.rollback()
        result.error = _describe_failure(error)
        _record_failure(conn, result, privacy)
    except psycopg2.Error as error:
        _database_failure(conn, result, error, privacy)
    result.seconds = time.perf_counter() - started
    return result


def _read_or_checksum(
    path: Path, stat: os.stat_result, result: FileResult
) -> tuple[bytes | None, _Checksum | None]:
    """A small file's bytes, read once and checksummed now (into `result`); for a large
    one, no bytes and its checksum, computed on a thread while it loads."""
    if stat.st_size > IN_MEMORY_BYTES:
        return None, _Checksum(path)
    data = read_whole(path, stat)
    if data is None:
        raise FileChanged(_CHANGED)
    result.sha256, result.bytes = hashlib.sha256(data).hexdigest(), len(data)
    return data, None


def _loaded_before(
    conn: psycopg2.extensions.connection,
    result: FileResult,
    stat: os.stat_result,
    privacy: Privacy,
    known: KnownFiles | None,
) -> int | None:
    """The batch that loaded this very file (path, size, times, inode), if one did."""
    if known is not None:
        return known.batch(privacy.ledger_path(result.path), stat)
    return _loaded_file(conn, privacy.ledger_path(result.path), stat)


def _database_failure(
    conn: psycopg2.extensions.connection,
    result: FileResult,
    error: psycopg2.Error,
    privacy: Privacy,
) -> None:
    """`load_file`'s answer to an error PostgreSQL raised: Interrupted (a signal came),
    DatabaseError (the connection is lost, or the load rolled back: it loads again), a skip
    (another loader committed the file first), else a failed file in the ledger."""
    if _signals_received:
        if not conn.closed:
            conn.rollback()
        raise Interrupted(_signals_received[-1]) from None
    if _connection_lost(conn, error):
        raise DatabaseError(
            f"lost the connection to PostgreSQL while loading {result.path}"
            f" ({_first_line(error)}); that file was rolled back and loads on the next run"
        ) from None
    conn.rollback()
    if isinstance(error, psycopg2.errors.TransactionRollbackError):
        # Class 40 (a deadlock between two files loading at once): nothing of the file
        # was stored and loading it again succeeds; `load --follow` does so at once
        # (loader/live/follow.py, `retry_rolled_back`), a cron `load` on its next run.
        raise DatabaseError(
            f"PostgreSQL rolled back the load of {result.path} ({_first_line(error)});"
            " nothing of it was stored, it loads on the next run"
        ) from None
    if (
        isinstance(error, psycopg2.errors.UniqueViolation)
        and _is_ledger(error)
        and result.sha256 is not None  # always, once the ledger has refused its sha256
    ):
        # A concurrent loader (without the lock) committed the same file first.
        result.status, result.batch_id = "skipped", _loaded_batch(conn, result.sha256)
    else:
        result.error = f"PostgreSQL refused the batch: {_first_line(error)}"
        _record_failure(conn, result, privacy)


def _first_line(error: psycopg2.Error) -> str:
    return shown((str(error).strip().splitlines() or [type(error).__name__])[0])


class _Checksum(threading.Thread):
    """A large file's sha256 and size, computed on a thread of its own (hashlib releases
    the GIL while it hashes) while the file loads."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True, name="checksum")
        self._path = path
        self._value: tuple[str, int] | None = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._value = file_checksum(self._path)
        except BaseException as error:  # re-raised by `result`, on the loading thread
            self._error = error

    def result(self) -> tuple[str, int]:
        self.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _describe_failure(error: Exception) -> str:
    if isinstance(error, FileChanged):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"cannot read the file: {error.strerror}"
    return f"cannot read the file: {error}"


def _signed(number: int) -> int:
    """An inode or device number (unsigned 64-bit) as the bigint the ledger stores."""
    return number - (1 << 64) if number >= 1 << 63 else number


def _same_file(row: tuple[Any, ...], stat: os.stat_result) -> bool:
    """Does a ledger row's (bytes, modified_ns, inode, device, changed_ns) describe this stat?

    A file replaced by another under its name (a rename over it, a copy keeping the mtime,
    even one that reuses the freed inode) has another inode or inode-change time, which no
    tool can set back: it is checksummed, so its content decides, never its name. Rows
    loaded before the ledger kept these (schema 0011) match on size and mtime alone.
    """
    size, modified_ns, inode, device, changed_ns = row
    if (size, modified_ns) != (stat.st_size, stat.st_mtime_ns):
        return False
    if inode is None:
        return True
    return (inode, device, changed_ns) == (
        _signed(stat.st_ino),
        _signed(stat.st_dev),
        stat.st_ctime_ns,
    )


def _loaded_file(
    conn: psycopg2.extensions.connection, path: str, stat: os.stat_result
) -> int | None:
    """The batch that loaded this path as it is now (size, mtime, inode, device); the
    transaction stays open (the load goes on in it, or the caller rolls it back)."""
    with conn.cursor() as cur:
        cur.execute(
            """
            select bytes, modified_ns, inode, device, changed_ns, batch_id
            from raw.load_batches
            where path = %s and bytes = %s and modified_ns = %s and status = 'loaded'
            """,
            (path, stat.st_size, stat.st_mtime_ns),
        )
        rows = cur.fetchall()
    return next((row[5] for row in rows if _same_file(row[:5], stat)), None)


class KnownFiles:
    """The ledger's loaded files under a run's folders, fetched in one query (`known_files`).

    A cron `load` over a landing folder of months of files then skips each unchanged one
    after a `stat` and a dictionary lookup, with no query and no read.
    """

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._rows: dict[str, list[tuple[Any, ...]]] = {}
        for path, *row in rows:
            self._rows.setdefault(path, []).append(tuple(row))

    def batch(self, path: str, stat: os.stat_result) -> int | None:
        """The batch that loaded `path` (as stored) as it is now, or None."""
        for *identity, batch_id in self._rows.get(path, ()):
            if _same_file(tuple(identity), stat):
                return batch_id
        return None


def known_files(
    conn: psycopg2.extensions.connection, paths: Iterable[Path], privacy: Privacy = NO_PRIVACY
) -> KnownFiles:
    """The loaded files under the folders among `paths`, in one query (an index range scan
    on the path, in byte order, per folder); the transaction is rolled back after. The paths
    are as the ledger stores them under `privacy` (masking never spans a `/`, so a folder's
    masked prefix is the prefix of its files' masked paths)."""
    prefixes = []
    for path in paths:
        if path.is_dir():
            # as the walk's paths start, "" for "."
            prefix = privacy.ledger_path(shown_path(path / "x")[:-1])
            if not prefix:
                return KnownFiles([])  # every path would match: look up file by file
            prefixes.append(prefix)
    if not prefixes:
        return KnownFiles([])
    with conn.cursor() as cur:
        cur.execute(
            """
            select batches.path, batches.bytes, batches.modified_ns, batches.inode,
                batches.device, batches.changed_ns, batches.batch_id
            from unnest(%s::text[]) as folders (prefix)
            inner join raw.load_batches as batches
                on batches.path collate "C" >= folders.prefix
                and batches.path collate "C" < folders.prefix || chr(1114111)
            where batches.status = 'loaded'
            """,
            (prefixes,),
        )
        rows = cur.fetchall()
    conn.rollback()
    return KnownFiles(rows)


def _loaded_batch(conn: psycopg2.extensions.connection, sha256: str) -> int | None:
    with conn.cursor() as cur:
        cur.execute(
            "select batch_id from raw.load_batches where sha256 = %s and status = 'loaded'",
            (sha256,),
        )
        row = cur.fetchone()
    conn.rollback()
    return row[0] if row else None


# One statement: the batch that loaded these bytes before, or else the new ledger row's
# batch id.
_BEGIN_BATCH = """
with earlier as (
    select batch_id from raw.load_batches where sha256 = %(sha256)s and status = 'loaded'
),
inserted as (
    insert into raw.load_batches (
        path, sha256, bytes, modified_ns, inode, device, changed_ns, status, privacy,
        key_fingerprint, loader_version, started_at, finished_at
    )
    select
        %(path)s, %(sha256)s, %(bytes)s, %(modified_ns)s, %(inode)s, %(device)s,
        %(changed_ns)s, 'loaded', %(privacy)s,
        %(key_fingerprint)s, %(loader_version)s, clock_timestamp(), clock_timestamp()
    where not exists (select from earlier)
    returning batch_id
)
select (select batch_id from earlier limit 1), (select batch_id from inserted)
"""


def _load_in_one_transaction(
    conn: psycopg2.extensions.connection,
    path: Path,
    result: FileResult,
    max_record_bytes: int,
    stat: os.stat_result,
    privacy: Privacy,
    careful: bool = False,
    data: bytes | None = None,
    checksum: _Checksum | None = None,
) -> None:
    """Load the file in one transaction and commit; skip it (rolled back) when its sha256
    is loaded already. `data`: the file's bytes, read and checksummed before; `checksum`:
    the file's checksum being computed (then the sha256 goes into the ledger at the end)."""
    with BatchFile(path, max_record_bytes, data) as batch, conn.cursor() as cur:
        earlier = _begin_batch(cur, result, stat, privacy)
        if earlier is not None:
            conn.rollback()
            result.status, result.batch_id = "skipped", earlier
            return
        if careful:
            cur.execute(_CREATE_LOAD_RECORDS)
            # (spans go straight to raw.spans in careful mode too: their rows need the suffix)
            layout = Layout(suffix=f"\t{result.batch_id}\tnow\n", careful=True)
        else:
            layout = Layout(suffix=f"\t{result.batch_id}\tnow\n")
        stream = RowStream(batch.records(decode=False), privacy, layout)
        savepoint = _Savepoint()
        try:
            _store_segments(cur, stream, result, savepoint, careful)
        finally:
            stream.close()
        if checksum is not None:
            result.sha256, result.bytes = checksum.result()
        if data is None and batch.sha256 != result.sha256:
            raise FileChanged(_CHANGED)
        result.file_format = batch.format + (".gz" if batch.compressed else "")
        _finish_batch(cur, result, stream, savepoint)
    conn.commit()
    result.status = "loaded"


def _begin_batch(
    cur: psycopg2.extensions.cursor, result: FileResult, stat: os.stat_result, privacy: Privacy
) -> int | None:
    """Insert the batch's ledger row (its id into `result`), or the id of the batch that
    loaded these bytes before (then nothing is inserted)."""
    cur.execute(
        _BEGIN_BATCH,
        {
            "path": privacy.ledger_path(result.path),
            "sha256": result.sha256,
            "bytes": result.bytes,
            "modified_ns": stat.st_mtime_ns,
            "inode": _signed(stat.st_ino),
            "device": _signed(stat.st_dev),
            "changed_ns": stat.st_ctime_ns,
            "privacy": privacy.describe(),
            "key_fingerprint": privacy.key_fingerprint,
            "loader_version": __version__,
        },
    )
    row = one_row(cur)
    earlier: int | None = row[0]
    result.batch_id = row[1]
    return earlier


def _store_segments(
    cur: psycopg2.extensions.cursor,
    stream: RowStream,
    result: FileResult,
    savepoint: _Savepoint,
    careful: bool,
) -> None:
    """Store every segment of the stream: straight into the raw tables until one repeats
    an event seen before, the idempotent way from then on; one at a time when `careful`."""
    ids = {"batch_id": result.batch_id}
    direct = True
    for segment in stream.segments():
        if SPAN_QUARANTINE in segment:
            cur.copy_expert(
                f"copy raw.quarantine ({_SPAN_QUARANTINE_COLUMNS}) from stdin",
                io.BytesIO(segment[SPAN_QUARANTINE]),
                size=_COPY_BUFFER,
            )
        if careful:
            # Spans the idempotent way; a value PostgreSQL refuses in a span (the
            # contract is meant to leave none) fails the file.
            if SPAN in segment:
                _store_idempotently(cur, {SPAN: segment[SPAN]}, result)
            if QUARANTINE in segment:
                _store_carefully(cur, segment[QUARANTINE], ids, stream, result)
            continue
        if direct:
            direct = _store_directly(cur, segment, result, savepoint)
        if not direct:
            _store_idempotently(cur, segment, result)
        if QUARANTINE in segment:
            cur.copy_expert(
                f"copy raw.quarantine ({_QUARANTINE_COLUMNS}) from stdin",
                io.BytesIO(segment[QUARANTINE]),
                size=_COPY_BUFFER,
            )


def _finish_batch(
    cur: psycopg2.extensions.cursor, result: FileResult, stream: RowStream, savepoint: _Savepoint
) -> None:
    """Count what the batch loaded into `result` and write the counts to its ledger row."""
    _fill_counts(result, stream)
    result.loaded = (
        result.agent_events_loaded + result.marketplace_events_loaded + result.spans_loaded
    )
    result.duplicates = (
        stream.counts[AGENT] + stream.counts[MARKETPLACE] + stream.counts[SPAN] - result.loaded
    )
    cur.execute(
        savepoint.release()
        + """
        update raw.load_batches
        set sha256 = %(sha256)s,
            bytes = %(bytes)s,
            file_format = %(file_format)s,
            records_read = %(records_read)s,
            loaded = %(loaded)s,
            duplicates = %(duplicates)s,
            conflicts = %(conflicts)s,
            quarantined = %(quarantined)s,
            agent_events_loaded = %(agent_events_loaded)s,
            marketplace_events_loaded = %(marketplace_events_loaded)s,
            spans_loaded = %(spans_loaded)s,
            finished_at = clock_timestamp()
        where batch_id = %(batch_id)s
        """,
        result.as_dict(),
    )


class _Savepoint:
    """The savepoint of the segment COPYed last, released in the next statement sent.

    Releasing it is sent ahead of whatever comes next (the next segment's savepoint and
    COPY, or the ledger row's update) rather than on its own: one round trip less.
    """

    def __init__(self) -> None:
        self.held = False

    def release(self) -> str:
        """SQL releasing the savepoint if one is held, to put ahead of the next statement."""
        held, self.held = self.held, False
        return "release savepoint segment; " if held else ""


_COPY_BUFFER = 1 << 20


def _copy(cur: psycopg2.extensions.cursor, table: str, rows: bytes, before: str = "") -> int:
    """COPY rows into a table (after the statements in `before`); how many went in."""
    cur.copy_expert(f"{before}copy {table} from stdin", io.BytesIO(rows), size=_COPY_BUFFER)
    return cur.rowcount


def _count_loaded(result: FileResult, kind: str, count: int) -> None:
    if kind == AGENT:
        result.agent_events_loaded += count
    elif kind == SPAN:
        result.spans_loaded += count
    else:
        result.marketplace_events_loaded += count


def _store_directly(
    cur: psycopg2.extensions.cursor, segment: Segment, result: FileResult, savepoint: _Savepoint
) -> bool:
    """COPY a segment's events straight into the raw tables; False if one was seen before.

    Then nothing of the segment stays (its savepoint is rolled back), and the caller
    stores it, and every later segment, the idempotent way. The savepoint is taken in the
    first COPY's statement; the previous segment's is released there too.
    """
    counts = {}
    before = savepoint.release() + "savepoint segment; "
    try:
        for kind, (table, columns) in _TABLES.items():
            if kind in segment:
                savepoint.held = True
                counts[kind] = _copy(cur, f"{table} ({columns})", segment[kind], before)
                before = ""
    except psycopg2.errors.UniqueViolation:
        if _signals_received:
            raise
        cur.execute("rollback to savepoint segment; release savepoint segment")
        savepoint.held = False
        return False
    for kind, count in counts.items():
        _count_loaded(result, kind, count)
    return True


def _store_idempotently(
    cur: psycopg2.extensions.cursor, segment: Segment, result: FileResult
) -> None:
    """A segment through a temporary table, `insert ... on conflict do nothing`."""
    for kind, (_, columns) in _TABLES.items():
        if kind in segment:
            _create_staging(cur, kind)
            staged = _copy(cur, f"{_staging(kind)} ({columns})", segment[kind])
            inserted, conflicts = _insert_new(cur, kind, staged)
            _count_loaded(result, kind, inserted)
            result.conflicts += conflicts


def _staging(kind: str) -> str:
    """The temporary table a raw table's rows go through the idempotent way."""
    return f"load_{_TABLES[kind][0].removeprefix('raw.')}"


def _create_staging(cur: psycopg2.extensions.cursor, kind: str) -> None:
    cur.execute(
        f"create temporary table if not exists {_staging(kind)} (like {_TABLES[kind][0]})"
        " on commit drop"
    )


def _insert_new(cur: psycopg2.extensions.cursor, kind: str, staged: int) -> tuple[int, int]:
    """Insert the staged rows whose identity raw does not hold yet, then keep each duplicate
    whose content differs from the stored copy in `raw.conflicts`: (inserted, conflicts).

    The comparison runs only when some staged row was a duplicate (fewer inserted than
    staged), so a file without duplicates pays nothing for it. A staged row that was just
    inserted meets itself, identical; one that was not meets the stored copy (loaded before,
    or earlier in this file).
    """
    table, columns = _TABLES[kind]
    staging = _staging(kind)
    id_column, sender, compared = _IDENTITY[kind]
    cur.execute(
        f"insert into {table} ({columns}) select {columns} from {staging}"
        f" on conflict ({id_column}, {sender}) do nothing"
    )
    inserted, conflicts = cur.rowcount, 0
    if inserted < staged:
        cur.execute(
            f"""
            insert into raw.conflicts (
                event_table, event_id, sender, stored_batch_id, batch_id, record, detected_at
            )
            select
                '{table.removeprefix("raw.")}', duplicate.{id_column}, duplicate.{sender},
                stored.batch_id, duplicate.batch_id,
                to_jsonb(duplicate) - 'batch_id' - 'loaded_at', now()
            from {staging} as duplicate
            inner join {table} as stored
                on stored.{id_column} = duplicate.{id_column}
                and stored.{sender} = duplicate.{sender}
            where ({_prefixed("stored", compared)}) is distinct from
                ({_prefixed("duplicate", compared)})
            """
        )
        conflicts = cur.rowcount
    cur.execute(f"truncate {staging}")
    return inserted, conflicts


def _stage_careful(
    cur: psycopg2.extensions.cursor, kind: str, ids: dict[str, Any], condition: str = ""
) -> tuple[int, int]:
    """Careful mode: `load_records`' events of one kind (and `condition`) the idempotent way."""
    _create_staging(cur, kind)
    cur.execute(_CAREFUL_STAGE[kind] + condition, ids)
    return _insert_new(cur, kind, cur.rowcount)


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in columns.split(","))


def _store_carefully(
    cur: psycopg2.extensions.cursor,
    rows: bytes,
    ids: dict[str, Any],
    stream: RowStream,
    result: FileResult,
) -> None:
    """Careful mode: a segment into `load_records`, then its events in one insert per table
    (the idempotent way, so a conflicting duplicate is kept), or, when PostgreSQL refuses a
    value, a record at a time (refused ones quarantined, differing duplicates kept)."""
    _copy(cur, f"load_records ({_LOAD_RECORDS_COLUMNS})", rows)
    cur.execute("savepoint careful")
    try:
        stored = {kind: _stage_careful(cur, kind, ids) for kind in _CAREFUL_STAGE}
        cur.execute("release savepoint careful")
    except psycopg2.Error as error:
        if _signals_received or not _refused_value(error):
            raise
        cur.execute("rollback to savepoint careful; release savepoint careful")
        _insert_one_at_a_time(cur, ids, stream, result)
        # what did not load and was not refused is a duplicate: compared with the stored copy
        stored = {
            kind: _stage_careful(cur, kind, ids, " and not loaded") for kind in _CAREFUL_STAGE
        }
    for kind, (inserted, conflicts) in stored.items():
        _count_loaded(result, kind, inserted)
        result.conflicts += conflicts
    cur.execute(_CAREFUL_INSERT_QUARANTINE, ids)
    cur.execute("truncate load_records")


_REFUSED = "PostgreSQL refused this record"


def _insert_one_at_a_time(
    cur: psycopg2.extensions.cursor, ids: dict[str, Any], stream: RowStream, result: FileResult
) -> None:
    """Careful mode's last resort: each of the segment's events inserted on its own; those
    PostgreSQL refuses become quarantine rows, counted as such."""
    counts = "select kind, count(*), count(*) filter (where loaded) from load_records"
    counts += " where kind <> 'q' group by kind"
    cur.execute(counts)
    before = {kind: count for kind, count, _ in cur.fetchall()}
    columns = {"agent_columns": _AGENT_COLUMNS, "marketplace_columns": _MARKETPLACE_COLUMNS}
    cur.execute(_INSERT_ONE_AT_A_TIME % {**columns, "batch_id": int(ids["batch_id"])})
    cur.execute(counts)
    after = {kind: (count, loaded) for kind, count, loaded in cur.fetchall()}
    for kind, count in before.items():
        kept, loaded = after.get(kind, (0, 0))
        _count_loaded(result, kind, loaded)
        stream.counts[kind] -= count - kept
        stream.counts[QUARANTINE] += count - kept
        if count > kept:
            stream.reasons[_REFUSED] = stream.reasons.get(_REFUSED, 0) + count - kept


def _record_failure(
    conn: psycopg2.extensions.connection, result: FileResult, privacy: Privacy
) -> None:
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
            (
                privacy.ledger_path(result.path),
                result.sha256,
                result.bytes,
                result.error,
                __version__,
            ),
        )
        result.batch_id = one_row(cur)[0]
    conn.commit()


BATCH_SUFFIXES = (".ndjson", ".jsonl", ".json")
"""The batch file names a folder is read for, each also with `.gz` (any letter case)."""

NOT_A_BATCH_FILE = (
    "not a batch file (a folder is read for .ndjson, .jsonl and .json files, and their .gz);"
    " name the file on the command line to load it anyway"
)


def is_batch_name(name: str) -> bool:
    """Is this a file name a folder is read for (`BATCH_SUFFIXES`, optionally `.gz`)?"""
    return name.lower().removesuffix(".gz").endswith(BATCH_SUFFIXES)


def _path_order(path: str) -> list[str]:
    """Sort key: `Path` order (component by component), without building a `Path`."""
    return path.split(os.sep)


def ignored_files(paths: Iterable[Path]) -> list[FileResult]:
    """How `load` and `validate` report the files of a folder that are not batch files."""
    return [FileResult(shown_path(path), "ignored", error=NOT_A_BATCH_FILE) for path in paths]


def batch_files(paths: Iterable[Path], ignored: list[Path] | None = None) -> Iterator[Path]:
    """Files to load: each file given, and every batch file under each directory given.

    A file named on the command line is read whatever its name (its format is recognised
    from its content); in a folder, only the names of `BATCH_SUFFIXES` are, and every other
    file is appended to `ignored` (to be reported, never loaded or quarantined).

    Directories are walked recursively in sorted path order; hidden files and folders
    (a leading '.', as in a collector's temporary `.part` file) are left out. Symlinks
    inside a directory are listed but never followed (loading one fails with a reason), and
    neither are FIFOs, sockets or devices; a folder that cannot be listed is yielded itself,
    so loading it fails with the reason instead of it being skipped silently.
    """
    for path in paths:
        if path.is_dir():
            others: list[str] = []
            yield from map(Path, sorted(_walk(path, others), key=_path_order))
            if ignored is not None:
                ignored.extend(map(Path, sorted(others, key=_path_order)))
        else:
            yield path


def _walk(root: Path, ignored: list[str]) -> Iterator[str]:
    """The batch files under `root` (others go to `ignored`), hidden ones left out, without
    following symlinks."""
    folders = [os.fspath(root)]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            yield folder  # unreadable: loading it reports why
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif is_batch_name(entry.name):
                yield entry.path
            else:
                ignored.append(entry.path)
