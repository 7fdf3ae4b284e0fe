"""End to end for the conversation models: batch files → agent-loader → dbt build → marts.

Fixture events are written here as an NDJSON file and a `{"events": [...]}` document, loaded
with the loader, built with dbt, and every mart is compared with figures a small pure-Python
oracle computes from the same events, following seed 000's QUERIES (and the documented
extras). Late events arrive in later loads; after each incremental build every mart must equal
the result of `dbt build --full-refresh`.

The pipeline runs once per module (`pipeline` fixture); each test checks one promise.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Database, Dbt, run_loader

pytestmark = pytest.mark.dbt

# +fct_conversations: its LLM columns read the priced spans (and the price seed)
SELECT = ("--select", "source:agent_events+", "+fct_conversations")
MARTS = {
    "fct_conversations": "conversation_id",
    "conversations_hourly": "hour",
    "agent_resolution_times": "agent_name",
    "error_types_ranked": "error_type",
}
UTC = timezone.utc
LLM_COLUMNS = (
    "llm_calls",
    "unpriced_llm_calls",
    "llm_input_tokens",
    "llm_output_tokens",
    "llm_total_tokens",
    "llm_cost_usd",
)


# --- fixture events ------------------------------------------------------------------------


def event(
    event_id: str,
    conversation_id: str,
    event_type: str,
    timestamp: str,
    agent_name: str,
    user_id: str = "u-1",
    session_id: str = "s-1",
    payload: dict[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """One event in seed 000's `AgentEvent.to_dict()` shape."""
    return {
        "event_id": event_id,
        "conversation_id": conversation_id,
        "session_id": session_id,
        "event_type": event_type,
        "timestamp": timestamp,
        "agent_name": agent_name,
        "user_id": user_id,
        "payload": payload or {},
        "metadata": metadata,
    }


def message(text: str, role: str = "user") -> dict[str, str]:
    return {"text": text, "role": role}


def error(error_type: str) -> dict[str, str]:
    return {"error_type": error_type, "message": f"{error_type} happened"}


