"""Request bodies into records: the shapes accepted, each record's text one line of JSON
that the loader reads as the same value."""

from __future__ import annotations

import json
import math
import pickle

import pytest

from loader.live.serve import BadBatch, BodyLimits, check_body, decode_batch, verdicts


def test_events_document_records_become_compact_json_with_the_same_values() -> None:
    body = '{ "events" : [ {"b": 1,  "a": 2.50} , 7,"x", {"u": "\\u00e9 é", "n": null} ] }\n'
    assert decode_batch(body.encode(), "application/json") == [
        ('{"b":1,"a":2.5}', {"b": 1, "a": 2.5}),
        ("7", 7),
        ('"x"', "x"),
        ('{"u":"é é","n":null}', {"u": "é é", "n": None}),
    ]
    for text, value in decode_batch(body.encode(), "application/json"):
        assert json.loads(text) == value  # what the loader will read from the file


def test_bodies_orjson_reads_otherwise_take_the_json_path_and_keep_their_text() -> None:
    # orjson turns integers of 19 digits or more into floats and refuses NaN and lone
    # surrogates; the loader's json does not: those bodies are read by json, as the loader
    # reads them, and each record keeps the text the client sent.
    body = b'{"events": [{"n": 12345678901234567890123, "f": 1.5}, {"x": NaN}, "\\ud800"]}'
    (big, big_value), (nan, nan_value), (surrogate, surrogate_value) = decode_batch(
        body, "application/json"
    )
    assert big == '{"n": 12345678901234567890123, "f": 1.5}'
    assert big_value == {"n": 12345678901234567890123, "f": 1.5}
    assert isinstance(big_value["n"], int)
    assert nan == '{"x": NaN}' and math.isnan(nan_value["x"])
    assert surrogate == '"\\ud800"' and surrogate_value == "\ud800"
    ndjson = b'{"n": -9223372036854775809}\n{"n": 9223372036854775807}\n'
    assert decode_batch(ndjson, "application/x-ndjson") == [
        ('{"n": -9223372036854775809}', {"n": -9223372036854775809}),
        ('{"n": 9223372036854775807}', {"n": 9223372036854775807}),
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


@pytest.mark.parametrize(
    ("body", "content_type", "records"),
    [
        (b'{"a": 1, "b": 2}\n\n  \r\n{"c": [3, 4]}\n7\n', "application/x-ndjson", 3),
        (b'[{"a": 1, "b": 2}, {"c": [3, 4]}, 7]', "application/json", 3),
        (b'{"events": [{"a": [1, 2, 3]}, "x,y", 7]}', "application/json", 3),
        (b'[{"a": 1}, {"b": 2}, 3, 4]', "application/json", 4),
        (b"1\n2\n3\n4\n", "application/x-ndjson", 4),
        (b'{"\\u0065vents": [1, 2, 3, 4]}', "application/json", 4),  # counted after parsing
    ],
)
def test_records_over_the_limit_are_refused_and_the_limit_itself_is_not(
    body: bytes, content_type: str, records: int
) -> None:
    limits = BodyLimits(max_body_bytes=1 << 20, max_record_bytes=1 << 20, max_records=3)
    if records <= 3:
        assert check_body(body, content_type, False, limits).records == records
    else:
        with pytest.raises(BadBatch) as refused:
            check_body(body, content_type, False, limits)
        assert (refused.value.status, refused.value.message) == (
            413,
            "the batch has more than 3 records: send smaller batches",
        )


def test_the_check_lists_the_first_problems_and_counts_them_all() -> None:
    limits = BodyLimits(max_body_bytes=1 << 20, max_record_bytes=1 << 20, max_problems=2)
    checked = check_body(b"[1, 2, 3, 4]", "application/json", False, limits)
    assert (checked.records, checked.quarantined) == (4, 4)
    assert [problem["index"] for problem in checked.problems] == [0, 1]
    assert checked.lines == [b"1", b"2", b"3", b"4"]


def test_refusals_cross_from_a_worker_process_intact() -> None:
    refused = BadBatch(503, "retry later", {"Retry-After": "2"})
    copy = pickle.loads(pickle.dumps(refused))
    assert (copy.status, copy.message, copy.headers) == (503, "retry later", {"Retry-After": "2"})
