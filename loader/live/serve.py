"""`agent-loader serve`: the HTTP endpoint collectors POST to, writing durable batch files.

`POST /v1/events` takes what the conversation-analytics reference's `EventCollector` sends
(`{"events": [...]}` as `application/json`), a JSON array, or NDJSON
(`application/x-ndjson`), optionally gzip-compressed (`Content-Encoding: gzip`). Each record
is checked against the event contract exactly as `agent-loader load` will check it, then the
batch is appended to a batch file in the landing folder. A 2xx answer is sent only after the
file holding the batch was fsync'd and atomically renamed into place (file and folder
fsync'd): an acknowledged batch survives a crash of the server or the machine.

Group commit: requests that arrive while a file is being written wait for the next file, so
many requests share one fsync and throughput does not stop at the disk's fsync rate. Files
are written as `.name.part` (hidden, so `load` never reads a half-written file) and renamed.

aiohttp is the HTTP library: one maintained package that is both the server here and the
client the reference collector already uses (`aiohttp.ClientSession`), with streaming
request bodies (a size limit enforced while reading) and transparent gzip decoding.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import hmac
import itertools
import json
import multiprocessing
import os
import re
import secrets
import signal
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from loader.ingest.load import verdict
from loader.ingest.readers import DEFAULT_MAX_RECORD_BYTES, line_record
from loader.limits import (
    BODY_TIMEOUT_SECONDS,
    MAX_DECOMPRESSED_BYTES,
    MAX_GZIP_MEMBERS,
    MAX_ID_BYTES,
    MAX_NAME_BYTES,
    MAX_PROBLEMS_IN_ANSWER,
    MAX_RECORDS_PER_REQUEST,
    MAX_REQUEST_BYTES,
)
from loader.live.traces import (
    PROTOBUF,
    TRACE_TYPES,
    BadTraces,
    CheckedTraces,
    decode_request,
    error_response,
    export_response,
    line_verdicts,
    request_lines,
)

DEFAULT_MAX_SPOOL_BYTES = 1 << 30
"""Landing-folder bytes (files not yet moved away by `load --follow`) above which POSTs get 503."""

DEFAULT_MIN_FREE_BYTES = 512 << 20
"""Free disk space below which POSTs get 503 (512 MiB)."""


DEFAULT_COMMIT_INTERVAL = 0.02
"""Least seconds between the starts of two batch-file writes (group commit): under load,
batches wait up to this long to share a file and an fsync; after a quiet spell the first
batch is written at once. Fewer, larger files cost `load --follow` less per event; shorter
waits answer sooner (at most 50 files a second; bench/README.md has the figures)."""

RETRY_AFTER_SECONDS = 2

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
KEYS_ENV = "AGENT_LOADER_INGEST_KEYS"
_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
ANONYMOUS = "anonymous"


class KeyConfigError(ValueError):
    """The ingest keys file or variable is malformed."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything `serve` needs; the CLI fills it from its options."""

    landing: Path
    host: str = "127.0.0.1"
    port: int = 8000
    keys: dict[str, str] = field(default_factory=dict)  # label -> key; empty: no keys needed
    scopes: dict[str, KeyScope] = field(default_factory=dict)  # label -> scope; absent: unbound
    max_request_bytes: int = MAX_REQUEST_BYTES  # as sent, before gzip decoding
    max_body_bytes: int = MAX_DECOMPRESSED_BYTES  # after gzip decoding
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_spool_bytes: int = DEFAULT_MAX_SPOOL_BYTES
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES
    body_timeout: float = BODY_TIMEOUT_SECONDS
    commit_interval: float = DEFAULT_COMMIT_INTERVAL
    shutdown_timeout: float = 30.0


# --- ingest keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyScope:
    """What a bound ingest key may write for: marketplace events of these publishers
    (`publisher_id`), conversation events of these agents (`agent_name`). A kind of event
    with no list (None) is refused to a bound key; a key with no binding has no KeyScope."""

    publishers: frozenset[str] | None = None
    agents: frozenset[str] | None = None


@dataclass(frozen=True)
class IngestKey:
    """One entry of the keys file: the key and, if bound, its scope."""

    key: str
    scope: KeyScope | None = None


_SCOPE_FIELDS = {"publisher": ("publishers", MAX_ID_BYTES), "agent": ("agents", MAX_NAME_BYTES)}


def parse_keys(text: str, source: str) -> dict[str, IngestKey]:
    """`LABEL:KEY [publisher=ID]... [agent=NAME]...` entries, one per line (a file) or
    comma-separated (the variable).

    Labels are 1-40 letters, digits, '_' or '-' (they go into batch file names); keys are at
    least 16 characters. `publisher=` and `agent=` (repeatable, separated by blanks) bind the
    key to what it may write for (`out_of_scope`). Blank lines and lines starting with '#'
    are ignored.
    """
    keys: dict[str, IngestKey] = {}
    for number, item in enumerate(re.split(r"[\n,]", text), start=1):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        label, sep, rest = item.partition(":")
        label, (key, *bindings) = label.strip(), rest.split() or [""]
        if not sep or not _LABEL.match(label):
            raise KeyConfigError(
                f"{source}, entry {number}: expected LABEL:KEY with LABEL made of letters,"
                " digits, '_' or '-' (at most 40)"
            )
        if len(key) < 16:
            raise KeyConfigError(f"{source}, key {label!r}: a key needs at least 16 characters")
        if label in keys:
            raise KeyConfigError(f"{source}: label {label!r} appears twice")
        keys[label] = IngestKey(key, _scope(bindings, f"{source}, key {label!r}"))
    return keys


