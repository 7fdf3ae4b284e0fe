"""Batch files as collectors write them, read one record at a time in bounded memory.

Formats, recognised from the content rather than the file name:
- NDJSON: one JSON record per line (blank lines are not records), lines ending in LF or
  CRLF, or in a lone CR when the file's first MiB holds a CR and no LF;
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
import math
import os
import re
import stat
import zlib
from collections.abc import Iterator
from functools import partial
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from loader.limits import MAX_DEPTH, MAX_INTEGER_DIGITS, QUARANTINE_PREFIX_BYTES
from loader.limits import MAX_RECORD_BYTES as DEFAULT_MAX_RECORD_BYTES

_CHUNK = 1 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NOT_BLANK = re.compile(rb"[^ \t\r\n]")
# While skipping an element that cannot be decoded: what matters outside and inside strings.
_STRUCTURE = re.compile(r'["\[\]{},]')
_STRING_END = re.compile(r'["\\\n]')
_EVENTS_DOCUMENT = re.compile(rb'\{\s*"events"\s*:')
# A block of lines at once (`_plain_lines`): its brackets and newlines alone, in which a
# line nested deeper than MAX_DEPTH needs more than MAX_DEPTH brackets in a row.
_NOT_BRACKET_OR_NEWLINE = bytes(range(256)).translate(None, b"[{\n")
_MANY_BRACKETS = re.compile(rb"[\[{]{%d}" % (MAX_DEPTH + 1))
_EDGE_BLANKS = frozenset(" \t\r")
_FIRST, _LAST = itemgetter(0), itemgetter(-1)
_NON_FINITE = (
    "contains NaN or Infinity (or a number too large for a float, such as 1e400),"
    " which JSON and jsonb do not allow"
)


class _NonFinite(Exception):
    """A number JSON and jsonb cannot hold: NaN, Infinity, or a float that overflows."""


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NonFinite
    return value


def _refuse_constant(text: str) -> float:
    raise _NonFinite


# Every number is checked as it is decoded: jsonb cannot hold what overflows a float.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_refuse_constant)
_TOO_DEEP = f"invalid JSON: nested too deeply (the limit is {MAX_DEPTH} levels)"
_TOO_LONG_NUMBER = f"invalid JSON: a number has more than {MAX_INTEGER_DIGITS} digits"


class Record(NamedTuple):
    """One record of a batch file, as read."""

    position: int  # 1-based: the line number in NDJSON, the element number in a document
    raw: str  # the text as read; invalid UTF-8 bytes appear as \xNN escapes
    size: int  # bytes in the file (after decompression)
    value: Any  # the decoded JSON value, or None when `error` is set
    error: str | None


# `Record._make` without its Python frame (and its length check: the fields come in fives)
_new_record = partial(tuple.__new__, Record)


def _shown(data: bytes) -> str:
    """Bytes as storable text: invalid UTF-8 as \\xNN escapes, NUL as \\x00."""
    return data.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


class Undecoded:
    """`Record.value` of an NDJSON line not decoded yet (`BatchFile.records(decode=False)`).

    The loader validates such a line from its text in one pydantic-core call; `decoded`
    gives the record as `records()` would have, for the lines that call refuses.
    """

    def __init__(self, last_line: bool) -> None:
        self.last_line = last_line


UNDECODED, UNDECODED_LAST_LINE = Undecoded(False), Undecoded(True)


def decoded(record: Record) -> Record:
    """The record with its JSON decoded (or the reason it cannot be), as `records()` gives it."""
    if not isinstance(record.value, Undecoded):
        return record
    return _decode_text(record.position, record.raw, record.size, record.value.last_line)


def _whole_line(position: int, data: bytes, limit: int, decode: bool) -> Record:
    """The record of a line followed by a newline (so not the last), the usual case first."""
    if len(data) > limit:
        return _oversized(position, data, len(data), limit)
    if not decode:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _decode_line(position, data, False, decode)
        if "\\u" not in text and text.count("[") + text.count("{") <= MAX_DEPTH:
            return Record(position, text, len(data), UNDECODED, None)
        return _decode_text(position, text, len(data), False)
    return _decode_line(position, data, False, decode)


def line_record(position: int, line: bytes, limit: int) -> Record:
    """One NDJSON line as the reader reads it from a batch file, not the file's last (`line`:
    without its newline, stripped of blanks at its ends). The endpoint reads the lines it
    writes with it, so its answer is the loader's verdict on the very same record."""
    return _whole_line(position, line, limit, False)


