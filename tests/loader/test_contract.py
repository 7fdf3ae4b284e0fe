"""The event contract: what each seed shape accepts and the reason it gives when it refuses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from loader.ingest import contract
from loader.ingest.contract import (
    AGENT_EVENT_TYPES,
    MARKETPLACE_EVENT_TYPES,
    AgentEvent,
    ContractError,
    MarketplaceEvent,
    check_event,
    parse_event,
)
from tests.factories import agent_event, marketplace_event


def test_seed_000_event_is_accepted_and_its_naive_timestamp_read_as_utc():
    event = parse_event(agent_event(timestamp="2026-11-01T09:30:15.250000"))
    assert isinstance(event, AgentEvent)
    assert event.timestamp == datetime(2026, 11, 1, 9, 30, 15, 250000, tzinfo=timezone.utc)


def test_offset_timestamp_keeps_its_instant():
    event = parse_event(marketplace_event(timestamp="2026-11-01T11:30:00+02:00"))
    assert isinstance(event, MarketplaceEvent)
    assert event.timestamp == datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)
    assert event.timestamp.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("event_type", AGENT_EVENT_TYPES)
def test_every_seed_000_event_type_is_accepted(event_type):
    payload = {"error_type": "timeout"} if event_type == "error" else {}
    assert parse_event(agent_event(event_type=event_type, payload=payload)).event_type == event_type


def _properties(event_type):
    return {
        "agent_invoked": {},
        "agent_completed": marketplace_event()["properties"],
        "agent_errored": {**marketplace_event()["properties"], "error_type": "Timeout"},
        "tool_called": {"tool_name": "search"},
        "tool_failed": {"tool_name": "search", "error": "HTTP 502"},
        "user_feedback": {"rating": 4, "comment": None},
        "install": {},
        "uninstall": {"plan": "pro"},
    }[event_type]


@pytest.mark.parametrize("event_type", MARKETPLACE_EVENT_TYPES)
def test_every_seed_004_event_type_is_accepted(event_type):
    event = marketplace_event(event_type=event_type, properties=_properties(event_type))
    assert parse_event(event).event_type == event_type


def test_extra_keys_inside_bodies_are_kept():
    event = parse_event(agent_event(payload={"text": "hi", "channel": "web"}))
    assert event.payload.model_dump(exclude_unset=True) == {"text": "hi", "channel": "web"}


COMPLETED = marketplace_event()["properties"]

REFUSED = [
    # envelope: missing, extra, mistyped, empty, unknown type, bad timestamp
    ({"agent_name": None}, "agent_name: Input should be a valid string"),
    ({"surprise": 1}, "record: a key outside the contract (the envelope's keys are fixed"),
    ({"event_type": "clicked"}, "event_type: Input should be one of 'conversation_start'"),
    ({"conversation_id": ""}, "conversation_id: String should have at least 1 character"),
    ({"timestamp": "yesterday"}, "timestamp: not an ISO 8601 timestamp"),
    ({"timestamp": 1767225600}, "timestamp: expected an ISO 8601 string, got int"),
    ({"payload": ["text"]}, "payload: Input should be a valid dictionary"),
    ({"user_id": 7}, "user_id: Input should be a valid string"),
    # bodies: what staging casts must have the right type
    (
        {"metadata": {"total_tokens": "12"}},
        "metadata.total_tokens: Input should be a valid integer",
    ),
    (
        {"metadata": {"total_tokens": True}},
        "metadata.total_tokens: Input should be a valid integer",
    ),
    (
        {"metadata": {"latency_ms": -1}},
        "metadata.latency_ms: Input should be greater than or equal",
    ),
    ({"event_type": "error", "payload": {"error_type": 5}}, "payload.error_type: Input should be"),
    ({"payload": {"text": 5}}, "payload.text: Input should be a valid string"),
]


@pytest.mark.parametrize(("overrides", "reason"), REFUSED)
def test_seed_000_contract_refuses_with_a_precise_reason(overrides, reason):
    with pytest.raises(ContractError) as refused:
        parse_event(agent_event(**overrides))
    assert reason in refused.value.reason


def test_missing_field_is_named():
    event = agent_event()
    del event["session_id"]
    with pytest.raises(ContractError, match="session_id: Field required"):
        parse_event(event)


REFUSED_MARKETPLACE = [
    ({"event_type": "AGENT_COMPLETED"}, "event_type: Input should be one of 'agent_invoked'"),
    ({"tenant_id": ""}, "tenant_id: String should have at least 1 character"),
    (
        {"properties": {**COMPLETED, "cost_usd": -0.5}},
        "properties.cost_usd: Input should be greater",
    ),
    ({"properties": {**COMPLETED, "cost_usd": "0.5"}}, "properties.cost_usd: expected a number"),
    (
        {"properties": {**COMPLETED, "duration_ms": "120"}},
        "properties.duration_ms: expected a number",
    ),
    (
        {"properties": {**COMPLETED, "tool_calls": None}},
        "properties.tool_calls: Input should be a valid list",
    ),
    (
        {"properties": {**COMPLETED, "error_type": 5}},
        "properties.error_type: Input should be a valid string",
    ),
    (
        {"properties": {**COMPLETED, "input_tokens": 1.5}},
        "properties.input_tokens: Input should be a",
    ),
    (
        {"properties": {**COMPLETED, "tool_calls": "search"}},
        "properties.tool_calls: Input should be a valid list",
    ),
    (
        {"properties": {**COMPLETED, "tool_calls": ["a", 3]}},
        "properties.tool_calls.1: Input should be a valid string",
    ),
    ({"properties": {"output_tokens": -1}}, "properties.output_tokens: Input should be greater"),
    (
        {"event_type": "user_feedback", "properties": {"rating": 6}},
        "properties.rating: Input should be less than or equal to 5",
    ),
    (
        {"event_type": "user_feedback", "properties": {"rating": 0}},
        "properties.rating: Input should be greater than or equal to 1",
    ),
    (
        {"event_type": "user_feedback", "properties": {"rating": 4.5}},
        "properties.rating: Input should be a valid integer",
    ),
    ({"event_type": "user_feedback", "properties": {}}, "properties.rating: Field required"),
    (
        {"event_type": "tool_failed", "properties": {"error": "x"}},
        "properties.tool_name: Field required",
    ),
]


@pytest.mark.parametrize(("overrides", "reason"), REFUSED_MARKETPLACE)
def test_seed_004_contract_refuses_with_a_precise_reason(overrides, reason):
    with pytest.raises(ContractError) as refused:
        parse_event(marketplace_event(**overrides))
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ([1, 2], "record is an array, expected a JSON object"),
        ("text", "record is a str, expected a JSON object"),
        ({"name": "x"}, "record fits neither event shape"),
    ],
)
def test_records_of_neither_shape_are_refused(record, reason):
    with pytest.raises(ContractError, match=reason):
        parse_event(record)


# --- check_event: the loader's fast verdict must be parse_event's, record for record ------


def _fast_verdict(record):
    """The typed-dict check alone (no fallback to parse_event): accepted or refused."""
    adapter = contract._AGENT_CHECK if "event_id" in record else contract._MARKETPLACE_CHECK
    try:
        adapter.validate_python(record)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("overrides", [overrides for overrides, _ in REFUSED])
def test_fast_check_refuses_every_refused_seed_000_record(overrides):
    assert _fast_verdict(agent_event(**overrides)) is False


@pytest.mark.parametrize("overrides", [overrides for overrides, _ in REFUSED_MARKETPLACE])
def test_fast_check_refuses_every_refused_seed_004_record(overrides):
    assert _fast_verdict(marketplace_event(**overrides)) is False


@pytest.mark.parametrize("event_type", MARKETPLACE_EVENT_TYPES)
def test_fast_check_accepts_what_parse_event_accepts(event_type):
    event = marketplace_event(event_type=event_type, properties=_properties(event_type))
    assert _fast_verdict(event) is True
    conversation = agent_event(payload={"text": "hi", "channel": "web"}, metadata={"x": [1]})
    assert _fast_verdict(conversation) is True
    del conversation["metadata"]  # optional, as in parse_event
    assert _fast_verdict(conversation) is True


def test_check_event_gives_parse_event_reason_and_timestamp():
    event = agent_event(timestamp="2026-11-01T11:30:00.1234567+02:00")
    assert check_event(event) == (True, parse_event(event).timestamp)
    assert check_event(marketplace_event())[0] is False
    with pytest.raises(ContractError, match="tenant_id: String should have at least 1"):
        check_event(marketplace_event(tenant_id=""))


# --- utc_timestamp_text: the common forms checked as text, with Timestamp's verdict -------


def _timestamp_verdict(text):
    """Timestamp's own verdict (the pydantic validators): its instant in UTC, or None."""
    try:
        return contract._within_window(contract._parse_timestamp(text)).astimezone(timezone.utc)
    except ValueError:
        return None


