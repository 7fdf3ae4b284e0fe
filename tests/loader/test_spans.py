"""The span contract's reading of OTLP: protobuf written as the OTLP bindings' own JSON
mapping, and OTLP JSON read with the types that mapping defines."""

from __future__ import annotations

import base64
import re
import time

import pytest
import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from loader.ingest.contract import ContractError
from loader.ingest.spans import KEYED_ATTRIBUTES, checked_json_span, decode_protobuf
from tests.conftest import REPO


def _every_field() -> ExportTraceServiceRequest:
    """A request using every field the OTLP trace protos have, and every AnyValue kind."""
    now = time.time_ns()
    values = [
        KeyValue(key="s", value=AnyValue(string_value="text")),
        KeyValue(key="b", value=AnyValue(bool_value=True)),
        KeyValue(key="i", value=AnyValue(int_value=-(1 << 63))),
        KeyValue(key="d", value=AnyValue(double_value=0.1)),
        KeyValue(key="nan", value=AnyValue(double_value=float("nan"))),
        KeyValue(key="inf", value=AnyValue(double_value=float("-inf"))),
        KeyValue(key="bytes", value=AnyValue(bytes_value=b"\x00\xff")),
        KeyValue(key="empty", value=AnyValue()),
    ]
    values.append(
        KeyValue(
            key="nested",
            value=AnyValue(array_value={"values": [AnyValue(kvlist_value={"values": values[:3]})]}),
        )
    )
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add(schema_url="https://r")
    resource_spans.resource.attributes.extend(values[:2])
    resource_spans.resource.dropped_attributes_count = 3
    scope_spans = resource_spans.scope_spans.add(schema_url="https://s")
    scope_spans.scope.name, scope_spans.scope.version = "scope", "1.0"
    scope_spans.scope.attributes.extend(values[:1])
    span = scope_spans.spans.add(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8, 16)),
        parent_span_id=bytes(range(1, 9)),
        trace_state="k=v",
        flags=257,
        name="span",
        kind=5,
        start_time_unix_nano=now - 10,
        end_time_unix_nano=now,
        dropped_attributes_count=1,
        dropped_events_count=2,
        dropped_links_count=4,
    )
    span.attributes.extend(values)
    span.events.add(time_unix_nano=now - 5, name="event", dropped_attributes_count=7)
    span.events[0].attributes.extend(values[:2])
    span.links.add(trace_id=bytes(16), span_id=bytes(8), trace_state="x", flags=1)
    span.status.code, span.status.message = 2, "failed"
    scope_spans.spans.add(span_id=b"\x01" * 8)  # defaults everywhere, no status
    request.resource_spans.add()  # empty
    return request


def _hex_ids(value: object) -> object:
    """MessageToDict's output with ids hex, as OTLP JSON writes them."""
    if isinstance(value, list):
        return [_hex_ids(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {
        key: base64.b64decode(item).hex()
        if key in ("traceId", "spanId", "parentSpanId")
        else _hex_ids(item)
        for key, item in value.items()
    }


def test_protobuf_is_written_as_the_bindings_json_mapping_with_hex_ids() -> None:
    request = _every_field()
    expected = _hex_ids(json_format.MessageToDict(request, use_integers_for_enums=True))
    assert decode_protobuf(request.SerializeToString()) == expected


def test_garbage_is_not_an_export_request() -> None:
    with pytest.raises(ValueError, match="not a protobuf ExportTraceServiceRequest"):
        decode_protobuf(b"\xff\xff\xff\xff")


def _span(**changes: object) -> dict:
    now = time.time_ns()
    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",  # hex is case-insensitive in OTLP JSON
        "spanId": "00f067aa0ba902b7",
        "name": "chat",
        "kind": "SPAN_KIND_CLIENT",  # an enum by name, as protobuf's JSON mapping allows
        "startTimeUnixNano": now - 1000,  # a JSON integer as well as a string
        "endTimeUnixNano": str(now),
        "status": {"code": "STATUS_CODE_ERROR"},
    }
    span.update(changes)
    return span


def test_otlp_json_reads_enum_names_integers_and_hex_in_any_case() -> None:
    values = checked_json_span({}, {}, _span())
    assert values["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert (values["kind"], values["status_code"], values["duration_ns"]) == (
        "client",
        "error",
        1000,
    )


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"kind": 9}, "kind"),
        ({"startTimeUnixNano": "12x"}, "startTimeUnixNano: expected an integer"),
        ({"startTimeUnixNano": True}, "startTimeUnixNano: expected an integer"),
        ({"name": 5}, "name: expected a string"),
        ({"attributes": [{"key": "k", "value": {"intValue": "1" * 20}}]}, "intValue"),
        ({"attributes": [{"key": "k", "value": {"doubleValue": "NaN"}}]}, "doubleValue"),
        ({"attributes": [{"key": "k", "value": {"bytesValue": "%%%"}}]}, "not base64"),
        ({"attributes": {"k": "v"}}, "expected a JSON array"),
        ({"spanId": "0000000000000000"}, "all-zero"),
        ({"name": "a\u200bb"}, "U\\+200B"),
        ({"attributes": [{"key": f"k{n}", "value": {}} for n in range(129)]}, "more than 128"),
        ({"events": [{"name": "e", "timeUnixNano": "1"}] * 129}, "at most 128"),
        ({"startTimeUnixNano": "1", "endTimeUnixNano": "2"}, "before 2000-01-01"),
        (
            {"attributes": [{"key": "tenant.id", "value": {"stringValue": "t" * 257}}]},
            "tenant.id is longer than 256 bytes",
        ),
        (
            {"attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "é" * 129}}]},
            "gen_ai.request.model is longer than 256 bytes",
        ),
    ],
)
def test_a_span_breaking_the_contract_says_why(changes: dict, fragment: str) -> None:
    with pytest.raises(ContractError, match=fragment):
        checked_json_span({}, {}, _span(**changes))