def _plain_lines(block: bytes, limit: int) -> tuple[list[str], list[int]] | None:
    """The lines of a block of whole lines and their sizes in bytes, when no line needs a
    closer look: each is then an undecoded record. None otherwise: read it line by line.

    A line needs one (`_whole_line`) when it is blank or has blanks at either end, is over
    the limit, is not UTF-8, holds a \\u escape or has more than MAX_DEPTH brackets. Each
    is tested on the whole block at C speed, so the usual block costs a few passes over
    its bytes instead of a few Python operations per line.
    """
    if b"\\" in block and b"\\u" in block:  # (a one-byte search first: far faster)
        return None
    if _MANY_BRACKETS.search(block.translate(None, _NOT_BRACKET_OR_NEWLINE)):
        return None
    try:
        text = block.decode("utf-8")  # valid as a whole exactly when each line is
    except UnicodeDecodeError:
        return None
    lines = text.split("\n")
    try:
        if not (
            _EDGE_BLANKS.isdisjoint(map(_FIRST, lines))
            and _EDGE_BLANKS.isdisjoint(map(_LAST, lines))
        ):
            return None
    except IndexError:  # a blank line
        return None
    sizes = list(map(len, lines if block.isascii() else block.split(b"\n")))
    if len(block) > limit and max(sizes) > limit:
        return None
    return lines, sizes


def _decode_line(position: int, data: bytes, last_line: bool, decode: bool = True) -> Record:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        reason = f"invalid UTF-8 at byte {error.start + 1} of the record"
        return Record(position, _shown(data), len(data), None, reason)
    if not decode and "\\u" not in text and not _may_be_too_deep(text):
        # Lines with \u escapes (NUL, lone surrogates) or deep nesting are decoded here:
        # only the standard decoder's reading of them is the contract's.
        return Record(
            position, text, len(data), UNDECODED_LAST_LINE if last_line else UNDECODED, None
        )
    return _decode_text(position, text, len(data), last_line)


def _decode_text(position: int, text: str, size: int, last_line: bool) -> Record:
    try:
        value = _DECODER.decode(text)
    except _NonFinite:
        return Record(position, text.replace("\x00", "\\x00"), size, None, _NON_FINITE)
    except json.JSONDecodeError as error:
        reason = f"invalid JSON: {error.msg} at column {error.colno}"
        if last_line:
            reason += " (the last line has no newline: was the file truncated?)"
        return Record(position, text.replace("\x00", "\\x00"), size, None, reason)
    except RecursionError:
        return Record(position, text, size, None, _TOO_DEEP)
    except ValueError:  # an integer of more than MAX_INTEGER_DIGITS digits
        return Record(position, text, size, None, _TOO_LONG_NUMBER)
    if _may_be_too_deep(text) and _too_deep(text):
        return Record(position, text, size, None, _TOO_DEEP)
    return Record(position, text, size, value, None)


def _may_be_too_deep(raw: str) -> bool:
    """Cheap test first: text with few brackets cannot nest deeply."""
    return raw.count("[") + raw.count("{") > MAX_DEPTH


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # (unrolled: 10 times faster)


