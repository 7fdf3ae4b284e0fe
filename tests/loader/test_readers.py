"""Reading batch files: every format, in bounded memory, with problems as records."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest

from loader.ingest.load import batch_files
from loader.ingest.readers import (
    MAX_DEPTH,
    BatchFile,
    Undecoded,
    decoded,
    file_checksum,
    line_record,
    nesting_depth,
)
from tests.factories import (
    agent_event,
    marketplace_event,
    write_array,
    write_events_document,
    write_ndjson,
)

EVENTS = [agent_event(event_id=f"e{i}") for i in range(3)] + [marketplace_event(id="m1")]
WRITERS = {
    "ndjson": write_ndjson,
    "events-document": write_events_document,
    "json-array": write_array,
}


def read(path, **options):
    with BatchFile(path, **options) as batch:
        records = list(batch.records())
    return batch, records


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("file_format", WRITERS)
def test_every_format_yields_every_record_in_order(tmp_path, file_format, compress):
    path = WRITERS[file_format](tmp_path / "batch", EVENTS, compress)
    batch, records = read(path)
    assert batch.format == file_format
    assert batch.compressed is compress
    assert [record.value for record in records] == EVENTS
    assert [record.position for record in records] == [1, 2, 3, 4]
    assert all(record.error is None for record in records)
    assert batch.sha256 == file_checksum(path)[0]


def test_ndjson_positions_are_line_numbers_and_blank_lines_are_not_records(tmp_path):
    path = tmp_path / "b.ndjson"
    path.write_text(json.dumps(EVENTS[0]) + "\n\n  \n" + json.dumps(EVENTS[1]) + "\r\n")
    _, records = read(path)
    assert [(r.position, r.value["event_id"]) for r in records] == [(1, "e0"), (4, "e1")]


def test_raw_text_of_a_document_element_is_the_exact_slice(tmp_path):
    path = tmp_path / "doc.json"
    path.write_text('{"events": [ {"a": 1} ,\n  {"b": [2, 3]}]}')
    _, records = read(path)
    assert [r.raw for r in records] == ['{"a": 1}', '{"b": [2, 3]}']


@pytest.mark.parametrize(
    ("content", "reasons"),
    [
        (b"", ["file is empty"]),
        (b"\n\n", ["file is empty: it holds only blank lines"]),
        (b'{"a": 1}\n{"b": ', [None, "the last line has no newline: was the file truncated?"]),
        (b'[{"a": 1}, {"b": "x', [None, "the file ends inside this record (truncated file?)"]),
        (b'[{"a": 1}, ', [None, "the file ends before the closing ']' (truncated file?)"]),
        (b'{"events": [{"a": 1}] ', [None, "does not end with '}' after the array"]),
        (b'{"events": {"a": 1}}', ['the "events" value is not a JSON array']),
        (b'[{"a": 1} {"b": 2}]', [None, "expected ',' or ']' after record 1"]),
        (b'[{"a": 1}] trailing', [None, "unexpected content after the end of the document"]),
        (b'{"a": 1}\n{"a": \xff}\n', [None, "invalid UTF-8 at byte 7 of the record"]),
        (b'[{"a": "\xc3\x28"}]', ["invalid UTF-8 near character 8 of the record"]),
        (b"not json\n", ["invalid JSON: Expecting value at column 1"]),
    ],
)
def test_problems_become_records_with_a_reason(tmp_path, content, reasons):
    path = tmp_path / "batch"
    path.write_bytes(content)
    _, records = read(path)
    found = [record.error for record in records]
    assert len(found) == len(reasons)
    for error, reason in zip(found, reasons, strict=True):
        assert (error is None) if reason is None else (reason in error), error


def test_truncated_gzip_keeps_the_records_before_the_cut(tmp_path):
    data = gzip.compress(b"".join(json.dumps(e).encode() + b"\n" for e in EVENTS * 200))
    path = tmp_path / "cut.ndjson.gz"
    path.write_bytes(data[: len(data) // 2])
    batch, records = read(path)
    assert records[-1].error.startswith("gzip data is truncated or corrupt")
    good = [r for r in records if r.error is None]
    assert 0 < len(good) < 800
    assert batch.bytes == len(data) // 2  # the whole file was hashed


def test_oversized_records_keep_a_prefix_and_reading_goes_on(tmp_path):
    big = agent_event(payload={"text": "x" * 5000})
    path = write_ndjson(tmp_path / "big.ndjson", [EVENTS[0], big, EVENTS[1]])
    _, records = read(path, max_record_bytes=1024)
    assert [r.error is None for r in records] == [True, False, True]
    assert "over the 1024-byte limit" in records[1].error
    assert records[1].size == len(json.dumps(big))


def test_oversized_document_element_is_refused(tmp_path):
    path = write_array(tmp_path / "big.json", [EVENTS[0], agent_event(payload={"t": "y" * 4000})])
    _, records = read(path, max_record_bytes=1024)
    assert records[0].error is None
    assert "over the 1024-byte limit" in records[1].error


PLAIN = [
    json.dumps(agent_event(event_id=f"p{i}", payload={"text": "café"}), ensure_ascii=False).encode()
    for i in range(5)
]
ODD = json.dumps(agent_event(event_id="odd")).encode()


@pytest.mark.parametrize(
    "odd",
    [
        b"",
        b"  \t ",
        ODD + b" ",
        ODD + b"\r",
        b"\t" + ODD,
        b"\x0b" + ODD,
        b'{"a": "\\u0000"}',
        b'{"a": "\\"u"}',
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
        b'[{"a": [' + b"{}," * (MAX_DEPTH - 2) + b"{}]}]",
        b'{"a": "\xff"}',
        b"not json",
        b"x" * 3000,
        ODD + b"\r" + ODD,  # a lone CR inside a file of LF lines: not a line ending there
        ODD + b"\r",  # CRLF
    ],
    ids=repr,
)
def test_undecoded_lines_decode_to_the_records_a_decoded_reading_gives(tmp_path, odd):
    """Lines are read a block at a time unless one of them needs a closer look: either
    way, each record is the decoded reading's, and a plain line is left undecoded."""
    lines = [*PLAIN[:3], odd, *PLAIN[3:]]
    path = tmp_path / "b.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with BatchFile(path, max_record_bytes=2048) as batch:
        undecoded = list(batch.records(decode=False))
    _, records = read(path, max_record_bytes=2048)
    assert [decoded(record) for record in undecoded] == records
    for record in undecoded:  # only a line pydantic-core reads as the standard decoder does
        brackets = record.raw.count("[") + record.raw.count("{")
        readable = "\\u" not in record.raw and brackets <= MAX_DEPTH and record.error is None
        assert isinstance(record.value, Undecoded) is readable, record.raw
    plain = [record for record in undecoded if record.raw.startswith('{"event_id": "p')]
    assert [(r.position, r.raw.encode(), r.size) for r in plain] == [
        (position, line, len(line)) for position, line in enumerate(lines, 1) if line in PLAIN
    ]
    assert all(isinstance(record.value, Undecoded) for record in plain)


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "undecoded"])
@pytest.mark.parametrize("ending", [b"\r", b"\r\n"], ids=["CR", "CRLF"])
def test_lone_cr_and_crlf_line_endings_give_the_records_lf_gives(tmp_path, ending, decode):
    """Over 1 MiB (several chunks), blank lines and an odd line included: each ending gives
    the LF file's records, positions and sizes, in both readings."""
    lines = [*PLAIN, b"", ODD, b"not json", *PLAIN] * 800
    records = {}
    for name, separator in [("lf", b"\n"), ("other", ending)]:
        path = tmp_path / f"{name}.ndjson"
        path.write_bytes(separator.join(lines) + separator)
        assert path.stat().st_size > 1 << 20
        with BatchFile(path) as batch:
            records[name] = list(batch.records(decode=decode))
    assert records["other"] == records["lf"]
    assert len(records["lf"]) == len(lines) - 800  # the blank lines are not records
    assert records["lf"][-1].position == len(lines)


