"""One definition of what fits (loader/limits.py), held alike by the contract, the endpoint's
answer, the loader's verdict, raw's constraints and the docs."""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from loader import limits
from loader.ingest.contract import (
    ContractError,
    check_event,
    check_event_json,
    checked_record,
    parse_event,
)
from loader.ingest.load import load_file, verdict
from loader.ingest.readers import line_record
from loader.live.serve import BadBatch, decode_batch, verdicts
from tests.factories import agent_event, marketplace_event, write_ndjson

REPO = Path(__file__).parents[2]

# Every identifier and name the contract bounds: (the event it is in, its path in the record).
FIELDS: list[tuple[str, tuple[Any, ...]]] = [
    ("message", ("event_id",)),
    ("message", ("conversation_id",)),
    ("message", ("session_id",)),
    ("message", ("user_id",)),
    ("message", ("agent_name",)),
    ("message", ("metadata", "model")),
    ("message", ("payload", "role")),
    ("tool_call", ("payload", "tool_name")),
    ("handoff", ("payload", "from_agent")),
    ("handoff", ("payload", "to_agent")),
    ("error", ("payload", "error_type")),
    ("agent_completed", ("id",)),
    ("agent_completed", ("agent_id",)),
    ("agent_completed", ("publisher_id",)),
    ("agent_completed", ("tenant_id",)),
    ("agent_completed", ("properties", "error_type")),
    ("agent_completed", ("properties", "tool_calls", 1)),
    ("tool_called", ("properties", "tool_name")),
    ("install", ("properties", "plan")),
]
# Values of exactly 256 UTF-8 bytes in characters of 2, 3 and 4 bytes (computed, not assumed).
AT_BOUND = ["é" * 128, "€" * 85 + "a", "😀" * 64]


def _bound(path: tuple[Any, ...]) -> int:
    names = {"agent_name", "model", "role", "tool_name", "from_agent", "to_agent", "error_type"}
    names |= {"tool_calls", "plan"}
    return limits.MAX_NAME_BYTES if set(path) & names else limits.MAX_ID_BYTES


def record_with(event_type: str, path: tuple[Any, ...], value: str, n: int = 0) -> dict:
    """A valid event of `event_type` whose field at `path` holds `value` (ids made unique)."""
    if event_type in ("message", "tool_call", "handoff", "error"):
        record = agent_event(event_type=event_type, event_id=f"limit-a{n}")
    else:
        record = marketplace_event(event_type=event_type, id=f"limit-m{n}")
        if event_type == "tool_called":
            record["properties"] = {"tool_name": "search"}
        elif event_type == "install":
            record["properties"] = {"plan": "pro"}
    record = json.loads(json.dumps(record))
    *outer, last = path
    target = record
    for key in outer:
        target = target[key]
    target[last] = value
    return record


def dotted(path: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in path)


def test_the_multibyte_values_are_exactly_at_the_bound():
    assert {len(value.encode()) for value in AT_BOUND} == {256}
    assert limits.MAX_ID_BYTES == limits.MAX_NAME_BYTES == 256


@pytest.mark.parametrize("value", AT_BOUND, ids=["2-byte", "3-byte", "4-byte"])
@pytest.mark.parametrize(("event_type", "path"), FIELDS, ids=[dotted(p) for _, p in FIELDS])
def test_an_identifier_or_name_at_the_bound_is_accepted_by_every_check(event_type, path, value):
    record = record_with(event_type, path, value)
    parse_event(record)
    check_event(record)
    text = json.dumps(record, ensure_ascii=False)
    assert verdict(line_record(1, text.encode(), limits.MAX_RECORD_BYTES)) is None