# Load 1, file 1 (NDJSON). conv-a spans 09:00 and 10:00 and two agents, with naive, `Z` and
# offset timestamps (11:05+01:00 is 10:05 UTC; 05:20-05:00 is 10:20 UTC).
LOAD_1_NDJSON = [
    event("a01", "conv-a", "conversation_start", "2026-01-05T09:50:00", "triage"),
    event(
        "a02",
        "conv-a",
        "message",
        "2026-01-05T09:50:05",
        "triage",
        payload=message("hi"),
        total_tokens=12,
        latency_ms=0,
    ),
    event(
        "a03",
        "conv-a",
        "message",
        "2026-01-05T09:51:00+00:00",
        "triage",
        payload=message("how can I help?", "assistant"),
        model="gpt-x",
        total_tokens=40,
        prompt_tokens=30,
        completion_tokens=10,
        latency_ms=812.5,
    ),
    event(
        "a04",
        "conv-a",
        "tool_call",
        "2026-01-05T09:52:00",
        "triage",
        payload={"tool_name": "lookup_account", "arguments": {"user": "u-1"}},
        total_tokens=30,
        latency_ms=120,
    ),
    event(
        "a05",
        "conv-a",
        "handoff",
        "2026-01-05T09:58:30",
        "triage",
        payload={"from_agent": "triage", "to_agent": "billing", "reason": "invoice"},
    ),
    event(
        "a06",
        "conv-a",
        "message",
        "2026-01-05T11:05:00+01:00",
        "billing",
        payload=message("your invoice", "assistant"),
        total_tokens=55,
        latency_ms=950.25,
    ),
    event("a07", "conv-a", "message", "2026-01-05T10:10:00Z", "billing", payload=message("ok")),
    event("a08", "conv-a", "completion", "2026-01-05T05:20:00-05:00", "billing"),
    event("a09", "conv-a", "conversation_end", "2026-01-05T10:20:01", "billing"),
    # conv-b errors and never completes (yet); its second error is alone in the 11:00 hour.
    event(
        "b01",
        "conv-b",
        "message",
        "2026-01-05T09:10:00",
        "support",
        user_id="u-2",
        session_id="s-2",
        payload=message("it broke"),
        total_tokens=10,
    ),
    event(
        "b02",
        "conv-b",
        "tool_call",
        "2026-01-05T09:11:00",
        "support",
        user_id="u-2",
        session_id="s-2",
        payload={"tool_name": "restart"},
        latency_ms=2000,
    ),
    event(
        "b03",
        "conv-b",
        "error",
        "2026-01-05T09:12:00",
        "support",
        user_id="u-2",
        session_id="s-2",
        payload=error("timeout"),
    ),
    event(
        "b04",
        "conv-b",
        "error",
        "2026-01-05T11:30:00",
        "support",
        user_id="u-2",
        session_id="s-2",
        payload=error("timeout"),
    ),
    # conv-c: an error, then a handoff: handed off.
    event(
        "c01",
        "conv-c",
        "message",
        "2026-01-05T10:30:00",
        "triage",
        user_id="u-3",
        payload=message("help"),
    ),
    event(
        "c02",
        "conv-c",
        "error",
        "2026-01-05T10:31:00",
        "triage",
        user_id="u-3",
        payload=error("rate_limit"),
    ),
    event(
        "c03",
        "conv-c",
        "handoff",
        "2026-01-05T10:32:00",
        "triage",
        user_id="u-3",
        payload={"from_agent": "triage", "to_agent": "human"},
    ),
    # conv-d: started, one message, ended: abandoned.
    event("d01", "conv-d", "conversation_start", "2026-01-05T12:00:00", "support", user_id=""),
    event(
        "d02",
        "conv-d",
        "message",
        "2026-01-05T12:01:00",
        "support",
        user_id="",
        payload=message("hello?"),
    ),
    event("d03", "conv-d", "conversation_end", "2026-01-05T12:15:00", "support", user_id=""),
    # conv-g: errors without a usable error_type (missing, null) are still errors: counted
    # under the null error type, and the last one ends escalation's 90-second conversation.
    event(
        "g01",
        "conv-g",
        "message",
        "2026-01-05T15:00:00",
        "escalation",
        user_id="u-7",
        payload=message("still broken"),
    ),
    event("g02", "conv-g", "error", "2026-01-05T15:00:40", "escalation", user_id="u-7"),
    event(
        "g03",
        "conv-g",
        "error",
        "2026-01-05T15:01:30",
        "escalation",
        user_id="u-7",
        payload={"error_type": None, "message": "upstream said no"},
    ),
    # conv-h: seven fractional digits; PostgreSQL rounds 15:59:59.9999999 to 16:00:00.
    event(
        "h01",
        "conv-h",
        "message",
        "2026-01-05T15:59:59.9999999",
        "support",
        user_id="u-8",
        payload=message("late"),
    ),
]

# Load 1, file 2 (the collector's POST body). Three error types tie on occurrences.
LOAD_1_DOCUMENT = [
    event(
        "e01",
        "conv-e",
        "message",
        "2026-01-05T13:00:00",
        "billing",
        user_id="u-5",
        payload=message("refund"),
    ),
    event(
        "e02",
        "conv-e",
        "error",
        "2026-01-05T13:01:00",
        "billing",
        user_id="u-5",
        payload=error("tool_failure"),
    ),
    event(
        "e03",
        "conv-e",
        "error",
        "2026-01-05T13:02:00",
        "billing",
        user_id="u-5",
        payload=error("tool_failure"),
    ),
    event(
        "e04",
        "conv-e",
        "error",
        "2026-01-05T13:03:00",
        "billing",
        user_id="u-5",
        payload=error("rate_limit"),
    ),
    event(
        "e05",
        "conv-e",
        "error",
        "2026-01-05T13:03:30",
        "billing",
        user_id="u-5",
        payload=error("validation"),
    ),
    event(
        "e06",
        "conv-e",
        "completion",
        "2026-01-05T13:05:00",
        "billing",
        user_id="u-5",
        total_tokens=7,
    ),
]

