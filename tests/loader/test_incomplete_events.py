"""Incomplete but valid events are kept (missing values stored as missing), and timestamps
are read as PostgreSQL reads them, so the loader and a plain `timestamptz` cast agree."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from loader.ingest.contract import ContractError, parse_event
from loader.ingest.load import load_file
from tests.factories import agent_event, marketplace_event, write_ndjson

COMPLETED = marketplace_event()["properties"]


# --- incomplete but valid: kept, the missing value stored as missing ---------------------


@pytest.mark.parametrize("event_type", ["agent_completed", "agent_errored"])
@pytest.mark.parametrize("missing", ["cost_usd", "duration_ms", "input_tokens", "output_tokens"])
def test_invocation_without_a_measurement_is_kept_and_the_value_left_missing(event_type, missing):
    # seed 004's dashboard counts it: properties.get("cost_usd", 0), `if "duration_ms" in ...`
    properties = {key: value for key, value in COMPLETED.items() if key != missing}
    event = parse_event(marketplace_event(event_type=event_type, properties=properties))
    assert getattr(event.properties, missing) is None
    assert missing not in event.properties.model_dump(exclude_unset=True)


def test_invocation_with_null_measurements_is_kept():
    properties = {**COMPLETED, "cost_usd": None, "duration_ms": None}
    event = parse_event(marketplace_event(properties=properties))
    assert (event.properties.cost_usd, event.properties.duration_ms) == (None, None)


def test_invocation_with_no_properties_at_all_is_kept():
    event = parse_event(marketplace_event(event_type="agent_errored", properties={}))
    assert event.properties.tool_calls == []


def test_conversation_event_without_metadata_is_kept_and_null_metadata_refused():
    event = agent_event()
    del event["metadata"]
    assert parse_event(event).metadata.total_tokens is None
    with pytest.raises(ContractError, match="metadata: Input should be a valid dictionary"):
        parse_event(agent_event(metadata=None))  # the reference ETL fails on it too


@pytest.mark.parametrize("payload", [{}, {"error_type": None}, {"error_type": ""}])
def test_error_without_a_usable_error_type_is_kept(payload):
    event = parse_event(agent_event(event_type="error", payload=payload))
    assert event.event_type == "error"
    assert event.payload.error_type in (None, "")  # staging reads both as null


# --- timestamps: rounded to the microsecond as PostgreSQL rounds -------------------------

ROUNDED = [
    # the case: truncation would keep it in hour 10
    ("2026-11-01T10:59:59.9999999", datetime(2026, 11, 1, 11, 0, tzinfo=timezone.utc)),
    ("2026-11-01T10:59:59.9999994", datetime(2026, 11, 1, 10, 59, 59, 999999, tzinfo=timezone.utc)),
    (
        "2026-11-01T10:59:59.1234565Z",
        datetime(2026, 11, 1, 10, 59, 59, 123456, tzinfo=timezone.utc),
    ),
    ("2026-11-01T10:59:59.0000015Z", datetime(2026, 11, 1, 10, 59, 59, 2, tzinfo=timezone.utc)),
    ("2026-11-01T10:59:59.0000005Z", datetime(2026, 11, 1, 10, 59, 59, tzinfo=timezone.utc)),
    # carried into the next day and year
    ("2025-12-31T23:59:59.99999999+00:00", datetime(2026, 1, 1, tzinfo=timezone.utc)),
    (
        "2026-11-01T10:59:59.9999999+05:30",
        datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc),
    ),
]


@pytest.mark.parametrize(("text", "instant"), ROUNDED)
def test_fractional_seconds_beyond_microseconds_are_rounded(text, instant):
    assert parse_event(marketplace_event(timestamp=text)).timestamp == instant


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-01T10:59:59,5",  # PostgreSQL refuses a decimal comma
        "2026-11-01T10:59.5",  # PostgreSQL reads 00:10:59.5, Python 10:59:00.5
        "20261101T105959",
        "2026-11-01T10:59:59.5z",
        "2026-11-01+02:00",
        "\uff12\uff10\uff12\uff16-11-01",  # full-width digits
    ],
)
def test_timestamp_forms_read_differently_elsewhere_are_refused(text):
    with pytest.raises(ContractError, match="timestamp: not an ISO 8601 timestamp"):
        parse_event(marketplace_event(timestamp=text))


def _random_fractions(count: int) -> list[str]:
    """7 to 12 fractional digits; every other one ends on a rounding edge (…5, …49, …9999…)."""
    generator = random.Random(11)
    edges = ["5", "49", "50", "5000001", "4999999", "9999999", "0000005"]
    fractions = ["9999995", "0000025", "9999994999"]
    while len(fractions) < count:
        digits = "".join(generator.choice("0123456789") for _ in range(6))
        if len(fractions) % 2:
            tail = generator.choice(edges)
        else:
            tail = "".join(generator.choice("0123456789") for _ in range(generator.randint(1, 6)))
        fractions.append(digits + tail)
    return fractions


def test_loader_and_a_plain_timestamptz_cast_never_disagree(db):
    texts = [f"2026-11-01T10:59:59.{fraction}" for fraction in _random_fractions(400)]
    texts += [f"2026-11-01 23:59:59.{fraction}+02:00" for fraction in _random_fractions(100)]
    texts += [
        "2026-11-01",
        "2026-11-01T10:59",
        "2026-11-01 10:59:59",
        "2026-11-01T10:59:59Z",
        "2026-11-01T10:59:59+05",
        "2026-11-01T10:59:59+0530",
        "2026-11-01T10:59:59-05:30",
        "2025-12-31T23:59:59.9999999Z",
    ]
    loader = [parse_event(marketplace_event(timestamp=text)).timestamp for text in texts]
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("set time zone 'UTC'")  # naive text is UTC, as the loader reads it
            cur.execute(
                "select text, cast(text as timestamptz)"
                " from unnest(%s::text[]) with ordinality as t (text, n) order by n",
                (texts,),
            )
            postgres = cur.fetchall()
    finally:
        conn.close()
    disagreements = [
        (text, ours, theirs)
        for (text, theirs), ours in zip(postgres, loader, strict=True)
        if ours != theirs
    ]
    assert disagreements == []


def test_incomplete_events_load_with_their_missing_values_null(db, tmp_path):
    without_metadata = agent_event(event_id="no-metadata")
    del without_metadata["metadata"]  # the reference ETL reads event.get("metadata", {})
    without_cost = {k: v for k, v in COMPLETED.items() if k != "cost_usd"}
    without_duration = {k: v for k, v in COMPLETED.items() if k != "duration_ms"}
    events = [
        marketplace_event(id="no-cost", properties=without_cost),
        marketplace_event(
            id="no-duration", event_type="agent_errored", properties=without_duration
        ),
        marketplace_event(id="late", timestamp="2026-11-01T10:59:59.9999999+00:00"),
        agent_event(event_id="no-type", event_type="error", payload={}),
        agent_event(event_id="null-type", event_type="error", payload={"error_type": None}),
        agent_event(event_id="empty-type", event_type="error", payload={"error_type": ""}),
        without_metadata,
    ]
    conn = db.connect()
    try:
        result = load_file(conn, write_ndjson(tmp_path / "incomplete.ndjson", events))
    finally:
        conn.close()
    assert (result.records_read, result.loaded, result.quarantined) == (7, 7, 0)
    assert db.query(
        "select id, properties ->> 'cost_usd', properties ->> 'duration_ms', event_ts"
        " from raw.marketplace_events order by id"
    ) == [
        ("late", "0.0125", "1840", datetime(2026, 11, 1, 11, 0, tzinfo=timezone.utc)),
        ("no-cost", None, "1840", datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)),
        ("no-duration", "0.0125", None, datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)),
    ]
    stored = {
        event_id: (payload, metadata)
        for event_id, payload, metadata in db.query(
            "select event_id, payload, metadata from raw.agent_events"
        )
    }
    shipped = agent_event()["metadata"]
    assert stored == {
        "no-type": ({}, shipped),
        "null-type": ({"error_type": None}, shipped),
        "empty-type": ({"error_type": ""}, shipped),
        "no-metadata": (without_metadata["payload"], {}),
    }