def test_attribute_values_read_as_the_protobuf_json_mapping_defines_them() -> None:
    """Strings under string keys (read without the general path) and every other shape."""
    attributes = [
        {"key": "s", "value": {"stringValue": "text"}},
        {"key": "first", "value": {"stringValue": "wins", "intValue": "3"}},
        {"key": "null", "value": {"stringValue": None}},
        {"key": "i", "value": {"intValue": "-7"}},
        {"key": "s", "value": {"boolValue": False}},  # a repeated key: the last one wins
        {"key": "kv", "value": {"kvlistValue": {"values": [{"value": {"stringValue": "x"}}]}}},
    ]
    values = checked_json_span({"r": "v"}, {}, _span(attributes=attributes))
    assert values["attributes"] == {
        "s": False,
        "first": "wins",
        "null": "",
        "i": -7,
        "kv": {"": "x"},
    }
    with pytest.raises(ContractError, match="attributes: a stringValue: expected a string"):
        checked_json_span({}, {}, _span(attributes=[{"key": "k", "value": {"stringValue": 5}}]))
    with pytest.raises(ContractError, match="attributes: a key: expected a string"):
        checked_json_span({}, {}, _span(attributes=[{"key": 5, "value": {"stringValue": "v"}}]))
    with pytest.raises(ContractError, match="an attribute key is empty"):
        checked_json_span({}, {}, _span(attributes=[{"key": None, "value": {"stringValue": "v"}}]))


def test_a_keyed_attribute_at_the_bound_loads_and_a_long_prompt_is_not_keyed() -> None:
    attributes = [
        {"key": "tenant.id", "value": {"stringValue": "t" * 256}},
        {"key": "input.value", "value": {"stringValue": "a prompt " * 10_000}},
    ]
    checked_json_span({}, {}, _span(attributes=attributes))


def test_every_attribute_staging_reads_as_an_id_or_a_name_is_bounded() -> None:
    """The keys `stg_otel__genai_operations` reads with otel_text (and the default tenant and
    user attribute vars) are the contract's KEYED_ATTRIBUTES, apart from the span kinds it
    only compares with fixed values."""
    sql = (REPO / "models" / "staging" / "otel" / "stg_otel__genai_operations.sql").read_text()
    read: set[str] = set()
    for call in re.findall(r"otel_text\(\s*\[([^\]]*)\]", sql):
        read.update(re.findall(r"'([^']+)'", call))
    project = yaml.safe_load((REPO / "dbt_project.yml").read_text())["vars"]
    read |= {project["otel_tenant_attribute"], *project["otel_user_attributes"]}
    compared_only = {"openinference.span.kind", "traceloop.span.kind", "llm.request.type"}
    assert read - compared_only == KEYED_ATTRIBUTES
    assert len(read) > 15
