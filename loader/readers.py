"""Batch files as collectors write them, read one record at a time in bounded memory.

Formats, recognised from the content rather than the file name:
- NDJSON: one JSON record per line (blank lines are not records);
- an events document `{"events": [...]}`: the body seed 000's `EventCollector` POSTs;
- a JSON array `[...]`;
each optionally gzip-compressed (recognised by the gzip magic bytes).

Every record comes out as a `Record`: either a decoded JSON value, or the reason it could
not be read (invalid UTF-8, invalid JSON, over the size limit, file truncated). Nothing is
skipped silently, and memory is bounded by the size limit, never by the file size.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

DEFAULT_MAX_RECORD_BYTES = 1 << 20
"""Records larger than this (1 MiB) are quarantined; `--max-record-bytes` changes it."""

QUARANTINE_PREFIX_BYTES = 1 << 16
"""How much of an oversized or unsplittable record the quarantine keeps (64 KiB)."""

_CHUNK = 1 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_EVENTS_DOCUMENT = re.compile(rb'\{\s*"events"\s*:')
_DECODER = json.JSONDecoder()


class Record(NamedTuple):
    """One record of a batch file, as read."""

    position: int  # 1-based: the line number in NDJSON, the element number in a document
    raw: str  # the text as read; invalid UTF-8 bytes appear as \xNN escapes
    size: int  # bytes in the file (after decompression)
    value: Any  # the decoded JSON value, or None when `error` is set
    error: str | None


def _shown(data: bytes) -> str:
    """Bytes as storable text: invalid UTF-8 as \\xNN escapes, NUL as \\x00."""
    return data.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _decode_line(position: int, data: bytes, last_line: bool) -> Record:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        reason = f"invalid UTF-8 at byte {error.start + 1} of the record"
        return Record(position, _shown(data), len(data), None, reason)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        reason = f"invalid JSON: {error.msg} at column {error.colno}"
        if last_line:
            reason += " (the last line has no newline: was the file truncated?)"
        return Record(position, text.replace("\x00", "\\x00"), len(data), None, reason)
    except RecursionError:
        return Record(position, text, len(data), None, "invalid JSON: nested too deeply")
    return Record(position, text, len(data), value, None)


def _oversized(position: int, prefix: bytes, size: int, limit: int) -> Record:
    reason = (
        f"record is {size} bytes, over the {limit}-byte limit (--max-record-bytes);"
        f" raw_text keeps its first {min(size, QUARANTINE_PREFIX_BYTES)} bytes"
    )
    return Record(position, _shown(prefix[:QUARANTINE_PREFIX_BYTES]), size, None, reason)


class _HashingReader(io.RawIOBase):
    """Counts and hashes the file's bytes as they are read, so one pass does both."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self.sha256.update(memoryview(buffer)[:count])
            self.bytes += count
        return count

    def drain(self) -> None:
        """Read to the end, so the checksum covers the whole file even after an early stop."""
        while chunk := self._raw.read(_CHUNK):
            self.sha256.update(chunk)
            self.bytes += len(chunk)