def _scope(bindings: list[str], where: str) -> KeyScope | None:
    """The scope of `publisher=ID` / `agent=NAME` words; None when there are none."""
    if not bindings:
        return None
    found: dict[str, set[str]] = {}
    for binding in bindings:
        name, sep, value = binding.partition("=")
        if not sep or name not in _SCOPE_FIELDS or not value:
            raise KeyConfigError(
                f"{where}: {binding!r} is not a binding: write publisher=ID or agent=NAME"
                " after the key, separated by blanks"
            )
        field_name, limit = _SCOPE_FIELDS[name]
        if len(value.encode("utf-8")) > limit:
            raise KeyConfigError(f"{where}: a {name} is at most {limit} bytes")
        found.setdefault(field_name, set()).add(value)
    return KeyScope(**{name: frozenset(values) for name, values in found.items()})


def load_keys(keys_file: Path | None) -> dict[str, IngestKey]:
    """Keys from --keys-file and from $AGENT_LOADER_INGEST_KEYS, merged."""
    keys: dict[str, IngestKey] = {}
    if keys_file is not None:
        keys.update(parse_keys(keys_file.read_text(encoding="utf-8"), str(keys_file)))
    if os.environ.get(KEYS_ENV):
        for label, key in parse_keys(os.environ[KEYS_ENV], f"${KEYS_ENV}").items():
            if label in keys:
                raise KeyConfigError(f"label {label!r} is both in the keys file and ${KEYS_ENV}")
            keys[label] = key
    return keys


def out_of_scope(records: list[tuple[str, Any]], scope: KeyScope | None, label: str) -> list[dict]:
    """The records a bound key may not write, as (index, reason); none for an unbound key.

    A record is routed as the loader routes it (`event_id`: a conversation event, else a
    marketplace event); its sender (`agent_name`, `publisher_id`) must be one the key is
    bound to. Such a record is refused, never written: an id is an event's identity only
    within its sender (docs/contract.md), and a key may not speak for another sender. The
    reason names the field and the key's label, never the value.
    """
    if scope is None:
        return []
    refused = []
    for index, (_, value) in enumerate(records):
        if not isinstance(value, dict):
            continue  # not an event: the contract quarantines it
        if "event_id" in value:
            field_name, allowed, kind = "agent_name", scope.agents, "conversation events"
        else:
            field_name, allowed, kind = "publisher_id", scope.publishers, "marketplace events"
        sender = value.get(field_name)
        if allowed is None:
            reason = f"ingest key {label!r} is not bound to write {kind}"
        elif not isinstance(sender, str) or sender not in allowed:
            reason = f"{field_name} is outside the scope of ingest key {label!r}"
        else:
            continue
        refused.append({"index": index, "reason": reason})
    return refused


def refuse(lines: list[bytes], quarantined: list[dict], refused: list[dict]) -> list[dict]:
    """Take the refused records out of a batch: their lines become blank (the loader skips
    blank lines, so the others keep `position = first_line + index`) and they leave the
    quarantined list (nothing of theirs is written). Returns the quarantined that remain."""
    if not refused:
        return quarantined
    indexes = {item["index"] for item in refused}
    for index in indexes:
        lines[index] = b""
    return [item for item in quarantined if item["index"] not in indexes]


def _key_label(keys: dict[str, str], header: str | None) -> str | None:
    """The label of the key in an `Authorization: Bearer KEY` header, or None.

    Every configured key is compared (in constant time), so the answer's timing does not
    tell which key, or how much of one, was right.
    """
    if not keys:
        return ANONYMOUS
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    given = token.strip().encode("utf-8")
    found = None
    for label, key in keys.items():
        if hmac.compare_digest(given, key.encode("utf-8")):
            found = label
    return found


# --- request bodies ----------------------------------------------------------------------


