"""OpenTelemetry spans in: a real OTLP exporter against `agent-loader serve`, then `load`.

The OpenTelemetry SDK's own OTLP/HTTP exporter (protobuf) sends spans to `POST /v1/traces`;
what raw.spans holds after `agent-loader load` is compared with what the SDK recorded (an
in-memory exporter beside the OTLP one), value by value. OTLP JSON (gzip), a partly invalid
request (partialSuccess), refusals (400, 413, a bound key), a Collector `file` exporter
file, duplicates, retention and erasure are each tried on their own.
"""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from loader.ingest.privacy import TOKEN_KEY_VARIABLE, Privacy
from tests.conftest import REPO, Database, run_loader
from tests.serve.conftest import request

TRACE = "5b8efff798038103d269b633813fc60c"
KEY = "k" * 20 + "-otlp-key"


# --- what the SDK recorded, as raw.spans should hold it --------------------------------------


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _iso(nanos: int) -> str:
    moment = datetime.fromtimestamp(nanos // 1_000_000_000, timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos % 1_000_000_000:09d}Z"


def _expected(span: ReadableSpan) -> dict[str, Any]:
    """A span the SDK recorded, in raw.spans' columns, computed from the SDK's own objects."""
    assert span.start_time is not None and span.end_time is not None
    return {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.name.lower(),
        "start_time": datetime(1970, 1, 1, tzinfo=timezone.utc)
        + timedelta(microseconds=span.start_time // 1000),
        "duration_ns": span.end_time - span.start_time,
        "status_code": span.status.status_code.name.lower(),
        "status_message": span.status.description,
        "attributes": {key: _json_value(value) for key, value in span.attributes.items()},
        "resource_attributes": dict(span.resource.attributes),
        "scope_name": span.instrumentation_scope.name,
        "scope_version": span.instrumentation_scope.version,
        "events": [
            {
                "name": event.name,
                "time": _iso(event.timestamp),
                "attributes": {k: _json_value(v) for k, v in event.attributes.items()},
            }
            for event in span.events
        ],
    }


_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, start_time, duration_ns, status_code,"
    " status_message, attributes, resource_attributes, scope_name, scope_version, events"
)


def _stored(db: Database) -> dict[str, dict[str, Any]]:
    names = [column.strip() for column in _COLUMNS.split(",")]
    rows = db.query(f"select {_COLUMNS} from raw.spans")
    return {row[1]: dict(zip(names, row, strict=True)) for row in rows}


def _emit(url: str, compression: Compression = Compression.NoCompression, **headers: str):
    """Spans of a small agent run, sent by the SDK's OTLP/HTTP exporter; what it recorded."""
    memory = InMemorySpanExporter()
    exporter = OTLPSpanExporter(endpoint=url, compression=compression, headers=headers or None)
    provider = TracerProvider(
        resource=Resource.create({"tenant.id": "t-acme", "service.name": "support-agent"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent.instrumentation", "2.1.0")
    with tracer.start_as_current_span(
        "invoke_agent support", attributes={"user.id": "u-42", "gen_ai.agent.name": "support"}
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 345,
                "gen_ai.request.temperature": 0.25,
                "gen_ai.response.finish_reasons": ("stop",),
                "gen_ai.request.stream": False,
            },
        ) as call:
            call.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop"})
        with tracer.start_as_current_span("execute_tool search") as tool:
            tool.set_status(Status(StatusCode.ERROR, "search timed out"))
    provider.shutdown()
    return memory.get_finished_spans()


def test_spans_sent_by_the_sdk_exporter_load_as_they_were_recorded(
    start_serve, db: Database
) -> None:
    server = start_serve()
    recorded = _emit(server.url + "/v1/traces")
    assert len(recorded) == 3

    run_loader(db, "load", str(server.landing))

    stored = _stored(db)
    expected = {span["span_id"]: span for span in map(_expected, recorded)}
    assert stored == expected
    # the int attribute is a JSON integer, the double a number, the tuple an array
    call = next(span for span in expected.values() if span["name"] == "chat gpt-4o")
    assert stored[call["span_id"]]["attributes"]["gen_ai.usage.input_tokens"] == 1200
    assert stored[call["span_id"]]["kind"] == "client"
    ledger = db.query(
        "select sum(records_read), sum(loaded), sum(spans_loaded), sum(quarantined)"
        " from raw.load_batches where status = 'loaded'"
    )
    assert ledger == [(3, 3, 3, 0)]


def test_gzip_protobuf_from_the_sdk_loads_the_same(start_serve, db: Database) -> None:
    server = start_serve()
    recorded = _emit(server.url + "/v1/traces", Compression.Gzip)
    run_loader(db, "load", str(server.landing))
    assert _stored(db) == {span["span_id"]: span for span in map(_expected, recorded)}


# --- OTLP JSON -----------------------------------------------------------------------------


def _now_ns() -> int:
    return time.time_ns()


def _json_span(span_id: str, **changes: Any) -> dict[str, Any]:
    end = _now_ns()
    span = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": "chat claude-sonnet",
        "kind": 3,
        "startTimeUnixNano": str(end - 2_500_000_123),
        "endTimeUnixNano": str(end),
        "attributes": [
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "9007199254740993"}},
            {"key": "cost", "value": {"doubleValue": 0.0125}},
            {"key": "ok", "value": {"boolValue": True}},
            {"key": "blob", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}},
            {
                "key": "messages",
                "value": {
                    "arrayValue": {
                        "values": [
                            {
                                "kvlistValue": {
                                    "values": [
                                        {"key": "role", "value": {"stringValue": "user"}},
                                        {"key": "n", "value": {"intValue": 2}},
                                    ]
                                }
                            }
                        ]
                    }
                },
            },
        ],
        "events": [
            {"timeUnixNano": str(end - 1), "name": "retry", "attributes": []},
        ],
        "status": {"code": 1},
    }
    span.update(changes)
    return span