# Load 2: late events, within the lookback window by load time.
LOAD_2 = [
    # Before conv-a's start: changes its start, duration and triage's resolution time.
    event(
        "a00",
        "conv-a",
        "message",
        "2026-01-05T09:49:00",
        "triage",
        payload=message("hey"),
        total_tokens=3,
    ),
    # conv-b finally completes: errored becomes completed.
    event(
        "b05",
        "conv-b",
        "completion",
        "2026-01-05T09:20:00+00:00",
        "support",
        user_id="u-2",
        session_id="s-2",
    ),
    # Four days before conv-d's other events: far outside the lookback by event time.
    event(
        "d00",
        "conv-d",
        "message",
        "2026-01-01T12:00:00",
        "support",
        user_id="",
        payload=message("anyone?"),
        total_tokens=5,
    ),
    # A new conversation in the 09:00 hour.
    event(
        "f01",
        "conv-f",
        "message",
        "2026-01-05T09:30:00-00:00",
        "triage",
        user_id="u-6",
        payload=message("new"),
    ),
    # A replay of an event already loaded: the loader skips it as a duplicate.
    LOAD_1_NDJSON[1],
]

# Load 3: built with `lookback_hours: 0`, to show the result does not depend on the window.
LOAD_3 = [
    event("c04", "conv-c", "completion", "2026-01-05T10:40:00", "human", user_id="u-3"),
    event(
        "f02",
        "conv-f",
        "error",
        "2026-01-05T14:00:00",
        "triage",
        user_id="u-6",
        payload=error("validation"),
        latency_ms=10,
    ),
    event(
        "f03",
        "conv-f",
        "error",
        "2026-01-05T14:00:05",
        "triage",
        user_id="u-6",
        payload={"error_type": "", "message": "no type"},
    ),
]


def write_ndjson(path: Path, events: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def write_document(path: Path, events: Iterable[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"events": list(events)}), encoding="utf-8")
    return path


# --- the oracle: seed 000's QUERIES and the documented extras, in plain Python ------------


def parse_ts(value: str) -> datetime:
    """The event contract's rule: ISO 8601, a naive timestamp is UTC; fractional seconds are
    rounded to the microsecond (half to even, as PostgreSQL's `rint`), not truncated."""
    head, dot, rest = value.partition(".")
    digits = "".join(itertools.takewhile(str.isdigit, rest)) if dot else ""
    parsed = datetime.fromisoformat(head + rest[len(digits) :])
    if digits:
        micros = (Decimal("0." + digits) * 1_000_000).quantize(Decimal(1), ROUND_HALF_EVEN)
        parsed += timedelta(microseconds=int(micros))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def error_type_of(e: dict[str, Any]) -> str | None:
    """The documented rule: an error without a usable type (missing, null, "") has type null."""
    return (e["payload"].get("error_type") or None) if e["event_type"] == "error" else None


@dataclass(frozen=True)
class Ev:
    event_id: str
    conversation_id: str
    event_type: str
    at: datetime
    agent_name: str
    user_id: str
    session_id: str
    error_type: str | None
    total_tokens: int | None
    latency_ms: float | None


def unique_events(*batches: list[dict[str, Any]]) -> list[Ev]:
    """Every event once (the first copy of a replayed event_id wins, as in the loader)."""
    seen: dict[str, Ev] = {}
    for batch in batches:
        for e in batch:
            if e["event_id"] in seen:
                continue
            seen[e["event_id"]] = Ev(
                e["event_id"],
                e["conversation_id"],
                e["event_type"],
                parse_ts(e["timestamp"]),
                e["agent_name"],
                e["user_id"],
                e["session_id"],
                error_type_of(e),
                e["metadata"].get("total_tokens"),
                e["metadata"].get("latency_ms"),
            )
    return list(seen.values())


