"""Events exactly as the seeds' reference code produces them, and batch files of them."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def agent_event(**overrides: Any) -> dict[str, Any]:
    """Seed 000's `AgentEvent.to_dict()`: naive UTC timestamp from `utcnow().isoformat()`."""
    event = {
        "event_id": str(uuid.uuid4()),
        "conversation_id": "conv-1",
        "session_id": "sess-1",
        "event_type": "message",
        "timestamp": datetime(2026, 11, 1, 9, 30, 15, 250000).isoformat(),
        "agent_name": "triage",
        "user_id": "user-1",
        "payload": {"text": "Where is my order?", "role": "user"},
        "metadata": {"model": "gpt-4o-mini", "total_tokens": 42, "latency_ms": 310},
    }
    event.update(overrides)
    return event


def marketplace_event(**overrides: Any) -> dict[str, Any]:
    """Seed 004's `AnalyticsEvent` as JSON: enum value string, ISO timestamp with offset."""
    event = {
        "id": str(uuid.uuid4()),
        "event_type": "agent_completed",
        "agent_id": "agent-1",
        "publisher_id": "pub-1",
        "tenant_id": "tenant-1",
        "timestamp": datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc).isoformat(),
        "properties": {
            "input_tokens": 120,
            "output_tokens": 80,
            "tool_calls": ["search", "lookup"],
            "duration_ms": 1840,
            "cost_usd": 0.0125,
        },
    }
    event.update(overrides)
    return event


def otlp_attributes(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Attributes as OTLP JSON writes them (64-bit integers as strings)."""
    typed = {bool: "boolValue", int: "intValue", float: "doubleValue", str: "stringValue"}
    return [
        {"key": key, "value": {typed[type(value)]: str(value) if type(value) is int else value}}
        for key, value in values.items()
    ]


def spans_request(resource: dict[str, Any], *spans: dict[str, Any]) -> dict[str, Any]:
    """One OTLP JSON export request (a line of the collector's file exporter): `spans` under
    one resource (its attributes) and one instrumentation scope."""
    scope = {"name": "opentelemetry.instrumentation.openai", "version": "0.1"}
    scope_spans = [{"scope": scope, "spans": list(spans)}]
    return {
        "resourceSpans": [
            {"resource": {"attributes": otlp_attributes(resource)}, "scopeSpans": scope_spans}
        ]
    }


def write_ndjson(path: Path, records: list[Any], compress: bool = False) -> Path:
    text = "".join(json.dumps(record) + "\n" for record in records)
    return _write(path, text.encode(), compress)


def write_events_document(path: Path, records: list[Any], compress: bool = False) -> Path:
    """The body seed 000's `EventCollector` POSTs: {"events": [...]}."""
    return _write(path, json.dumps({"events": records}).encode(), compress)


def write_array(path: Path, records: list[Any], compress: bool = False) -> Path:
    return _write(path, json.dumps(records, indent=2).encode(), compress)


def _write(path: Path, data: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path