def _json_request(*spans: dict[str, Any], user: str = "u-7") -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "tenant.id", "value": {"stringValue": "t-json"}},
                        {"key": "user.id", "value": {"stringValue": user}},
                    ]
                },
                "scopeSpans": [{"scope": {"name": "otlp-json"}, "spans": list(spans)}],
            }
        ]
    }


def _post(server, body: bytes, content_type: str = "application/json", **headers: str):
    return request(server.url + "/v1/traces", body, content_type, headers=headers)


def test_otlp_json_with_gzip_loads_every_value_type(start_serve, db: Database) -> None:
    server = start_serve()
    span = _json_span("00000000000000a1")
    body = gzip.compress(json.dumps(_json_request(span)).encode())
    reply = _post(server, body, **{"Content-Encoding": "gzip"})
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json == {}  # fully accepted: no partialSuccess

    run_loader(db, "load", str(server.landing))
    row = _stored(db)["00000000000000a1"]
    end = int(span["endTimeUnixNano"])
    assert row["attributes"] == {
        "gen_ai.usage.input_tokens": 9007199254740993,  # sent as a string, stored exactly
        "cost": 0.0125,
        "ok": True,
        "blob": "AAE=",
        "messages": [{"role": "user", "n": 2}],
    }
    assert row["resource_attributes"] == {"tenant.id": "t-json", "user.id": "u-7"}
    assert row["kind"] == "client" and row["status_code"] == "ok"
    assert row["status_message"] is None and row["parent_span_id"] is None
    assert row["duration_ns"] == 2_500_000_123
    assert row["events"] == [{"name": "retry", "time": _iso(end - 1), "attributes": {}}]
    assert (row["scope_name"], row["scope_version"]) == ("otlp-json", None)


def test_invalid_spans_are_answered_in_partial_success_and_quarantined_alone(
    start_serve, db: Database
) -> None:
    server = start_serve()
    good = _json_span("00000000000000b1")
    no_hex = _json_span("not-hex-at-all!!")
    backwards = _json_span(
        "00000000000000b3", startTimeUnixNano=good["endTimeUnixNano"], endTimeUnixNano="1"
    )
    reply = _post(server, json.dumps(_json_request(good, no_hex, backwards)).encode())
    assert reply.status == 200
    partial = reply.json["partialSuccess"]
    assert partial["rejectedSpans"] == "2"  # int64: a string in OTLP JSON
    assert "spanId: not 16 hex digits" in partial["errorMessage"]
    assert "ends before it starts" in partial["errorMessage"]

    # the same in protobuf: the answer is a protobuf ExportTraceServiceResponse
    message = ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = bytes.fromhex(TRACE), b"\x00" * 8, "zero id"
    span.start_time_unix_nano = span.end_time_unix_nano = _now_ns()
    reply = _post(server, message.SerializeToString(), "application/x-protobuf")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(reply.body)
    assert answer.partial_success.rejected_spans == 1
    assert "all-zero" in answer.partial_success.error_message

    run_loader(db, "load", str(server.landing))
    assert set(_stored(db)) == {"00000000000000b1"}
    quarantined = db.query(
        "select span_index, reason, raw_text::jsonb from raw.quarantine"
        " order by batch_id, position, span_index"
    )
    assert [(index, reason.split(":")[0]) for index, reason, _ in quarantined] == [
        (2, "span spanId"),
        (3, "span end_time"),
        (1, "span span_id"),
    ]
    # the quarantine keeps the span as a one-span request, with its resource: it loads again
    assert quarantined[0][2]["resourceSpans"][0]["scopeSpans"][0]["spans"] == [no_hex]
    assert quarantined[0][2]["resourceSpans"][0]["resource"]["attributes"][0]["key"] == "tenant.id"
    ledger = db.query(
        "select sum(records_read), sum(loaded), sum(duplicates), sum(quarantined)"
        " from raw.load_batches where status = 'loaded'"
    )
    assert ledger == [(4, 1, 0, 3)]


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"\xff\xff\xff not protobuf", "application/x-protobuf", "not a protobuf"),
        (b'{"resourceSpans": [', "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "JSON object"),
        (b'{"resourceSpans": {"a": 1}}', "application/json", "array of objects"),
    ],
)
def test_a_body_that_is_no_export_request_gets_400(
    start_serve, body: bytes, content_type: str, fragment: str
) -> None:
    server = start_serve()
    reply = _post(server, body, content_type)
    assert reply.status == 400
    assert reply.headers["Content-Type"] == content_type
    if content_type == "application/json":
        assert reply.json["code"] == 3  # INVALID_ARGUMENT
        message = reply.json["message"]
    else:  # a protobuf google.rpc.Status, as OTLP/HTTP asks
        answer = RpcStatus.FromString(reply.body)
        assert answer.code == 3
        message = answer.message
    assert fragment in message
    assert server.batch_files() == []