def percentile_cont(values: list[float], fraction: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the sorted values."""
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])


def outcome(events: list[Ev]) -> str:
    """The documented rule: completion wins; else the last handoff/error; else abandoned."""
    if any(e.event_type == "completion" for e in events):
        return "completed"
    decisive = [e for e in events if e.event_type in ("handoff", "error")]
    if not decisive:
        return "abandoned"
    last = max(decisive, key=lambda e: (e.at, e.event_id))
    return "errored" if last.event_type == "error" else "handed_off"


def by_conversation(events: list[Ev]) -> dict[str, list[Ev]]:
    grouped: dict[str, list[Ev]] = defaultdict(list)
    for e in events:
        grouped[e.conversation_id].append(e)
    return {key: sorted(value, key=lambda e: (e.at, e.event_id)) for key, value in grouped.items()}


def oracle_conversations(events: list[Ev]) -> dict[str, dict[str, Any]]:
    rows = {}
    for conversation_id, evs in by_conversation(events).items():
        first_seen: dict[str, datetime] = {}
        for e in evs:
            first_seen.setdefault(e.agent_name, e.at)
        counts = Counter(e.event_type for e in evs)
        latencies = [e.latency_ms for e in evs if e.latency_ms is not None]
        rows[conversation_id] = {
            "user_id": evs[0].user_id,
            "session_id": evs[0].session_id,
            "first_agent_name": evs[0].agent_name,
            "last_agent_name": evs[-1].agent_name,
            "agent_names": ", ".join(sorted(first_seen, key=lambda a: (first_seen[a], a))),
            "outcome": outcome(evs),
            "agents_involved": len(first_seen),
            "events": len(evs),
            "messages": counts["message"],
            "tool_calls": counts["tool_call"],
            "handoffs": counts["handoff"],
            "errors": counts["error"],
            "completions": counts["completion"],
            "total_tokens": sum(e.total_tokens or 0 for e in evs),
            "total_latency_ms": sum(latencies),
            "avg_latency_ms": sum(latencies) / len(latencies) if latencies else None,
            "duration_seconds": (evs[-1].at - evs[0].at).total_seconds(),
            "has_conversation_end": counts["conversation_end"] > 0,
            "started_at": evs[0].at,
            "ended_at": evs[-1].at,
            # no spans here: the LLM columns (tests/e2e/test_llm_costs.py) are zero
            **dict.fromkeys(LLM_COLUMNS, 0),
        }
    return rows


def oracle_hourly(events: list[Ev]) -> dict[datetime, dict[str, Any]]:
    """Seed `conversations_per_hour` (all hours) plus the hour's messages, tokens, errors."""
    hours: dict[datetime, list[Ev]] = defaultdict(list)
    for e in events:
        hours[e.at.replace(minute=0, second=0, microsecond=0)].append(e)
    return {
        hour: {
            "conversations": len({e.conversation_id for e in evs if e.event_type == "message"}),
            "active_conversations": len({e.conversation_id for e in evs}),
            "messages": sum(e.event_type == "message" for e in evs),
            "total_tokens": sum(e.total_tokens or 0 for e in evs),
            "errors": sum(e.event_type == "error" for e in evs),
        }
        for hour, evs in hours.items()
    }


def oracle_resolution(events: list[Ev]) -> dict[str, dict[str, Any]]:
    """Seed `avg_resolution_time` (per conversation and agent: last - first, averaged)."""
    conversations = by_conversation(events)
    spans: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for evs in conversations.values():
        completed = outcome(evs) == "completed"
        agents = defaultdict(list)
        for e in evs:
            agents[e.agent_name].append(e.at)
        for agent, times in agents.items():
            spans[agent].append(((max(times) - min(times)).total_seconds(), completed))
    rows = {}
    for agent, items in spans.items():
        every = [seconds for seconds, _ in items]
        done = [seconds for seconds, completed in items if completed]
        rows[agent] = {
            "conversations": len(every),
            "avg_resolution_seconds": sum(every) / len(every),
            "median_resolution_seconds": percentile_cont(every, 0.5),
            "p95_resolution_seconds": percentile_cont(every, 0.95),
            "completed_conversations": len(done),
            "avg_completed_resolution_seconds": sum(done) / len(done) if done else None,
            "median_completed_resolution_seconds": percentile_cont(done, 0.5) if done else None,
            "p95_completed_resolution_seconds": percentile_cont(done, 0.95) if done else None,
        }
        # the self-explaining names of the same four values (the old ones are deprecated)
        for method, old in [
            ("p50_resolution_seconds_interpolated", "median_resolution_seconds"),
            ("p95_resolution_seconds_interpolated", "p95_resolution_seconds"),
            (
                "p50_completed_resolution_seconds_interpolated",
                "median_completed_resolution_seconds",
            ),
            ("p95_completed_resolution_seconds_interpolated", "p95_completed_resolution_seconds"),
        ]:
            rows[agent][method] = rows[agent][old]
    return rows


def oracle_errors(events: list[Ev]) -> dict[str, dict[str, Any]]:
    """Seed `top_error_types` over all types, with share, rank (ties by name), first/last."""
    errors = [e for e in events if e.event_type == "error"]
    counts = Counter(e.error_type for e in errors)
    # ties by name, the null type last (PostgreSQL's `order by error_type asc`)
    ranked = sorted(counts, key=lambda t: (-counts[t], t is None, t or ""))
    return {
        error_type: {
            "occurrences": counts[error_type],
            "conversations": len({e.conversation_id for e in errors if e.error_type == error_type}),
            "share": counts[error_type] / len(errors),
            "rank": ranked.index(error_type) + 1,
            "first_seen_at": min(e.at for e in errors if e.error_type == error_type),
            "last_seen_at": max(e.at for e in errors if e.error_type == error_type),
        }
        for error_type in counts
    }


def oracle(events: list[Ev]) -> dict[str, dict[Any, dict[str, Any]]]:
    return {
        "fct_conversations": oracle_conversations(events),
        "conversations_hourly": oracle_hourly(events),
        "agent_resolution_times": oracle_resolution(events),
        "error_types_ranked": oracle_errors(events),
    }


# --- reading the marts ---------------------------------------------------------------------


def read_table(db: Database, sql: str) -> tuple[list[str], list[tuple]]:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("set time zone 'UTC'")
            cur.execute(sql)
            return [column.name for column in cur.description], cur.fetchall()
    finally:
        conn.close()


Snapshot = dict[str, tuple[list[str], list[tuple]]]


def snapshot(db: Database) -> Snapshot:
    """Every row of every conversation mart, in primary-key order, exactly as stored."""
    return {
        mart: read_table(db, f"select * from marts.{mart} order by {key}")
        for mart, key in MARTS.items()
    }


def keyed(snap: Snapshot, mart: str) -> dict[Any, dict[str, Any]]:
    columns, rows = snap[mart]
    key = columns.index(MARTS[mart])
    return {row[key]: dict(zip(columns, row, strict=True)) for row in rows}


def same(actual: Any, expected: Any) -> bool:
    """Exact for text, integers, booleans and timestamps; to 1e-6 for numerics."""
    if isinstance(actual, Decimal | float) and isinstance(expected, int | float):
        return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-6)
    return actual == expected and type(actual) is type(expected)