class BadBatch(Exception):
    """A request the server refuses as a whole: HTTP status and a message saying what to do."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def __reduce__(self) -> tuple:  # raised in a worker, answered by the event loop
        return (BadBatch, (self.status, self.message, self.headers))


_DOCUMENT_START = re.compile(r'\s*\{\s*"events"\s*:\s*\[')
_ARRAY_START = re.compile(r"\s*\[")
_SPACE = re.compile(r"\s*")


def _after_space(text: str, pos: int) -> int:
    """The position of the first character at or after `pos` that is not whitespace."""
    match = _SPACE.match(text, pos)
    return match.end() if match else pos  # (the pattern matches the empty string too)


_DECODER = json.JSONDecoder()


def decode_batch(body: bytes, content_type: str) -> list[tuple[str, Any]]:
    """The records of a request body as (JSON text, value), or BadBatch(400).

    The text is one line, ready for the batch file. An NDJSON line is kept as the client
    sent it. A JSON document is parsed with orjson and each record written back as compact
    JSON (same keys, order and values: about 1.5 µs a record instead of 4); a body orjson
    reads differently from the loader's `json` (NaN, lone surrogates, integers of 19 digits
    or more, which orjson would turn into floats) takes the `json` path, where each record
    keeps the client's text unless it spans several lines.

    A record nested too deeply for Python to decode (valid JSON: the loader quarantines it
    alone) is kept with the value None; `verdicts` reads the line as the loader will.
    """
    if content_type in NDJSON_TYPES:
        records = []
        for number, line in enumerate(body.split(b"\n"), start=1):
            line = line.strip(b" \t\r")
            if line:
                text = _utf8(line, f"line {number}")
                value = _fast_value(line)
                if value is _SLOW:
                    value = _json(text, f"line {number}", deep=None)
                records.append((text, value))
        return records
    fast = _fast_document(body)
    if fast is not None:
        return fast
    text = _utf8(body, "the body")
    split = _split_document(text)
    if split is not None:
        return split
    document = _json(text, "the body")  # not the common layout: parse it as a whole
    if isinstance(document, dict) and list(document) == ["events"]:
        if not isinstance(document["events"], list):
            raise BadBatch(400, 'the "events" value must be a JSON array of event objects')
        document = document["events"]
    elif not isinstance(document, list):
        raise BadBatch(
            400,
            'expected {"events": [...]} (the only key) or a JSON array of events;'
            " for one record per line send Content-Type: application/x-ndjson",
        )
    return [(_one_line(value), value) for value in document]


_SLOW = object()
_DIGITS_AS_ZERO = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
_LONG_NUMBER = b"0" * 19


def _fast_value(data: bytes) -> Any:
    """`data` parsed by orjson, or _SLOW where only `json` reads it as the loader will."""
    if _LONG_NUMBER in data.translate(_DIGITS_AS_ZERO):  # 19 digits in a row; a regex: 50x slower
        return _SLOW
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _SLOW


def _fast_document(body: bytes) -> list[tuple[str, Any]] | None:
    """`{"events": [...]}` or `[...]` through orjson, records re-serialised; None if not."""
    document = _fast_value(body)
    if isinstance(document, dict) and len(document) == 1 and "events" in document:
        document = document["events"]
    if not isinstance(document, list):
        return None  # the `json` path gives the precise answer
    try:
        return [(orjson.dumps(value).decode("utf-8"), value) for value in document]
    except orjson.JSONEncodeError:  # nested deeper than orjson writes
        return None


def _split_document(text: str) -> list[tuple[str, Any]] | None:
    """`{"events": [...]}` or `[...]` split into its elements' texts; None if not that."""
    match = _DOCUMENT_START.match(text)
    closing = "}" if match else ""
    match = match or _ARRAY_START.match(text)
    if not match:
        return None
    records, pos = [], _after_space(text, match.end())
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except json.JSONDecodeError:
                return None
            except (RecursionError, ValueError):  # too deep, or an integer too long: valid
                skipped = _value_end(text, pos)  # JSON, kept as text for `verdicts`
                if skipped is None:
                    return None
                value, end = None, skipped
                raw = _LINE_BREAKS.sub(" ", text[pos:end])  # (only blanks: JSON strings
                records.append((raw, value))  # hold no raw line breaks)
            else:
                raw = text[pos:end]
                records.append((_one_line(value) if "\n" in raw or "\r" in raw else raw, value))
            pos = _after_space(text, end)
            if text.startswith(",", pos):
                pos = _after_space(text, pos + 1)
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                return None
    pos = _after_space(text, pos)
    if closing:
        if not text.startswith(closing, pos):
            return None
        pos = _after_space(text, pos + 1)
    return records if pos == len(text) else None


_LINE_BREAKS = re.compile(r"[\r\n]")
_TOKEN = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"|[\[\]{}]|[^"\[\]{}]+')
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def _value_end(text: str, pos: int) -> int | None:
    """Where the number, array or object at `pos` ends, found without decoding it (brackets
    counted outside strings); None if it does not end."""
    number = _NUMBER.match(text, pos)
    if number:
        return number.end()
    depth = 0
    for token in _TOKEN.finditer(text, pos):
        first = token.group()[0]
        if first in "[{":
            depth += 1
        elif first in "]}":
            depth -= 1
            if depth == 0:
                return token.end()
        if depth == 0:
            return None  # not an array or object (those decode without recursion)
    return None


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadBatch(400, f"{where} is not valid UTF-8 (byte {error.start + 1})") from None


def _json(text: str, where: str, deep: Any = _SLOW) -> Any:
    """`text` decoded, or BadBatch(400); `deep` (when given) for a valid text Python cannot
    decode: nested too deeply, or an integer of more than MAX_INTEGER_DIGITS digits."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BadBatch(400, f"{where} is not valid JSON: {error.msg} at char {error.pos}") from None
    except (RecursionError, ValueError):
        if deep is not _SLOW:
            return deep
        raise BadBatch(
            400, f"{where} is nested too deeply or holds an integer too long to read"
        ) from None


def _one_line(record: Any) -> str:
    """A record as one line of JSON (JSON escapes every control character in strings)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, only possible after re-serialising
        return text.encode("utf-8", "backslashreplace")