def file_checksum(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size in bytes of a file as it is on disk."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class BatchFile:
    """An open batch file: `records()` yields its records; `sha256` and `bytes` after that.

    Use as a context manager. The checksum is computed over the bytes actually read, so a
    loader can tell whether the file changed since it was first checksummed.
    """

    def __init__(self, path: Path, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.path = path
        self.max_record_bytes = max_record_bytes
        self._hashing = _HashingReader(open(path, "rb", buffering=0))  # noqa: SIM115
        self._buffered = io.BufferedReader(self._hashing, _CHUNK)
        self.compressed = self._buffered.peek(2)[:2] == b"\x1f\x8b"
        self._stream: Any = (
            gzip.GzipFile(fileobj=self._buffered, mode="rb") if self.compressed else self._buffered
        )
        self.format = "empty"
        self._position = 0

    def __enter__(self) -> BatchFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()
        self._buffered.close()

    @property
    def sha256(self) -> str:
        return self._hashing.sha256.hexdigest()

    @property
    def bytes(self) -> int:
        return self._hashing.bytes

    def records(self) -> Iterator[Record]:
        """Every record of the file in order; problems come out as records with an error."""
        try:
            self._detect_format()
            if self.format == "empty":
                self._position += 1
                yield Record(self._position, "", 0, None, "file is empty: it holds no records")
            elif self.format == "ndjson":
                yield from self._ndjson_records()
            else:
                yield from self._document_records()
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            self._position += 1
            reason = (
                f"gzip data is truncated or corrupt after record {self._position - 1}"
                f" ({error}); the records before it are read"
            )
            yield Record(self._position, "", 0, None, reason)
        self._hashing.drain()

    def _detect_format(self) -> None:
        head = self._stream.peek(_CHUNK)
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not stripped:
            # Nothing but whitespace in the first chunk: NDJSON reading skips blank lines.
            self.format = "empty" if not head else "ndjson"
        elif stripped.startswith(b"["):
            self.format = "json-array"
        elif _EVENTS_DOCUMENT.match(stripped):
            self.format = "events-document"
        else:
            self.format = "ndjson"

    # --- NDJSON --------------------------------------------------------------------------

    def _ndjson_records(self) -> Iterator[Record]:
        limit = self.max_record_bytes
        stream = self._stream
        found_any = False
        while line := stream.readline(limit + 1):
            self._position += 1
            if len(line) > limit and not line.endswith(b"\n"):
                size, prefix = len(line), line[:QUARANTINE_PREFIX_BYTES]
                while not line.endswith(b"\n") and (line := stream.readline(_CHUNK)):
                    size += len(line)
                    if len(prefix) < QUARANTINE_PREFIX_BYTES:
                        prefix += line[: QUARANTINE_PREFIX_BYTES - len(prefix)]
                size -= len(line) - len(line.rstrip(b"\r\n"))  # the line ending is not data
                yield _oversized(self._position, prefix.rstrip(b"\r\n"), size, limit)
                found_any = True
                continue
            if self._position == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            data = line.strip(b" \t\r\n")
            if data:
                found_any = True
                yield _decode_line(self._position, data, not line.endswith(b"\n"))
        if not found_any:
            self._position += 1
            yield Record(self._position, "", 0, None, "file is empty: it holds only blank lines")

    # --- JSON documents: {"events": [...]} and [...] -------------------------------------

    def _document_records(self) -> Iterator[Record]:
        scanner = _DocumentScanner(self._stream, self.max_record_bytes)
        if scanner.open_array(self.format == "events-document"):
            while (record := scanner.next_record(self._position + 1)) is not None:
                self._position += 1
                yield record
                if scanner.exhausted or scanner.problem:
                    break
            else:
                scanner.close_document(self.format == "events-document")
        if scanner.problem and not scanner.exhausted:
            self._position += 1
            yield scanner.rest(self._position, scanner.problem)


class _DocumentScanner:
    """Splits a JSON array into its elements with the C JSON decoder, a chunk at a time."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._text = io.TextIOWrapper(stream, "utf-8", errors="surrogateescape", newline="")
        self._limit = limit
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self.problem = ""  # why the rest of the document cannot be split into records
        self.exhausted = False  # the rest of the file was taken as one record

    def _fill(self) -> bool:
        """Read one more chunk; False at the end of the file."""
        if self._eof:
            return False
        chunk = self._text.read(_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def _peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), not consumed."""
        while True:
            self._pos = _WHITESPACE.match(self._buffer, self._pos).end()
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill():
                return ""

    def open_array(self, events_document: bool) -> bool:
        self._fill()
        if self._buffer.startswith("\ufeff"):
            self._pos = 1
        if events_document:
            self._peek()
            self._pos += 1  # '{'
            self._peek()
            self._pos += len('"events"')
            self._peek()
            self._pos += 1  # ':'
        if self._peek() != "[":
            self.problem = 'the "events" value is not a JSON array'
            return False
        self._pos += 1
        return True

    def next_record(self, position: int) -> Record | None:
        """The next element, or None after the closing bracket."""
        char = self._peek()
        if char == "]":
            self._pos += 1
            return None
        if char == "":
            return self.rest(position, "the file ends before the closing ']' (truncated file?)")
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                if self._chars_ahead() <= self._limit and self._fill():
                    continue
                where = error.pos - self._pos + 1
                if self._eof:
                    reason = f"invalid JSON: {error.msg} at character {where} of the record"
                    reason += "; the file ends inside this record (truncated file?)"
                else:
                    reason = (
                        f"invalid JSON: {error.msg} at character {where} of the record;"
                        " the rest of the document cannot be split into records"
                    )
                return self.rest(position, reason)
            except RecursionError:
                return self.rest(position, "invalid JSON: nested too deeply")
            if end == len(self._buffer) and self._fill():
                continue  # a number or literal may go on in the next chunk
            break
        raw = self._buffer[self._pos : end]
        self._pos = end
        record = self._element(position, raw, value)
        separator = self._peek()
        if separator == ",":
            self._pos += 1
        elif separator != "]":
            found = repr(separator) if separator else "the end of the file"
            self.problem = (
                f"expected ',' or ']' after record {position}, found {found};"
                " the rest of the document cannot be split into records"
            )
        return record

    def _element(self, position: int, raw: str, value: Any) -> Record:
        data = raw.encode("utf-8", "surrogateescape")
        if len(data) > self._limit:
            return _oversized(position, data, len(data), self._limit)
        if not raw.isascii():
            try:
                raw.encode("utf-8")
            except UnicodeEncodeError as error:
                reason = f"invalid UTF-8 near character {error.start + 1} of the record"
                return Record(position, _shown(data), len(data), None, reason)
        return Record(position, raw, len(data), value, None)

    def _chars_ahead(self) -> int:
        return len(self._buffer) - self._pos

    def close_document(self, events_document: bool) -> None:
        """After the array: note in `problem` anything but a proper end of the document."""
        if events_document:
            if self._peek() != "}":
                self.problem = "the events document does not end with '}' after the array"
                return
            self._pos += 1
        if self._peek() != "":
            self.problem = "unexpected content after the end of the document"

    def rest(self, position: int, reason: str) -> Record:
        """Everything from here to the end of the file as one quarantined record."""
        self.exhausted = True
        prefix = self._buffer[self._pos : self._pos + QUARANTINE_PREFIX_BYTES]
        size = len(self._buffer[self._pos :].encode("utf-8", "surrogateescape"))
        self._pos = len(self._buffer)
        while self._fill():
            size += len(self._buffer.encode("utf-8", "surrogateescape"))
            self._pos = len(self._buffer)
        data = prefix.encode("utf-8", "surrogateescape")[:QUARANTINE_PREFIX_BYTES]
        return Record(position, _shown(data), size, None, reason)