def _timestamp_texts():
    """Common and uncommon forms, real and impossible dates, both edges of the window."""
    latest = datetime.now(timezone.utc) + contract.FUTURE_SKEW
    edges = [
        "2000-01-01T00:00:00",
        "2000-01-01T00:00:00.000000",
        "1999-12-31T23:59:59.999999",
        "2000-01-01T00:00:00Z",
        "1999-12-31T23:59:59.999999+00:00",
        (latest - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        (latest + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%f"),
        (latest - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S") + "Z",
        (latest + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S") + "+00:00",
    ]
    forms = [
        "2026-11-01T09:30:15",
        "2026-11-01T09:30:15.2",
        "2026-11-01T09:30:15.25",
        "2026-11-01T09:30:15.250",
        "2026-11-01T09:30:15.2500",
        "2026-11-01T09:30:15.25000",
        "2026-11-01T09:30:15.250000",
        "2026-11-01T09:30:15.2500000",
        "2026-11-01T09:30:15.250000Z",
        "2026-11-01T09:30:15.250000+00:00",
        "2026-11-01T09:30:15.250000+0000",
        "2026-11-01T09:30:15.250000+02:00",
        "2026-11-01T09:30:15.250000-00:00",
        "2026-11-01 09:30:15.250000",
        "2026-11-01T09:30",
        "2026-11-01",
        "2026-11-01T09:30:15.",
        "2026-11-01T09:30:15,25",
        "2026-11-01t09:30:15",
        "2026-11-01T09:30:15z",
        "2026-02-29T09:30:15",
        "2024-02-29T09:30:15",
        "2026-02-30T09:30:15",
        "2026-13-01T09:30:15",
        "2026-00-10T09:30:15",
        "2026-11-01T24:00:00",
        "2026-11-01T23:60:00",
        "2026-11-01T23:59:60",
        "2026-11-01T09:30:15.250000Z ",
        "2026-11-01T09:30:15.250000Z\n",
        " 2026-11-01T09:30:15",
        "\uff12\uff10\uff12\uff16-11-01T09:30:15",  # fullwidth digits
        "9999-12-31T23:59:59.999999",
        "0001-01-01T00:00:00",
    ]
    return edges + forms


def test_utc_timestamp_text_agrees_with_timestamp_on_every_form():
    for text in _timestamp_texts():
        fast = contract.utc_timestamp_text(text)
        verdict = _timestamp_verdict(text)
        if fast is None:
            continue  # "ask Timestamp": never a verdict of its own
        assert verdict is not None, text  # accepted as text only if Timestamp accepts it
        assert datetime.fromisoformat(fast.replace("+00", "+00:00")) == verdict, text


def test_utc_timestamp_text_takes_the_common_forms_itself():
    """The forms collectors write do not fall back to the slower validators."""
    for text in ("2026-11-01T09:30:15.250000", "2026-11-01T09:30:15", "2026-11-01T09:30:15Z"):
        assert contract.utc_timestamp_text(text) == text.removesuffix("Z") + "+00"
    assert contract.utc_timestamp_text("2026-11-01T09:30:15+00:00") == "2026-11-01T09:30:15+00"


def test_check_event_json_takes_the_timestamps_utc_timestamp_text_takes():
    """Its validators test the common forms in pydantic-core, with a regex of their own."""
    import json

    for text in _timestamp_texts():
        checked = contract.check_event_json(json.dumps(agent_event(timestamp=text)))
        assert (checked and checked[1]) == (contract.utc_timestamp_text(text) or None), text
        checked = contract.check_event_json(json.dumps(marketplace_event(timestamp=text)))
        assert (checked and checked[1]) == (contract.utc_timestamp_text(text) or None), text


NUMBERS = ["5", "5.5", "2.50", "0", "-0.0", "1e-7", "-1", "-0.5", "1e9", "1000000001", "1e12"]
NUMBERS += ["1000000000001", "1e13", "1" + "0" * 30, "1e400", "-1e400", "NaN", "-Infinity"]
NUMBERS += ['"5"', "true", "false", "null", "[1]", "{}"]


@pytest.mark.parametrize(
    ("event", "body", "key"),
    [
        (agent_event(), "metadata", "latency_ms"),
        (marketplace_event(), "properties", "duration_ms"),
        (marketplace_event(), "properties", "cost_usd"),
        (
            marketplace_event(event_type="tool_failed", properties={"tool_name": "t"}),
            "properties",
            "duration_ms",
        ),
    ],
    ids=["latency_ms", "duration_ms", "cost_usd", "tool duration_ms"],
)
def test_check_event_json_reads_numbers_as_the_contract_does(event, body, key):
    """Its checkers read numbers in pydantic-core alone: the same verdict, the same value."""
    import json

    for number in NUMBERS:
        text = json.dumps({**event, body: {**event[body], key: "@"}}).replace('"@"', number)
        value = json.loads(text)  # the standard reading (NaN and 1e400 as floats)
        try:
            check_event(value)
        except ContractError:
            accepted = False
        else:
            accepted = True
        checked = contract.check_event_json(text)
        assert (checked is not None) is accepted, number
        if checked is not None:
            read, expected = checked[0][body][key], value[body][key]
            assert (type(read), read) == (type(expected), expected), number


def test_check_event_json_calls_no_python_validator():
    """One pydantic-core call a record: no Python function anywhere in its checkers."""
    for adapter in (contract._AGENT_CHECK_TEXT, contract._MARKETPLACE_CHECK_TEXT):
        assert "'function-" not in repr(adapter.core_schema)
    assert "'function-" in repr(contract._AGENT_CHECK.core_schema)  # (the test can tell)


def test_check_event_json_gives_the_record_and_its_utc_timestamp_text():
    import json

    event = agent_event(timestamp="2026-11-01T09:30:15.250000")
    value, stamp = contract.check_event_json(json.dumps(event))
    assert stamp == "2026-11-01T09:30:15.250000+00"
    assert value["event_id"] == event["event_id"] and value["payload"] == event["payload"]
    offset = agent_event(timestamp="2026-11-01T11:30:15+02:00")
    assert contract.check_event_json(json.dumps(offset)) is None  # the validators decide
    assert contract.check_event_json(json.dumps(agent_event(timestamp="1999-01-01"))) is None
