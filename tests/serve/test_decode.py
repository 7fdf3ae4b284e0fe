"""Request bodies into records: the shapes accepted, each record's text kept as sent."""

from __future__ import annotations

import json

import pytest

from loader.live.serve import BadBatch, decode_batch, verdicts


def test_events_document_keeps_each_record_text_as_sent() -> None:
    body = b'{ "events" : [ {"b": 1,  "a": 2} , 7,"x" ] }\n'
    assert decode_batch(body, "application/json") == [
        ('{"b": 1,  "a": 2}', {"b": 1, "a": 2}),
        ("7", 7),
        ('"x"', "x"),
    ]


def test_pretty_printed_records_are_put_on_one_line() -> None:
    body = json.dumps({"events": [{"a": [1, 2], "b": "t"}]}, indent=2).encode()
    assert decode_batch(body, "application/json") == [
        ('{"a":[1,2],"b":"t"}', {"a": [1, 2], "b": "t"})
    ]


def test_array_ndjson_and_empty_documents() -> None:
    assert decode_batch(b'[{"a":1}]', "application/json") == [('{"a":1}', {"a": 1})]
    assert decode_batch(b'{"events": []}', "application/json") == []
    assert decode_batch(b"[ ]", "application/json") == []
    ndjson = b'{"a":1}\r\n\n  {"b":2}  \n'
    assert decode_batch(ndjson, "application/x-ndjson") == [
        ('{"a":1}', {"a": 1}),
        ('{"b":2}', {"b": 2}),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": [1], "x": 2}',
        b'{"x": 2, "events": [1]}',
        b'{"events": [1]} trailing',
        b"[1,]",
        b'{"events": [1}',
        b"null",
        b"\xef\xbb\xbf[]",
    ],
)
def test_other_bodies_are_refused_as_a_whole(body: bytes) -> None:
    with pytest.raises(BadBatch) as refused:
        decode_batch(body, "application/json")
    assert refused.value.status == 400


def test_verdicts_apply_the_size_limit_of_the_reader() -> None:
    records = [('{"event_id":"' + "x" * 80 + '"}', {}), ("{}", {})]
    lines, quarantined = verdicts(records, 64)
    assert lines == [records[0][0].encode(), b"{}"]
    assert quarantined[0] == {
        "index": 0,
        "reason": "record is 95 bytes, over the 64-byte limit (--max-record-bytes);"
        " raw_text keeps its first 95 bytes",
    }
    assert quarantined[1]["index"] == 1
    assert quarantined[1]["reason"].startswith("record fits neither event shape")