@pytest.mark.parametrize(("event_type", "path"), FIELDS, ids=[dotted(p) for _, p in FIELDS])
def test_one_byte_more_is_quarantined_with_the_field_and_the_rule_never_the_value(event_type, path):
    value = "é" * 128 + "Z"  # 257 bytes, only 129 characters
    record = record_with(event_type, path, value)
    expected = f"{dotted(path)}: longer than {_bound(path)} bytes (UTF-8)"
    for show_values in (True, False):
        with pytest.raises(ContractError) as refused:
            parse_event(record, show_values)
        assert refused.value.reason == expected
    for text in (json.dumps(record), json.dumps(record, ensure_ascii=False)):
        assert check_event_json(text) is None
        assert verdict(line_record(1, text.encode(), limits.MAX_RECORD_BYTES)) == expected


def test_a_long_ascii_value_is_measured_exactly_too():
    assert verdict(_line(record_with("message", ("agent_name",), "a" * 256))) is None
    reason = verdict(_line(record_with("message", ("agent_name",), "a" * 257)))
    assert reason == "agent_name: longer than 256 bytes (UTF-8)"


def _line(record: Any) -> Any:
    return line_record(1, json.dumps(record).encode(), limits.MAX_RECORD_BYTES)


@pytest.mark.parametrize(
    ("character", "code"),
    [
        ("\u202e", "202E"),  # right-to-left override
        ("\u2067", "2067"),  # right-to-left isolate
        ("\u200b", "200B"),  # zero-width space
        ("\u2060", "2060"),  # word joiner
        ("\ufeff", "FEFF"),  # zero-width no-break space (byte-order mark)
        ("\u00ad", "00AD"),  # soft hyphen
        ("\x1b", "001B"),  # escape (terminal control sequences)
        ("\u2028", "2028"),  # line separator
        ("\U000e0041", "E0041"),  # tag latin capital letter A
    ],
)
def test_a_hidden_character_in_a_name_is_quarantined_with_its_code_point(character, code):
    record = record_with("agent_completed", ("publisher_id",), f"acme{character}corp")
    reason = verdict(_line(record))
    assert reason == (
        f"publisher_id: holds U+{code}, a control, zero-width or bidirectional formatting character"
    )


def test_the_hidden_class_holds_every_control_format_and_separator_character():
    from loader.shown import HIDDEN_CHARACTER as _HIDDEN

    for code in range(sys.maxunicode + 1):
        character = chr(code)
        hidden = unicodedata.category(character) in ("Cc", "Cf", "Zl", "Zp")
        if hidden:
            assert _HIDDEN.match(character), f"U+{code:04X}"
        elif _HIDDEN.match(character):  # only characters Unicode 15 added to those classes
            assert 0x13439 <= code <= 0x1343F, f"U+{code:04X}"


def test_nfd_and_nfc_spellings_are_stored_as_one_name(db, tmp_path):
    nfc = "Zoë Café"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    records = [
        agent_event(event_id="nfc", agent_name=nfc),
        agent_event(event_id="nfd", agent_name=nfd, payload={"text": nfd, "role": "user"}),
        marketplace_event(id="m-nfd", publisher_id=nfd),
    ]
    conn = db.connect()
    try:
        result = load_file(conn, write_ndjson(tmp_path / "nfd.ndjson", records))
    finally:
        conn.close()
    assert (result.loaded, result.quarantined) == (3, 0)
    assert db.query("select distinct agent_name from raw.agent_events") == [(nfc,)]
    assert db.scalar("select publisher_id from raw.marketplace_events") == nfc
    # free text is data, stored as sent
    assert db.scalar("select payload->>'text' from raw.agent_events where event_id = 'nfd'") == nfd
    value, _, _ = checked_record(json.loads(json.dumps(records[1])))
    assert value["agent_name"] == nfc


@pytest.mark.parametrize("key", ["jane.doe@example.com", "k" * 6000, "carol%40example.com"])
def test_a_key_outside_the_contract_is_never_named_in_the_reason(key):
    record = {**agent_event(), key: 1}
    for show_values in (True, False):
        with pytest.raises(ContractError) as refused:
            parse_event(record, show_values)
        reason = refused.value.reason
        assert reason.startswith("record: a key outside the contract")
        assert key not in reason and "example" not in reason
    record = {**marketplace_event(), key: 1, "another": 2}
    reason = verdict(_line(record))
    assert reason.startswith("record: 2 keys outside the contract")
    assert "`properties`" in reason and key not in reason