def test_bodies_over_the_limits_get_413(start_serve) -> None:
    server = start_serve("--max-body-bytes", "4096")
    big = _json_request(*[_json_span(f"{n:016x}") for n in range(1, 40)])
    reply = _post(server, json.dumps(big).encode())
    assert reply.status == 413
    # more spans than a request may hold (a span is a record: MAX_RECORDS_PER_REQUEST)
    server = start_serve()
    message = ExportTraceServiceRequest()
    spans = message.resource_spans.add().scope_spans.add().spans
    for n in range(10_001):
        spans.add(trace_id=bytes.fromhex(TRACE), span_id=(n + 1).to_bytes(8, "big"))
    reply = _post(server, message.SerializeToString(), "application/x-protobuf")
    assert reply.status == 413
    assert "more than 10000 records" in RpcStatus.FromString(reply.body).message
    assert server.batch_files() == []


def test_keys_are_checked_and_a_bound_key_may_not_write_spans(tmp_path: Path, start_serve) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"open:{KEY}\nbound:{'b' * 24} publisher=pub-1\n")
    server = start_serve("--keys-file", str(keys))
    body = json.dumps(_json_request(_json_span("00000000000000c1"))).encode()
    assert _post(server, body).status == 401
    assert _post(server, body, Authorization=f"Bearer {KEY}").json == {}
    bound = _post(server, body, Authorization=f"Bearer {'b' * 24}")
    assert bound.status == 200
    assert bound.json["partialSuccess"]["rejectedSpans"] == "1"
    assert "may not write spans" in bound.json["partialSuccess"]["errorMessage"]
    assert len(server.batch_files()) == 1  # the bound key's spans were not written


# --- files: the Collector's file exporter, duplicates, retention, erasure ------------------------


def _file(path: Path, *requests: dict[str, Any]) -> Path:
    """An OTLP JSON lines file as the Collector's `file` exporter writes it, gzip."""
    path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in requests)))
    return path


def test_a_collector_file_loads_exactly_once_and_counts_duplicates_and_conflicts(
    tmp_path: Path, db: Database
) -> None:
    d1 = _json_span("00000000000000d1")
    first = _file(
        tmp_path / "traces-1.json.gz",
        _json_request(d1, _json_span("00000000000000d2")),
        _json_request(_json_span("00000000000000d3")),
    )
    result = json.loads(run_loader(db, "load", str(first), "--json").stdout)[0]
    assert (result["records_read"], result["spans_loaded"], result["loaded"]) == (3, 3, 3)
    assert result["file_format"] == "ndjson.gz"
    again = json.loads(run_loader(db, "load", str(first), "--json").stdout)[0]
    assert again["status"] == "skipped"

    # a retried export: d1 as before, d2 changed (a conflict: the first copy stays), d4 new
    retried = _file(
        tmp_path / "traces-2.json.gz",
        _json_request(
            d1, _json_span("00000000000000d2", name="renamed"), _json_span("00000000000000d4")
        ),
    )
    result = json.loads(run_loader(db, "load", str(retried), "--json").stdout)[0]
    assert (result["records_read"], result["loaded"], result["duplicates"]) == (3, 1, 2)
    assert result["conflicts"] == 1
    assert db.scalar("select count(*) from raw.spans") == 4
    assert db.scalar("select name from raw.spans where span_id = '00000000000000d2'") == (
        "chat claude-sonnet"
    )
    conflicts = db.query(
        "select event_table, event_id, sender, record->>'name' from raw.conflicts order by 2"
    )
    assert conflicts == [("spans", "00000000000000d2", TRACE, "renamed")]
    assert (
        db.scalar(
            "select count(*) from raw.load_batches where status = 'loaded'"
            " and records_read <> loaded + duplicates + quarantined"
        )
        == 0
    )