def _too_deep(text: str) -> bool:
    """Whether a valid JSON text's brackets nest deeper than MAX_DEPTH, strings left out:
    exactly whether its value's `nesting_depth` is, read at C speed (a line of OTLP spans
    has hundreds of brackets, a few levels deep, and walking its decoded value took a
    quarter of its load).

    Without a backslash no quote is escaped, so every other piece between quotes is outside
    the strings: one split, five times faster than the regular expression over a line of
    spans (its thousand strings each a match). Each pass of `replace("()", "")` over the
    brackets removes the innermost pairs, one level: the depth is the number of passes that
    leave something, and no more than MAX_DEPTH + 1 passes are made."""
    outside = _JSON_STRING.sub("", text) if "\\" in text else "".join(text.split('"')[::2])
    brackets = outside.translate(_AS_PARENTHESES)
    for _ in range(MAX_DEPTH):
        if not brackets:
            return False
        brackets = brackets.replace("()", "")
    return bool(brackets)


# Outside its strings a valid JSON text is ASCII: its brackets as parentheses, the rest gone.
_AS_PARENTHESES: dict[int, str | None] = {code: None for code in range(128)}
_AS_PARENTHESES.update({ord("["): "(", ord("{"): "(", ord("]"): ")", ord("}"): ")"})


def nesting_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a decoded JSON value, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def _oversized(position: int, prefix: bytes, size: int, limit: int) -> Record:
    reason = (
        f"record is {size} bytes, over the {limit}-byte limit (--max-record-bytes);"
        f" raw_text keeps its first {min(size, QUARANTINE_PREFIX_BYTES)} bytes"
    )
    return Record(position, _shown(prefix[:QUARANTINE_PREFIX_BYTES]), size, None, reason)


def _skip_blank(buffer: bytes, start: int) -> int:
    """Where the next non-blank byte is (len(buffer) if none), at memcpy speed.

    Windows grow fourfold, so a long run of blank lines costs time linear in its length and
    a short one (the usual case: none at all) costs one small slice.
    """
    if start < len(buffer) and buffer[start] > 32:
        return start  # the usual case: the next line starts right here
    window = 64
    while start < len(buffer):
        end = min(start + window, len(buffer))
        piece = buffer[start:end]
        rest = piece.lstrip()  # no argument: C-fast, but strips \v and \f too
        if b"\x0b" in piece or b"\x0c" in piece:
            rest = piece.lstrip(b" \t\r\n")  # not JSON whitespace: they are not blank
        if rest:
            return end - len(rest)
        start, window = end, window * 4
    return len(buffer)


def _skip_long_line(line: int, head: bytes, read: Any, limit: int) -> tuple[Record, bytes | None]:
    """An over-limit line: read on to its newline, keeping only the quarantine prefix.

    Returns the record and what follows the newline (None at the end of the file).
    """
    size, prefix, rest = len(head), head[:QUARANTINE_PREFIX_BYTES], None
    while chunk := read(_CHUNK):
        end = chunk.find(b"\n")
        taken = chunk if end < 0 else chunk[:end]
        size += len(taken)
        if len(prefix) < QUARANTINE_PREFIX_BYTES:
            prefix += taken[: QUARANTINE_PREFIX_BYTES - len(prefix)]
        if end >= 0:
            rest = chunk[end + 1 :]
            break
    return _oversized(line, prefix.rstrip(b"\r"), size, limit), rest


_CR_TO_LF = bytes.maketrans(b"\r", b"\n")


def _translated(read: Any) -> Any:
    """`read` with every CR returned as LF (a file whose lines end in a lone CR)."""
    return lambda size: read(size).translate(_CR_TO_LF)