def test_every_bound_in_limits_py_is_in_the_docs_table_with_its_value():
    text = (REPO / "docs" / "contract.md").read_text()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+?) \|", text, re.MULTILINE))
    constants = {
        name: value
        for name, value in vars(limits).items()
        if name.isupper() and isinstance(value, (int, float))
    }
    assert set(rows) == set(constants)
    for name, value in constants.items():
        assert rows[name].replace(",", "").replace(" ", "") == str(value), name


def test_raws_checks_use_the_bounds_of_limits_py():
    migration = (REPO / "loader/ingest/migrations/0007_identifier_bounds.sql").read_text()
    checks = re.findall(r"octet_length\((\w+)\) <= (\d+)", migration)
    assert sorted(column for column, _ in checks) == sorted(
        [
            "event_id",
            "conversation_id",
            "session_id",
            "user_id",
            "agent_name",
            "id",
            "agent_id",
            "publisher_id",
            "tenant_id",
        ]
    )
    ids = {"event_id", "conversation_id", "session_id", "user_id", "id", "agent_id"}
    ids |= {"publisher_id", "tenant_id"}
    for column, most in checks:
        assert int(most) == (limits.MAX_ID_BYTES if column in ids else limits.MAX_NAME_BYTES)


def test_raw_refuses_an_identifier_over_the_bound_written_without_the_loader(db):
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "insert into raw.load_batches (path, status, loader_version, started_at,"
                " finished_at) values ('x', 'failed', 'test', now(), now())"
                " returning batch_id"
            )
            batch = cur.fetchone()[0]
            with pytest.raises(psycopg2.errors.CheckViolation):
                cur.execute(
                    "insert into raw.marketplace_events values"
                    " (%s, 'install', 'a', 'p', 't', now(), '{}', %s, now())",
                    ("😀" * 64 + "x", batch),
                )
    finally:
        conn.rollback()
        conn.close()


# --- the endpoint's answer is the loader's verdict, record for record --------------------


def _agent(n: int, **changes: Any) -> str:
    return json.dumps(agent_event(event_id=f"odd-a{n}", **changes), ensure_ascii=False)


def _market(n: int, **changes: Any) -> str:
    return json.dumps(marketplace_event(id=f"odd-m{n}", **changes), ensure_ascii=False)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