def test_identical_retry_is_a_duplicate_without_conflict(tmp_path: Path, db: Database) -> None:
    request_json = _json_request(_json_span("00000000000000e1"))
    _file(tmp_path / "a.json.gz", request_json)
    # the same request in another file (not gzip: the same bytes would be skipped as loaded)
    (tmp_path / "b.jsonl").write_text(json.dumps(request_json) + "\n")
    run_loader(db, "load", str(tmp_path))
    assert db.query(
        "select sum(loaded), sum(duplicates), sum(conflicts) from raw.load_batches"
    ) == [(1, 1, 0)]


def test_erasure_removes_a_users_and_a_tenants_spans(tmp_path: Path, db: Database) -> None:
    on_span = _json_span(
        "00000000000000f1",
        attributes=[{"key": "enduser.id", "value": {"stringValue": "u-erase"}}],
    )
    _file(
        tmp_path / "t.json.gz",
        _json_request(_json_span("00000000000000f0"), user="u-erase"),  # on the resource
        _json_request(on_span, user="u-keep"),
        _json_request(_json_span("00000000000000f2"), user="u-keep"),
    )
    run_loader(db, "load", str(tmp_path))
    erased = json.loads(run_loader(db, "purge", "--user", "u-erase", "--json").stdout)
    assert erased["spans"] == 2
    assert {row[0] for row in db.query("select span_id from raw.spans")} == {"00000000000000f2"}
    assert db.scalar("select spans from raw.purges where erased = 'user'") == 2
    erased = json.loads(run_loader(db, "purge", "--tenant", "t-json", "--json").stdout)
    assert erased["spans"] == 1
    assert db.scalar("select count(*) from raw.spans") == 0
    # the ledger still reconciles: purged spans are credited to their batch
    assert db.query("select loaded, purged_events from raw.load_batches") == [(3, 3)]


def test_retention_purges_spans_by_start_time(tmp_path: Path, db: Database) -> None:
    old_end = _now_ns() - 10 * 86_400 * 10**9
    old = _json_span(
        "0000000000000101",
        startTimeUnixNano=str(old_end - 1000),
        endTimeUnixNano=str(old_end),
        events=[],
    )
    _file(tmp_path / "r.json.gz", _json_request(old, _json_span("0000000000000102")))
    run_loader(db, "load", str(tmp_path))
    purged = json.loads(run_loader(db, "purge", "--older-than", "5d", "--json").stdout)
    assert purged["spans"] == 1
    assert [row[0] for row in db.query("select span_id from raw.spans")] == ["0000000000000102"]


def test_a_protected_warehouse_tokenizes_span_users_and_masks_their_text(
    tmp_path: Path, db: Database
) -> None:
    key = "0123456789abcdef0123456789abcdef"
    env = {**db.env, TOKEN_KEY_VARIABLE: key}

    def loader(*args: str) -> dict:
        command = [sys.executable, "-m", "loader", *args, "--json"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    loader("init", "--tokenize-users", "--redact", "mask")
    private = [
        {"key": "enduser.id", "value": {"stringValue": "u-private"}},
        {"key": "prompt", "value": {"stringValue": "mail me at ana@example.com"}},
    ]
    valid = _json_span("0000000000000201", attributes=private)
    broken = _json_span("0000000000000202", attributes=private, endTimeUnixNano="1")
    _file(tmp_path / "p.json.gz", _json_request(valid, broken, user="u-resource"))
    loader("load", str(tmp_path))

    token = Privacy(key=key.encode()).token
    attributes, resource = db.query("select attributes, resource_attributes from raw.spans")[0]
    assert attributes["enduser.id"] == token("u-private")
    assert attributes["prompt"] == "mail me at [EMAIL]"
    assert resource["user.id"] == token("u-resource")
    quarantined = db.scalar("select raw_text from raw.quarantine")
    assert "u-private" not in quarantined and "ana@example.com" not in quarantined
    assert token("u-private") in quarantined
    # the clear id still finds the user's spans and quarantined spans
    erased = loader("purge", "--user", "u-private")
    assert (erased["spans"], erased["quarantine"]) == (1, 1)


def test_a_full_landing_folder_answers_503_with_retry_after(start_serve) -> None:
    server = start_serve("--max-spool-bytes", "0")  # every byte is too many
    body = json.dumps(_json_request(_json_span("0000000000000301"))).encode()
    reply = _post(server, body)
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "2"  # OTLP exporters retry after it
    assert reply.json["code"] == 14  # UNAVAILABLE
    assert server.batch_files() == []