def verdicts(
    records: list[tuple[str, Any]], max_record_bytes: int
) -> tuple[list[bytes], list[dict]]:
    """Lines for the batch file, and the records `load` will quarantine (index, reason).

    The verdict is the loader's own (`load.verdict`), on each line as the loader will read
    it from the batch file (`readers.line_record`): the same function, on the same bytes.
    """
    lines, quarantined = [], []
    for index, (text, _value) in enumerate(records):
        line = _encode(text)
        lines.append(line)
        reason = verdict(line_record(index + 1, line, max_record_bytes))
        if reason is not None:
            quarantined.append({"index": index, "reason": reason})
    return lines, quarantined


# --- the worker: everything that reads a request's content --------------------------------


@dataclass(frozen=True)
class BodyLimits:
    """The bounds a worker checks a body against (sent to it with the body)."""

    max_body_bytes: int  # after gzip decoding
    max_record_bytes: int
    max_records: int = MAX_RECORDS_PER_REQUEST
    max_gzip_members: int = MAX_GZIP_MEMBERS
    max_problems: int = MAX_PROBLEMS_IN_ANSWER


@dataclass(frozen=True)
class Checked:
    """A checked request: its batch-file lines and what the answer says about them."""

    lines: list[bytes]
    records: int
    quarantined: int  # how many `load` will quarantine
    problems: list[dict]  # the first `max_problems` of them: index and reason
    refused: int = 0  # how many are outside the ingest key's scope, not written
    refusals: list[dict] = field(default_factory=list)  # the first `max_problems` of them


def check_body(
    body: bytes,
    content_type: str,
    gzipped: bool,
    limits: BodyLimits,
    scope: KeyScope | None = None,
    label: str = ANONYMOUS,
) -> Checked:
    """Decode and check a request body, or BadBatch; runs in the worker pool, never on the loop.
    `scope`: what the ingest key (`label`) may write for (`out_of_scope`); None: anything.

    Everything here is bounded by the limits: the decoded size, the gzip members, the records
    (counted cheaply before any is parsed, so 8M one-byte records cost a scan, not 8M
    verdicts) and the problems the answer lists.
    """
    if gzipped:
        body = gunzip(body, limits.max_body_bytes, limits.max_gzip_members)
    elif len(body) > limits.max_body_bytes:
        raise _too_large(limits.max_body_bytes)
    if _more_records_than(body, content_type, limits.max_records):
        raise _too_many_records(limits.max_records)
    records = decode_batch(body, content_type)
    if len(records) > limits.max_records:  # a layout the cheap count does not read
        raise _too_many_records(limits.max_records)
    lines, quarantined = verdicts(records, limits.max_record_bytes)
    refused = out_of_scope(records, scope, label)
    quarantined = refuse(lines, quarantined, refused)
    return Checked(
        lines,
        len(records),
        len(quarantined),
        quarantined[: limits.max_problems],
        len(refused),
        refused[: limits.max_problems],
    )


def check_traces(
    body: bytes,
    content_type: str,
    gzipped: bool,
    limits: BodyLimits,
    scope: KeyScope | None = None,
    label: str = ANONYMOUS,
) -> CheckedTraces:
    """`check_body` for an OTLP export request (`POST /v1/traces`, loader/live/traces.py):
    the same size, gzip and record limits (a span is a record), BadBatch(400) for a body that
    is not an export request. A key bound to senders (`scope`) may not write spans."""
    if gzipped:
        body = gunzip(body, limits.max_body_bytes, limits.max_gzip_members)
    elif len(body) > limits.max_body_bytes:
        raise _too_large(limits.max_body_bytes)
    try:
        lines, spans = request_lines(
            decode_request(body, content_type), limits.max_record_bytes // 2
        )
    except BadTraces as error:
        raise BadBatch(400, str(error)) from None
    if spans > limits.max_records:
        raise _too_many_records(limits.max_records)
    if scope is not None:
        message = f"ingest key {label!r} is bound to senders and may not write spans"
        return CheckedTraces([], spans, spans, message, refused=True)
    rejected, message = line_verdicts(lines, limits.max_record_bytes)
    return CheckedTraces(lines, spans, rejected, message)


def gunzip(data: bytes, max_bytes: int, max_members: int) -> bytes:
    """A gzip body decoded, member after member, or BadBatch: 413 past `max_bytes` of output
    (a gzip bomb stops there) or `max_members` members, 400 if it is not gzip or truncated.

    The input is fed 64 KiB at a time: what follows a member is copied (`unused_data`), and
    copying the whole rest of the body after each of a thousand tiny members is seconds.
    """
    chunks: list[bytes] = []
    size = members = 0
    view, pos = memoryview(data), 0
    pending: bytes | memoryview = b""
    inflater = None
    try:
        while pending or pos < len(view):
            if not pending:
                pending, pos = view[pos : pos + _GZIP_STEP], pos + _GZIP_STEP
            if inflater is None:
                members += 1
                if members > max_members:
                    raise BadBatch(
                        413,
                        f"the gzip body has more than {max_members} members: compress the"
                        " batch as one",
                    )
                inflater = zlib.decompressobj(wbits=31)
            out = inflater.decompress(pending, max_bytes + 1 - size)
            size += len(out)
            if size > max_bytes:
                raise _too_large(max_bytes)
            chunks.append(out)
            if inflater.eof:  # a next member may follow (concatenated gzip)
                pending, inflater = inflater.unused_data, None
            else:
                pending = inflater.unconsumed_tail
    except zlib.error as error:
        raise BadBatch(400, f"the body is not valid gzip: {error}") from None
    if inflater is not None or not members:
        raise BadBatch(400, "the gzip body is truncated")
    return b"".join(chunks)