class _HashingReader(io.RawIOBase):
    """Counts and hashes the file's bytes as they are read, so one pass does both."""

    def __init__(self, raw: io.FileIO | io.BytesIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
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


class NotRegularFile(OSError):
    """The path is a symlink, a folder, a FIFO, a socket or a device: it is never read."""


def open_regular(path: Path) -> io.FileIO:
    """Open a regular file for reading, never following a symlink and never blocking.

    Symlinks are not followed (a link to /proc/self/environ must not be read); FIFOs,
    sockets and devices are refused before and after opening (`O_NONBLOCK`, so a FIFO
    cannot block the load while it holds the lock).
    """
    described = {
        stat.S_IFLNK: "a symlink (symlinks are not followed)",
        stat.S_IFDIR: "a folder",
        stat.S_IFIFO: "a FIFO",
        stat.S_IFSOCK: "a socket",
        stat.S_IFCHR: "a device",
        stat.S_IFBLK: "a device",
    }
    mode = os.lstat(path).st_mode
    if stat.S_ISDIR(mode):
        os.listdir(path)  # an unreadable folder raises here, with the reason
    if not stat.S_ISREG(mode):
        kind = described.get(stat.S_IFMT(mode), "not a regular file")
        raise NotRegularFile(f"not a regular file: {kind}; only regular files are loaded")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NotRegularFile("not a regular file (it was replaced while opening)")
    return open(descriptor, "rb", buffering=0)


class _PositionalReader(io.RawIOBase):
    """Reads a file by `pread` from its start without moving the shared file offset."""

    def __init__(self, raw: Any) -> None:
        self._descriptor = raw.fileno()
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = os.pread(self._descriptor, len(buffer), self._offset)
        memoryview(buffer)[: len(data)] = data
        self._offset += len(data)
        return len(data)


def read_whole(path: Path, expected: os.stat_result) -> bytes | None:
    """The bytes of a regular file whose size and modification time are still `expected`'s.

    None when the file changed since `expected` was taken (a collector still writing it):
    the bytes read might be a mix of before and after.
    """
    with open_regular(path) as handle:
        data = handle.read()
        now = os.fstat(handle.fileno())
    if (now.st_size, now.st_mtime_ns) != (expected.st_size, expected.st_mtime_ns):
        return None
    if len(data) != now.st_size:
        return None
    return data


def file_checksum(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size in bytes of a file as it is on disk."""
    digest = hashlib.sha256()
    size = 0
    with open_regular(path) as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class BatchFile:
    """An open batch file: `records()` yields its records; `sha256` and `bytes` after that.

    Use as a context manager. The checksum is computed over the bytes actually read, so a
    loader can tell whether the file changed since it was first checksummed.
    """

    def __init__(
        self,
        path: Path,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        data: bytes | None = None,
    ) -> None:
        """With `data`, the file's bytes already read (`read_whole`): nothing is read again,
        and `sha256` and `bytes` are those of `data`."""
        self.path = path
        self.max_record_bytes = max_record_bytes
        self._data = data
        self._raw: Any = open_regular(path) if data is None else io.BytesIO(data)
        self._hashing = _HashingReader(self._raw)
        self._buffered = io.BufferedReader(self._hashing if data is None else self._raw, _CHUNK)
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
        self._raw.close()

    @property
    def sha256(self) -> str:
        if self._data is not None:
            return hashlib.sha256(self._data).hexdigest()
        return self._hashing.sha256.hexdigest()

    @property
    def bytes(self) -> int:
        return self._hashing.bytes if self._data is None else len(self._data)

    def records(self, decode: bool = True) -> Iterator[Record]:
        """Every record of the file in order; problems come out as records with an error.

        With `decode` off, NDJSON lines come out undecoded (`Undecoded`, see `decoded`).
        """
        try:
            self._detect_format()
            if self.format == "empty":
                self._position += 1
                yield Record(self._position, "", 0, None, "file is empty: it holds no records")
            elif self.format == "ndjson":
                yield from self._ndjson_records(decode)
            else:
                yield from self._document_records()
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            self._position += 1
            reason = (
                f"gzip data is truncated or corrupt after record {self._position - 1}"
                f" ({error}); the records before it are read"
            )
            yield Record(self._position, "", 0, None, reason)
        if self._data is None:
            self._hashing.drain()

    def _detect_format(self) -> None:
        """NDJSON unless the file starts a JSON document that spans more than its first line.

        A file whose first line is a complete JSON value followed by more lines is NDJSON,
        even when that line is an array (`["not an event"]`): one misleading line cannot turn
        the rest of the file into one document. A document on one line alone, or one spread
        over several lines, is read element by element.
        """
        head = self._stream.peek(_CHUNK)
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not stripped:
            # Nothing but whitespace in the first chunk: NDJSON reading skips blank lines.
            self.format = "empty" if not head else "ndjson"
        elif stripped.startswith(b"[") and not self._first_line_is_a_record():
            self.format = "json-array"
        elif _EVENTS_DOCUMENT.match(stripped) and not self._first_line_is_a_record():
            self.format = "events-document"
        else:
            self.format = "ndjson"

    def _first_line_is_a_record(self) -> bool:
        """Is the first non-blank line a whole JSON value, with more non-blank lines after it?

        Read through a second, positional handle, so the main stream (and its checksum) is
        untouched; at most the first line plus one chunk is read.
        """
        limit = self.max_record_bytes
        positional = _PositionalReader(self._raw) if self._data is None else io.BytesIO(self._data)
        raw: Any = io.BufferedReader(positional, _CHUNK)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if self.compressed else raw
        try:
            line = b""
            while not line:
                line = stream.readline(limit + 1)
                if not line:
                    return False
                if len(line) > limit and not line.endswith(b"\n"):
                    return False  # longer than any record: a document on one line
                line = line.lstrip(b"\xef\xbb\xbf").strip(b" \t\r\n")
            try:
                json.loads(line)
            except (ValueError, RecursionError):
                return False  # the document goes on past its first line
            rest = stream.read(_CHUNK)
            return _NOT_BLANK.search(rest) is not None
        except (EOFError, OSError, zlib.error):
            return False
        finally:
            stream.close()

    # --- NDJSON --------------------------------------------------------------------------

    def _ndjson_records(self, decode: bool = True) -> Iterator[Record]:
        """Lines split a chunk at a time; runs of blank lines are skipped at C speed."""
        limit = self.max_record_bytes
        read = self._stream.read1
        buffer = read(_CHUNK)
        if b"\r" in buffer and b"\n" not in buffer:
            # Lone-CR line endings (classic Mac OS): every CR ends a line. A raw CR cannot
            # be inside a JSON string, so this changes no record's text.
            buffer, read = buffer.translate(_CR_TO_LF), _translated(read)
        start = 3 if buffer.startswith(b"\xef\xbb\xbf") else 0
        line = 1  # the line number at `start`
        found_any = False
        while True:
            content = _skip_blank(buffer, start)
            if content == len(buffer):
                line += buffer.count(b"\n", start)
                buffer, start = read(_CHUNK), 0
                if not buffer:
                    break
                continue
            line += buffer.count(b"\n", start, content)
            start = content
            found_any = True
            # The buffer's whole lines at once, split at C speed; each is stripped of the
            # blanks the line-by-line reading below skips (a blank line is no record).
            through = buffer.rfind(b"\n", start) + 1
            if through > start:
                plain = None if decode else _plain_lines(buffer[start : through - 1], limit)
                if plain is not None:
                    texts, sizes = plain
                    numbers = range(line, line + len(texts))
                    self._position = numbers[-1]
                    # Made as they are taken, so no record outlives its turn (the garbage
                    # collector would otherwise keep walking the block's thousands).
                    yield from map(
                        _new_record, zip(numbers, texts, sizes, repeat(UNDECODED), repeat(None))
                    )
                    line, start = numbers.stop, through
                    continue
                for data in buffer[start : through - 1].split(b"\n"):
                    if not data or data[0] <= 32 or data[-1] <= 32:
                        data = data.strip(b" \t\r")
                        if not data:
                            line += 1
                            continue
                    self._position = line
                    yield _whole_line(line, data, limit, decode)
                    line += 1
                start = through
                continue
            end = buffer.find(b"\n", start)
            while end < 0 and len(buffer) - start <= limit and (chunk := read(_CHUNK)):
                searched = len(buffer) - start
                buffer, start = buffer[start:] + chunk, 0
                end = buffer.find(b"\n", searched)
            self._position = line
            if end < 0 and len(buffer) - start > limit:
                record, rest = _skip_long_line(line, buffer[start:], read, limit)
                yield record
                if rest is None:
                    break
                buffer, start, line = rest, 0, line + 1
                continue
            last = end < 0
            data = (buffer[start:] if last else buffer[start:end]).rstrip(b" \t\r")
            if len(data) > limit:
                yield _oversized(line, data, len(data), limit)
            else:
                yield _decode_line(line, data, last, decode)
            if last:
                break
            start, line = end + 1, line + 1
        if not found_any:
            self._position = line
            yield Record(line, "", 0, None, "file is empty: it holds only blank lines")

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


def _after_whitespace(text: str, pos: int) -> int:
    """The position of the first character at or after `pos` that is not JSON whitespace."""
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos  # (the pattern matches the empty string too)


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
            self._pos = _after_whitespace(self._buffer, self._pos)
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
        record: Record | None = None
        while record is None:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                if self._chars_ahead() <= self._limit and self._fill():
                    continue
                where = error.pos - self._pos + 1
                record = self._skip_element(
                    position, f"invalid JSON: {error.msg} at character {where} of the record"
                )
                break
            except RecursionError:
                record = self._skip_element(position, _TOO_DEEP)
                break
            except _NonFinite:
                record = self._skip_element(position, _NON_FINITE)
                break
            except ValueError:
                record = self._skip_element(position, _TOO_LONG_NUMBER)
                break
            if end == len(self._buffer) and self._fill():
                continue  # a number or literal may go on in the next chunk
            raw = self._buffer[self._pos : end]
            self._pos = end
            record = self._element(position, raw, value)
        if self.exhausted:
            return record
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

    def _skip_element(self, position: int, reason: str) -> Record:
        """Step over an element that cannot be decoded, so the elements after it are read.

        The element ends where its brackets balance (strings and escapes respected; a raw
        newline ends a broken string), or at the next ',' or ']' outside any bracket. Only
        the quarantine prefix is kept, so an element of any size costs bounded memory.
        """
        depth = deepest = size = 0
        in_string = escaped = False
        kept: list[str] = []
        kept_chars = 0
        start = i = self._pos
        end: int | None = None
        while end is None:
            if i >= len(self._buffer):
                taken = self._buffer[start:]
                size += len(taken.encode("utf-8", "surrogateescape"))
                if kept_chars < QUARANTINE_PREFIX_BYTES:
                    kept.append(taken[: QUARANTINE_PREFIX_BYTES - kept_chars])
                    kept_chars += len(kept[-1])
                self._pos = len(self._buffer)
                if not self._fill():
                    break
                start = i = 0
                continue
            if in_string:
                if escaped:  # the character after a backslash that ended the last chunk
                    escaped, i = False, i + 1
                    continue
                match = _STRING_END.search(self._buffer, i)
                if match is None:
                    i = len(self._buffer)
                elif match.group() == "\\":
                    i = match.end() + 1
                    if i > len(self._buffer):
                        escaped, i = True, len(self._buffer)
                else:
                    in_string, i = False, match.end()
                continue
            match = _STRUCTURE.search(self._buffer, i)
            if match is None:
                i = len(self._buffer)
                continue
            char, i = match.group(), match.end()
            if char == '"':
                in_string = True
            elif char in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif depth == 0:  # ',' or a closing bracket outside the element: it ended before
                end = match.start()
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    end = i
        if end is not None:
            taken = self._buffer[start:end]
            size += len(taken.encode("utf-8", "surrogateescape"))
            if kept_chars < QUARANTINE_PREFIX_BYTES:
                kept.append(taken[: QUARANTINE_PREFIX_BYTES - kept_chars])
            self._pos = end
        else:
            self.exhausted = True
            reason += "; the file ends inside this record (truncated file?)"
        data = "".join(kept).encode("utf-8", "surrogateescape")
        if size > self._limit:
            return _oversized(position, data, size, self._limit)
        if deepest > MAX_DEPTH:
            reason = _TOO_DEEP
        return Record(position, _shown(data[:QUARANTINE_PREFIX_BYTES]), size, None, reason)

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
        if _may_be_too_deep(raw) and nesting_depth(value) > MAX_DEPTH:
            return Record(position, raw, len(data), None, _TOO_DEEP)
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