ODD_RECORDS = [
    _agent(1),
    _market(1),
    _agent(2).replace('"total_tokens": 42', '"x": 1e400'),
    _agent(3).replace('"total_tokens": 42', '"x": -1E999'),
    _agent(4).replace('"total_tokens": 42', '"x": 2.5e308'),
    _agent(5).replace('"total_tokens": 42', '"x": NaN'),
    _agent(6).replace('"total_tokens": 42', '"x": -Infinity'),
    _agent(7).replace('"total_tokens": 42', '"total_tokens": 1' + "0" * 30),
    _agent(8).replace('"total_tokens": 42', '"x": 1' + "0" * 5000),
    _agent(9).replace('"total_tokens": 42', '"x": 12345678901234567890123'),
    _agent(10).replace('"total_tokens": 42', '"total_tokens": 42.0'),
    _agent(11).replace('"total_tokens": 42', '"x": -0'),
    _agent(12).replace('"role": "user"', '"role": "user", "n": ' + _nested(63)),
    _agent(13).replace('"role": "user"', '"role": "user", "n": ' + _nested(64)),
    _agent(14).replace('"role": "user"', '"role": "user", "n": ' + _nested(200)),
    _agent(15).replace('"role": "user"', '"role": "user", "n": ' + _nested(1000)),
    _agent(16).replace('"role": "user"', '"role": "user", "n": ' + _nested(1500)),
    _nested(2500),
    _agent(17).replace('"triage"', '"\\u00e9t\\u00e9 \\/ \\u2603"'),
    _agent(18).replace('"Where is my order?"', '"\\ud800 alone"'),
    _agent(19).replace('"triage"', '"\\udfff"'),
    _agent(20).replace('"Where is my order?"', '"nul \\u0000"'),
    _agent(21).replace('"triage"', '"a", "agent_name": "b"'),  # duplicate key: last wins
    _agent(22).replace('"conv-1"', '"c", "conversation_id": "' + "é" * 129 + '"'),
    _agent(23, agent_name="é" * 128),
    _agent(24, agent_name="é" * 128 + "a"),
    _market(25, tenant_id="€" * 85 + "a"),
    _market(26, tenant_id="€" * 86),
    _agent(27, agent_name=unicodedata.normalize("NFD", "Renée")),
    _market(28, publisher_id="acme\u200dcorp"),
    _market(29, agent_id="\u202egnp.exe"),
    _agent(30, agent_name='=HYPERLINK("http://x")'),
    _agent(31, **{"jane.doe@example.com": 1}),
    _agent(32, user_id=7),
    _agent(33, timestamp="2026-11-01T09:30:15,5"),
    json.dumps([agent_event(event_id="odd-a34")]),
    '"just a string"',
    "null",
    "17",
    _market(35, properties={"tool_calls": ["ok", "😀" * 64 + "x"]}),
    _agent(36, metadata={"model": "m" * 300}),
    _agent(37).replace('"triage"', '"' + "\\u00e9" * 128 + '"'),  # 768 bytes of text, 256 stored
    _agent(38).replace('"triage"', '"' + "\\u00e9" * 129 + '"'),
    _agent(39).replace(', "session_id"', ',\r"session_id"'),  # a lone CR between tokens
]


def _loaded_verdicts(db: Any, path: Path) -> dict[int, str]:
    conn = db.connect()
    try:
        result = load_file(conn, path)
    finally:
        conn.close()
    assert result.status == "loaded", result.error
    rows = db.query(
        "select position, reason from raw.quarantine where batch_id = %s", (result.batch_id,)
    )
    return {position - 1: reason for position, reason in rows}


def _answered(body: bytes, content_type: str) -> dict[int, str]:
    lines, quarantined = verdicts(decode_batch(body, content_type), limits.MAX_RECORD_BYTES)
    assert len(lines) == len(ODD_RECORDS)
    return {item["index"]: item["reason"] for item in quarantined}


def test_the_endpoints_answer_is_the_loaders_verdict_for_every_odd_record(db, tmp_path):
    body = "\n".join(ODD_RECORDS).encode("utf-8") + b"\n"
    answer = _answered(body, "application/x-ndjson")
    (tmp_path / "odd.ndjson").write_bytes(body)
    assert answer == _loaded_verdicts(db, tmp_path / "odd.ndjson")
    # the answer is not vacuous: both kinds of verdict occur, the bounds among them
    assert 0 in answer.keys() ^ set(range(len(ODD_RECORDS)))
    assert answer[ODD_RECORDS.index(_agent(24, agent_name="é" * 128 + "a"))] == (
        "agent_name: longer than 256 bytes (UTF-8)"
    )
    assert 17 in answer  # 2,500 levels: one record quarantined, not the batch refused


def test_the_endpoints_answer_to_a_document_is_the_loaders_verdict_on_that_file(db, tmp_path):
    body = ('{"events": [\n' + ",\n".join(ODD_RECORDS) + "\n]}").encode("utf-8")
    answer = _answered(body, "application/json")
    (tmp_path / "odd.json").write_bytes(body)
    loaded = _loaded_verdicts(db, tmp_path / "odd.json")
    assert answer.keys() == loaded.keys()
    assert answer == loaded


def test_invalid_json_still_refuses_the_request_as_a_whole():
    with pytest.raises(BadBatch) as refused:
        decode_batch(b'{"event_id": \n', "application/x-ndjson")
    assert refused.value.status == 400