_GZIP_STEP = 1 << 16


_NON_BLANK_LINE = re.compile(rb"^[ \t\r]*[^ \t\r\n]", re.MULTILINE)


def _more_records_than(body: bytes, content_type: str, limit: int) -> bool:
    """Whether the body holds more than `limit` records, counting no further than limit + 1.

    An upper bound first (lines, or commas for a JSON document: records are separated by
    commas), and an exact count only when that bound is over the limit. False when the body
    is not a layout counted here: `decode_batch` gives its own answer, and the count of what
    it returns is checked again.
    """
    if content_type in NDJSON_TYPES:
        if body.count(b"\n") < limit:
            return False
        beyond = itertools.islice(_NON_BLANK_LINE.finditer(body), limit, None)
        return next(beyond, None) is not None
    if body.count(b",") < limit:
        return False
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    match = _DOCUMENT_START.match(text) or _ARRAY_START.match(text)
    if not match:
        return False
    pos, count = _after_space(text, match.end()), 0
    while True:
        try:
            _, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            return False
        count += 1
        if count > limit:
            return True
        pos = _after_space(text, end)
        if not text.startswith(",", pos):
            return False
        pos = _after_space(text, pos + 1)


def _too_many_records(limit: int) -> BadBatch:
    return BadBatch(413, f"the batch has more than {limit} records: send smaller batches")


def _too_large(limit: int, when: str | None = "after gzip decoding") -> BadBatch:
    said = f" ({when})" if when else ""
    return BadBatch(413, f"the body is over {limit} bytes{said}: send smaller batches")


# --- the spool: group commit into batch files --------------------------------------------


@dataclass
class _Pending:
    label: str
    lines: list[bytes]
    future: asyncio.Future


class Spool:
    """Batch files in the landing folder, written by group commit.

    `submit` queues a batch and resolves (file name, first line number) once the file that
    holds it is durable. One writer task takes everything queued, writes one file per key
    label, fsyncs it, renames it into place, fsyncs the folder and answers all of them.
    """

    def __init__(self, landing: Path, metrics: Metrics, commit_interval: float) -> None:
        self.landing = landing
        self.metrics = metrics
        self.commit_interval = commit_interval
        self.bytes = 0  # batch files in the landing folder
        self.queued_bytes = 0  # batches waiting for their file, held in memory
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._token = secrets.token_hex(3)
        self._sequence = 0
        self._closing = False
        self._dir_fd = os.open(landing, os.O_RDONLY)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._remove_stale_parts()
        self.bytes = spool_bytes(self.landing)
        self._task = asyncio.get_running_loop().create_task(self._writer())

    def _remove_stale_parts(self) -> None:
        """`.part` files left by a crash hold batches never acknowledged: the clients retry."""
        for entry in os.scandir(self.landing):
            if entry.name.startswith(".") and entry.name.endswith(".part"):
                os.unlink(entry.path)

    async def submit(self, label: str, lines: list[bytes]) -> tuple[str, int]:
        future = asyncio.get_running_loop().create_future()
        size = sum(len(line) + 1 for line in lines)
        self._queue.append(_Pending(label, lines, future))
        self.queued_bytes += size
        self._wake.set()
        try:
            return await future
        finally:
            self.queued_bytes -= size

    async def close(self) -> None:
        """Write what is queued, then stop the writer."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        os.close(self._dir_fd)

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        last_start = float("-inf")
        while True:
            await self._wake.wait()
            wait = last_start + self.commit_interval - loop.time()
            if wait > 0 and not self._closing:
                await asyncio.sleep(wait)  # requests arriving meanwhile share this file
            last_start = loop.time()
            self._wake.clear()
            group, self._queue = self._queue, []
            if group:
                by_label: dict[str, list[_Pending]] = {}
                for pending in group:
                    by_label.setdefault(pending.label, []).append(pending)
                for label, items in by_label.items():
                    try:
                        name, size, offsets = await loop.run_in_executor(
                            None, self._write, label, items
                        )
                    except Exception as error:  # answered 503 (OSError) or 500, never lost
                        for pending in items:
                            if not pending.future.done():
                                pending.future.set_exception(error)
                        continue
                    self.bytes += size
                    for pending, first_line in zip(items, offsets, strict=True):
                        if not pending.future.done():
                            pending.future.set_result((name, first_line))
            if self._closing and not self._queue:
                return

    def _write(self, label: str, items: list[_Pending]) -> tuple[str, int, list[int]]:
        """One durable file for a group (runs in a worker thread)."""
        self._sequence += 1
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{label}-{self._token}-{self._sequence:06d}.ndjson"
        part = self.landing / f".{name}.part"
        offsets, line_number, chunks = [], 1, []
        for pending in items:
            offsets.append(line_number)
            line_number += len(pending.lines)
            chunks.extend(pending.lines)
        data = b"\n".join(chunks) + b"\n"
        started = time.perf_counter()
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            os.unlink(part)
            raise
        os.close(fd)
        os.rename(part, self.landing / name)
        os.fsync(self._dir_fd)
        self.metrics.fsync_seconds.observe(time.perf_counter() - started)
        self.metrics.files.inc()
        return name, len(data), offsets

    async def rescan(self, every: float) -> None:
        """Recount the landing folder's bytes now and then (`load --follow` moves files out)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            self.bytes = await loop.run_in_executor(None, spool_bytes, self.landing)