def assert_marts_match_oracle(snap: Snapshot, events: list[Ev]) -> None:
    for mart, expected_rows in oracle(events).items():
        actual = keyed(snap, mart)
        assert set(actual) == set(expected_rows), mart
        # Every column is checked, except the load bookkeeping the oracle cannot know.
        columns = set(snap[mart][0]) - {MARTS[mart], "last_loaded_at"}
        assert columns == set(next(iter(expected_rows.values()))), mart
        for key, expected in expected_rows.items():
            row = actual[key]
            wrong = {
                column: (row[column], value)
                for column, value in expected.items()
                if not same(row[column], value)
            }
            assert not wrong, f"{mart} {key}: (actual, expected) {wrong}"


# --- the pipeline, once per module ---------------------------------------------------------


@dataclass
class Stage:
    """The events loaded so far and the marts after the incremental build (and a full one)."""

    events: list[Ev]
    incremental: Snapshot
    full_refresh: Snapshot | None = None


@pytest.fixture(scope="module")
def pipeline(
    module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Build on empty raw tables, then three loads, each followed by an incremental build."""
    folder = tmp_path_factory.mktemp("conversation_batches")
    stages: dict[str, Any] = {"empty": dbt("build", *SELECT), "empty_marts": snapshot(module_db)}

    run_loader(
        module_db,
        "load",
        str(write_ndjson(folder / "load1-conversations.ndjson", LOAD_1_NDJSON)),
        str(write_document(folder / "load1-collector-post.json", LOAD_1_DOCUMENT)),
    )
    dbt("build", *SELECT)
    stages["load_1"] = Stage(unique_events(LOAD_1_NDJSON, LOAD_1_DOCUMENT), snapshot(module_db))

    run_loader(module_db, "load", str(write_ndjson(folder / "load2-late.ndjson", LOAD_2)))
    dbt("build", *SELECT)
    stage = Stage(unique_events(LOAD_1_NDJSON, LOAD_1_DOCUMENT, LOAD_2), snapshot(module_db))
    dbt("build", *SELECT, "--full-refresh")
    stage.full_refresh = snapshot(module_db)
    stages["load_2"] = stage

    run_loader(module_db, "load", str(write_document(folder / "load3-late.json", LOAD_3)))
    dbt("build", *SELECT, "--vars", "{lookback_hours: 0}")
    stage = Stage(
        unique_events(LOAD_1_NDJSON, LOAD_1_DOCUMENT, LOAD_2, LOAD_3), snapshot(module_db)
    )
    dbt("build", *SELECT, "--full-refresh")
    stage.full_refresh = snapshot(module_db)
    stages["load_3"] = stage
    return stages


def test_build_passes_on_empty_raw_tables(pipeline):
    assert pipeline["empty"].returncode == 0
    assert all(rows == [] for _, rows in pipeline["empty_marts"].values())


@pytest.mark.parametrize("load", ["load_1", "load_2", "load_3"])
def test_incremental_marts_hold_the_oracle_figures(pipeline, load):
    stage = pipeline[load]
    assert_marts_match_oracle(stage.incremental, stage.events)


@pytest.mark.parametrize("load", ["load_2", "load_3"])
def test_incremental_build_equals_full_refresh(pipeline, load):
    stage = pipeline[load]
    for mart in MARTS:
        assert stage.incremental[mart] == stage.full_refresh[mart], mart


def test_fixture_covers_two_hours_two_agents_and_every_outcome():
    conversations = oracle_conversations(unique_events(LOAD_1_NDJSON, LOAD_1_DOCUMENT))
    assert conversations["conv-a"]["agent_names"] == "triage, billing"
    assert conversations["conv-a"]["started_at"].hour == 9
    assert conversations["conv-a"]["ended_at"].hour == 10
    # 11:05+01:00 and 05:20-05:00 are 10:05 and 10:20 UTC.
    assert conversations["conv-a"]["duration_seconds"] == 30 * 60 + 1
    assert {row["outcome"] for row in conversations.values()} == {
        "completed",
        "errored",
        "handed_off",
        "abandoned",
    }


def test_late_events_change_the_marts(pipeline):
    before = keyed(pipeline["load_1"].incremental, "fct_conversations")
    after = keyed(pipeline["load_2"].incremental, "fct_conversations")
    assert after["conv-a"]["started_at"] == datetime(2026, 1, 5, 9, 49, tzinfo=UTC)
    # An event four days older than its conversation, loaded late, still lands.
    assert before["conv-d"]["started_at"] - after["conv-d"]["started_at"] == timedelta(days=4)
    assert (before["conv-b"]["outcome"], after["conv-b"]["outcome"]) == ("errored", "completed")
    assert "conv-f" in after
    # The replayed event was not counted twice.
    assert after["conv-a"]["messages"] == before["conv-a"]["messages"] + 1


def test_marts_agree_with_the_seed_queries(pipeline, module_db):
    """Seed 000's SQL, run on the same raw events, gives the marts' figures."""
    conn = module_db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("set time zone 'UTC'; set search_path to raw")
            # The seed's query without its 24-hour window (the mart keeps every hour).
            cur.execute(
                """
                SELECT date_trunc('hour', event_ts) AS hour,
                       COUNT(DISTINCT conversation_id) AS conversations
                FROM agent_events
                WHERE event_type = 'message'
                GROUP BY 1 ORDER BY 1
                """
            )
            seed_hourly = cur.fetchall()
            cur.execute(
                """
                SELECT agent_name,
                       AVG(EXTRACT(EPOCH FROM (max_ts - min_ts))) AS avg_seconds
                FROM (
                    SELECT conversation_id, agent_name,
                           MIN(event_ts) AS min_ts, MAX(event_ts) AS max_ts
                    FROM agent_events
                    GROUP BY conversation_id, agent_name
                ) sub
                GROUP BY agent_name
                """
            )
            seed_resolution = dict(cur.fetchall())
            cur.execute(
                """
                SELECT payload->>'error_type' AS error_type,
                       COUNT(*) AS occurrences
                FROM agent_events
                WHERE event_type = 'error'
                GROUP BY 1 ORDER BY 2 DESC LIMIT 10
                """
            )
            seed_top_errors = cur.fetchall()
    finally:
        conn.close()

    _, hourly = read_table(
        module_db,
        "select hour, conversations from marts.conversations_hourly"
        " where conversations > 0 order by hour",
    )
    assert hourly == seed_hourly
    _, resolution = read_table(
        module_db, "select agent_name, avg_resolution_seconds from marts.agent_resolution_times"
    )
    assert set(dict(resolution)) == set(seed_resolution)
    for agent, value in resolution:
        assert math.isclose(float(value), float(seed_resolution[agent]), abs_tol=1e-6), agent
    _, top = read_table(
        module_db,
        "select error_type, occurrences from marts.error_types_ranked where rank <= 10"
        " order by rank",
    )
    # Documented difference: the seed groups an empty error_type ("") apart from a missing
    # one (null); the marts count both as the null (unknown) error type.
    assert dict(seed_top_errors)[""] == 1 and dict(seed_top_errors)[None] == 2
    folded: Counter[str | None] = Counter()
    for error_type, occurrences in seed_top_errors:
        folded[error_type or None] += occurrences
    # Same occurrences in the same order; among ties the seed's order is unspecified.
    assert [n for _, n in top] == sorted(folded.values(), reverse=True)
    assert dict(top) == dict(folded)


def test_errors_without_a_usable_type_are_counted_as_the_null_type(pipeline):
    # By hand: conv-g's two errors (type missing, type null) in load 1; conv-f's error with
    # type "" joins them in load 3.
    assert keyed(pipeline["load_1"].incremental, "error_types_ranked")[None]["occurrences"] == 2
    final = keyed(pipeline["load_3"].incremental, "error_types_ranked")
    assert (final[None]["occurrences"], final[None]["conversations"]) == (3, 2)
    assert "" not in final
    conversations = keyed(pipeline["load_1"].incremental, "fct_conversations")
    assert (conversations["conv-g"]["errors"], conversations["conv-g"]["outcome"]) == (2, "errored")


def test_an_error_without_a_type_still_ends_its_conversation(pipeline):
    # escalation's only conversation: a message at 15:00:00, errors at 15:00:40 and 15:01:30.
    # Quarantining the untyped errors would make it 0 seconds.
    agents = keyed(pipeline["load_1"].incremental, "agent_resolution_times")
    assert agents["escalation"]["avg_resolution_seconds"] == Decimal(90)


def test_a_timestamp_rounds_into_the_next_hour_as_postgresql_reads_it(pipeline, module_db):
    # The seed's ETL inserts the timestamp text and PostgreSQL rounds it: 16:00:00, not 15:59.
    text = "2026-01-05T15:59:59.9999999"
    _, [(cast,)] = read_table(module_db, f"select cast('{text}' as timestamptz)")
    assert cast == datetime(2026, 1, 5, 16, tzinfo=UTC)
    conversations = keyed(pipeline["load_1"].incremental, "fct_conversations")
    assert conversations["conv-h"]["started_at"] == cast
    hourly = keyed(pipeline["load_1"].incremental, "conversations_hourly")
    sixteen, fifteen = datetime(2026, 1, 5, 16, tzinfo=UTC), datetime(2026, 1, 5, 15, tzinfo=UTC)
    assert (hourly[sixteen]["conversations"], hourly[fifteen]["conversations"]) == (1, 1)