def test_undecoded_lines_over_the_limit_are_refused_whatever_the_block_size(tmp_path):
    path = tmp_path / "b.ndjson"
    path.write_bytes(b"\n".join(PLAIN * 4) + b"\n")  # the block is over the limit, no line
    limit = max(map(len, PLAIN))
    with BatchFile(path, max_record_bytes=limit) as batch:
        assert all(isinstance(r.value, Undecoded) for r in batch.records(decode=False))
    with BatchFile(path, max_record_bytes=limit - 1) as batch:
        errors = [r.error for r in batch.records(decode=False)]
    assert [error is not None for error in errors] == [len(line) >= limit for line in PLAIN] * 4
    assert f"over the {limit - 1}-byte limit" in next(filter(None, errors))


def test_memory_stays_bounded_whatever_the_file_size(tmp_path):
    """About 25 MB of NDJSON read with a peak far below the file size."""
    line = (json.dumps(agent_event(payload={"text": "lorem ipsum " * 20})) + "\n").encode()
    path = tmp_path / "large.ndjson"
    with open(path, "wb") as handle:
        for _ in range(25_000_000 // len(line)):
            handle.write(line)
    tracemalloc.start()
    with BatchFile(path) as batch:
        count = sum(1 for _ in batch.records())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 25_000_000 // len(line)
    assert peak < 8_000_000, peak


def test_directories_are_walked_in_sorted_order_without_hidden_files(tmp_path):
    for name in ["b/2.json", "a.ndjson", "b/1.ndjson.gz", ".tmp/x.json", "c/.part.json"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("[]")
    found = [str(p.relative_to(tmp_path)) for p in batch_files([tmp_path])]
    assert found == ["a.ndjson", "b/1.ndjson.gz", "b/2.json"]


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
@pytest.mark.parametrize("text", ["]]]}", "{{{{[[", 'a"]}["', '\\"]\\\\'], ids=repr)
def test_brackets_inside_strings_do_not_count_towards_the_depth(depth, text):
    """A line of many brackets is measured outside its strings, escaped quotes or not:
    quarantined as too deep exactly when its value nests deeper than MAX_DEPTH."""
    value: list = [text] * (MAX_DEPTH + 5)  # more brackets in strings than the limit
    for _ in range(depth - 1):
        value = [text, value, {"k" + text: text}]
    assert nesting_depth(value) == depth
    record = line_record(1, json.dumps(value).encode(), 1 << 20)
    too_deep = record.error is not None and "nested too deeply" in record.error
    assert too_deep is (depth > MAX_DEPTH)
    assert record.error is None or too_deep
    if not too_deep:
        assert decoded(record).value == value