def spool_bytes(landing: Path) -> int:
    """Bytes of the batch files waiting in the landing folder (hidden entries left out)."""
    return sum(entry.stat().st_size for entry in _batch_entries(landing))


def _batch_entries(folder: Path) -> Iterator[os.DirEntry]:
    for entry in os.scandir(folder):
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _batch_entries(Path(entry.path))
        elif entry.is_file(follow_symlinks=False):
            yield entry


# --- metrics -----------------------------------------------------------------------------


class Metrics:
    """The Prometheus metrics of one server, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "agent_loader_requests",
            "HTTP requests by path and status code",
            ["path", "code"],
            registry=r,
        )
        self.accepted = Counter(
            "agent_loader_events_accepted",
            "Records acknowledged that will load into raw",
            registry=r,
        )
        self.quarantined = Counter(
            "agent_loader_events_quarantined",
            "Records acknowledged that the loader will put in raw.quarantine",
            registry=r,
        )
        self.rejected = Counter(
            "agent_loader_events_rejected",
            "Records in decoded batches refused as a whole (4xx/5xx); the client keeps them",
            registry=r,
        )
        self.refused = Counter(
            "agent_loader_events_refused",
            "Records refused, not written: outside the scope of their ingest key",
            registry=r,
        )
        self.files = Counter("agent_loader_batch_files", "Batch files written", registry=r)
        self.spool = Gauge(
            "agent_loader_spool_bytes",
            "Bytes of batch files waiting in the landing folder",
            registry=r,
        )
        self.check_seconds = Histogram(
            "agent_loader_check_seconds",
            "Time from handing a request body to the worker pool to its verdicts",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.fsync_seconds = Histogram(
            "agent_loader_fsync_seconds",
            "Time to write, fsync and rename one batch file",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )


# --- the application ---------------------------------------------------------------------


CHECK_WORKERS = os.cpu_count() or 2
"""Worker processes that decode and check large request bodies (one a core)."""

SMALL_BODY_BYTES = 256 << 10
"""Events bodies up to this size as sent, not gzip, are checked in a thread of the server
instead: the GIL is held by no C call longer than about a millisecond for them (orjson
parses 256 KiB in that), and the trip to a process cost about 15 µs an event more CPU for
50-event batches (bench/README.md)."""


class CheckPool:
    """Where `check_body` runs: a request's content is never read on the event loop.

    Large bodies, and all gzip ones (what they decode to is not known before), go to worker
    processes: with threads the loop shares the GIL with the checking, and /healthz p99 was
    173-220 ms while the heaviest allowed requests arrived (one C call such as orjson
    parsing 16 MiB holds the GIL for its whole length); with processes it was 44-75 ms on
    the same busy machine. Small events bodies, the common case, go to a thread, which
    costs a fraction of the trip to a process and blocks the loop for no longer than the
    interpreter's switch interval (5 ms).

    OTLP export requests (`check_traces`) always go to the processes: a span costs some
    40 µs of Python to decode and check, so a 50-span request holds the GIL for about 2 ms,
    and in a thread the loop waited on it. In a process the trip cost no measurable CPU a
    span and acknowledged spans/s went from 5,500 to 8,800 on the same busy machine
    (bench/HISTORY.md).
    """

    def __init__(self, workers: int = CHECK_WORKERS) -> None:
        self.workers = workers
        self._executor = self._start()
        self._threads = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="check")

    def _start(self) -> concurrent.futures.ProcessPoolExecutor:
        # spawn: a fork of this process would copy its threads' locks; the workers are
        # children of this process, so they can end with it (_worker_init).
        return concurrent.futures.ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

    async def warm_up(self, limits: BodyLimits) -> None:
        """Start every worker before the first request needs one."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(
                loop.run_in_executor(
                    self._executor, check_body, b"", NDJSON_TYPES[0], False, limits
                )
                for _ in range(self.workers)
            )
        )

    async def check(
        self,
        body: bytes,
        content_type: str,
        gzipped: bool,
        limits: BodyLimits,
        scope: KeyScope | None = None,
        label: str = ANONYMOUS,
        check: Any = check_body,
    ) -> Any:
        """`check(body, ...)`: `check_body` (Checked), or `check_traces` (CheckedTraces),
        in a thread for a small events body, in a worker process otherwise."""
        loop = asyncio.get_running_loop()
        arguments = (body, content_type, gzipped, limits, scope, label)
        if check is check_body and not gzipped and len(body) <= SMALL_BODY_BYTES:
            return await loop.run_in_executor(self._threads, check, *arguments)
        executor = self._executor
        try:
            return await loop.run_in_executor(executor, check, *arguments)
        except concurrent.futures.BrokenExecutor:
            if self._executor is executor:  # a worker died (killed, out of memory): new ones
                self._executor = self._start()
                executor.shutdown(wait=False)
            raise BadBatch(
                503,
                "the worker checking the batch stopped; retry later",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None

    def shutdown(self) -> None:
        self._threads.shutdown()
        self._executor.shutdown()


def _worker_init(server_pid: int) -> None:
    """A worker ends with its server, and only then.

    SIGTERM and SIGINT are for the server (systemd and a terminal send them to every
    process of the group): it finishes the requests in flight, then stops the workers. If
    the server is killed outright, the kernel kills the workers too (Linux), so no worker
    is left behind holding the server's terminal or log pipes.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server_pid:  # the server was gone before the line above
        os._exit(0)


_PR_SET_PDEATHSIG = 1


def create_app(config: ServeConfig) -> web.Application:
    """The aiohttp application: /v1/events, /v1/traces, /healthz and /metrics."""
    metrics = Metrics()
    app = web.Application(client_max_size=config.max_request_bytes)
    state: dict[str, Any] = {"config": config, "metrics": metrics}

    async def on_startup(app: web.Application) -> None:
        spool = Spool(config.landing, metrics, config.commit_interval)
        spool.start()
        state["spool"] = spool
        state["rescan"] = asyncio.get_running_loop().create_task(spool.rescan(1.0))
        state["pool"] = CheckPool()
        await state["pool"].warm_up(BodyLimits(config.max_body_bytes, config.max_record_bytes))

    async def on_cleanup(app: web.Application) -> None:
        state["rescan"].cancel()
        await state["spool"].close()
        state["pool"].shutdown()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)

    async def events(request: web.Request) -> web.StreamResponse:
        try:
            response = await _ingest(request, state)
        except BadBatch as error:
            response = web.json_response(
                {"error": error.message}, status=error.status, headers=error.headers
            )
            if not request.content.is_eof():
                await _answer_and_close(request, response)
        metrics.requests.labels("/v1/events", str(response.status)).inc()
        return response

    async def healthz(request: web.Request) -> web.Response:
        spool: Spool = state["spool"]
        return web.json_response({"status": "ok", "spool_bytes": spool.bytes})

    async def metrics_view(request: web.Request) -> web.Response:
        metrics.spool.set(state["spool"].bytes)
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def traces(request: web.Request) -> web.StreamResponse:
        try:
            response = await _ingest_traces(request, state)
        except BadBatch as error:
            protobuf = request.content_type.lower() == PROTOBUF
            body, answer_type = error_response(error.status, error.message, protobuf)
            headers = {**error.headers, "Content-Type": answer_type}
            response = web.Response(body=body, status=error.status, headers=headers)
            if not request.content.is_eof():
                await _answer_and_close(request, response)
        metrics.requests.labels("/v1/traces", str(response.status)).inc()
        return response

    app.router.add_post("/v1/events", events)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    return app


_Checked = TypeVar("_Checked", Checked, CheckedTraces)


async def _received(
    request: web.Request,
    state: dict[str, Any],
    types: tuple[str, ...],
    check: Callable[..., _Checked],
    send: str,
    key_hint: str = "",
) -> tuple[str, str, _Checked]:
    """A POST's prelude, for /v1/events and /v1/traces alike: the ingest key, the headers,
    the room left, the body read on the loop and its content checked in a worker (`check`).
    The ingest key's label, the content type and what `check` returned; or BadBatch.
    `send`: the accepted content types, as the 415 answer names them; `key_hint`: how the
    client sends a key, after the 401 answer's own."""
    config: ServeConfig = state["config"]
    metrics: Metrics = state["metrics"]
    spool: Spool = state["spool"]

    label = _key_label(config.keys, request.headers.get("Authorization"))
    if label is None:
        raise BadBatch(
            401,
            f"missing or unknown ingest key: send Authorization: Bearer <key>{key_hint}",
            {"WWW-Authenticate": 'Bearer realm="agent-loader"'},
        )
    content_type = request.content_type.lower()
    if content_type not in types:
        raise BadBatch(415, f"Content-Type {content_type!r} is not accepted: send {send}")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise BadBatch(415, f"Content-Encoding {encoding!r} is not accepted: use gzip or none")
    gzipped = encoding != "identity"
    limit = (
        config.max_request_bytes
        if gzipped
        else min(config.max_request_bytes, config.max_body_bytes)
    )
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, "as sent" if gzipped else None)
    _check_room(spool, config)

    body = await _read_body(request, limit, config.body_timeout, gzipped)
    limits = BodyLimits(config.max_body_bytes, config.max_record_bytes)
    started = time.perf_counter()
    try:
        scope = config.scopes.get(label)
        checked: _Checked = await state["pool"].check(
            body, content_type, gzipped, limits, scope, label, check
        )
    finally:
        metrics.check_seconds.observe(time.perf_counter() - started)
    return label, content_type, checked


async def _stored(
    state: dict[str, Any], label: str, lines: list[bytes], records: int, what: str
) -> tuple[str, int]:
    """Write checked lines to the spool once there is room: (file name, first line number)
    once durable, or BadBatch (503), counting the `records` as rejected. `what`: the
    answer's name for them ("the batch", "the spans")."""
    config: ServeConfig = state["config"]
    metrics: Metrics = state["metrics"]
    spool: Spool = state["spool"]
    try:
        _check_room(spool, config)
        return await spool.submit(label, lines)
    except BadBatch:
        metrics.rejected.inc(records)
        raise
    except OSError as error:
        metrics.rejected.inc(records)
        raise BadBatch(
            503,
            f"{what} could not be stored ({error.strerror or error}); retry later",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None


async def _ingest(request: web.Request, state: dict[str, Any]) -> web.Response:
    """One POST: headers checked and the body read on the loop, its content in a worker."""
    metrics: Metrics = state["metrics"]
    label, _, checked = await _received(
        request,
        state,
        JSON_TYPES + NDJSON_TYPES,
        check_body,
        'application/json ({"events": [...]} or [...]) or application/x-ndjson',
    )
    if checked.refused == checked.records:  # nothing to write: no records, or all refused
        metrics.refused.inc(checked.refused)
        return web.json_response(
            {
                "records": checked.records,
                "accepted": 0,
                "quarantined": [],
                "quarantined_count": 0,
                "refused": checked.refusals,
                "refused_count": checked.refused,
                "file": None,
            }
        )
    name, first_line = await _stored(state, label, checked.lines, checked.records, "the batch")
    accepted = checked.records - checked.quarantined - checked.refused
    metrics.accepted.inc(accepted)
    metrics.quarantined.inc(checked.quarantined)
    metrics.refused.inc(checked.refused)
    return web.json_response(
        {
            "records": checked.records,
            "accepted": accepted,
            "quarantined": checked.problems,
            "quarantined_count": checked.quarantined,
            "refused": checked.refusals,
            "refused_count": checked.refused,
            "file": name,
            "first_line": first_line,
        }
    )


async def _ingest_traces(request: web.Request, state: dict[str, Any]) -> web.Response:
    """One OTLP/HTTP export (`POST /v1/traces`): checked like `_ingest`, answered in OTLP.

    The same keys, limits, back-pressure and durability as `/v1/events`: the answer is sent
    once the file holding the request's spans is durable.
    """
    metrics: Metrics = state["metrics"]
    label, content_type, checked = await _received(
        request,
        state,
        TRACE_TYPES,
        check_traces,
        "application/x-protobuf or application/json (OTLP/HTTP)",
        " (OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<key>)",
    )
    if checked.lines:
        await _stored(state, label, checked.lines, checked.spans, "the spans")
    if checked.refused:
        metrics.refused.inc(checked.spans)
    else:
        metrics.accepted.inc(checked.spans - checked.rejected)
        metrics.quarantined.inc(checked.rejected)
    body, answer_type = export_response(checked.rejected, checked.message, content_type == PROTOBUF)
    return web.Response(body=body, headers={"Content-Type": answer_type})


async def _answer_and_close(request: web.Request, response: web.Response) -> None:
    """Send a refusal and close the connection, without reading the rest of the body.

    aiohttp would otherwise go on reading (and discarding) an unread body for up to 10 s
    after the answer: a client streaming a body over the limit would still be read.
    """
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()


def _check_room(spool: Spool, config: ServeConfig) -> None:
    """Backpressure: 503 with Retry-After when the spool or the disk is too full."""
    if spool.bytes + spool.queued_bytes >= config.max_spool_bytes:
        reason = (
            f"the landing folder holds {spool.bytes} bytes not yet loaded and"
            f" {spool.queued_bytes} more are being written (limit {config.max_spool_bytes});"
            " retry later"
        )
    else:
        stat = os.statvfs(config.landing)
        if stat.f_bavail * stat.f_frsize >= config.min_free_bytes:
            return
        reason = f"the disk has less than {config.min_free_bytes} bytes free; retry later"
    raise BadBatch(503, reason, {"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _read_body(request: web.Request, limit: int, timeout: float, gzipped: bool) -> bytes:
    """The body as sent, at most `limit` bytes, within `timeout` seconds (413, 408).

    Only bytes are gathered here; decoding gzip and everything after it happens in a worker
    (`check_body`), so the event loop never waits on what a body contains.
    """
    chunks: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, "as sent" if gzipped else None)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise BadBatch(408, f"the body did not arrive within {timeout:g} s") from None
    return b"".join(chunks)


# --- running -----------------------------------------------------------------------------


async def _serve(config: ServeConfig, ready: Any = None) -> None:
    app = create_app(config)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=config.shutdown_timeout,
        keepalive_timeout=config.body_timeout,
        auto_decompress=False,  # gzip is decoded in _read_body, with a limit
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready is not None:
        ready(runner)
    await stop.wait()
    # Stop listening, let in-flight requests finish (their batches are written), then exit.
    await runner.cleanup()


def run(config: ServeConfig, ready: Any = None) -> None:
    """Serve until SIGTERM or SIGINT; in-flight requests finish before it returns."""
    asyncio.run(_serve(config, ready))
