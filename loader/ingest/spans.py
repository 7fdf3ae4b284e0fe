"""The span contract: OpenTelemetry spans (OTLP) as raw.spans keeps them, one row per span.

Spans arrive as OTLP export requests (`ExportTraceServiceRequest`): from `agent-loader
serve` (`POST /v1/traces`, protobuf or JSON), which writes each request it accepts as OTLP
JSON lines, and from the OpenTelemetry Collector's `file` exporter, which writes one request
per line. Both are read here, from the same OTLP JSON, with the project's OTLP bindings
(`opentelemetry-proto`):

- OTLP JSON differs from protobuf's canonical JSON mapping in one way that matters: trace
  and span ids are hex, not base64 (`bytesValue` attributes stay base64). Each span's ids
  are turned into base64 and the span is then parsed by `google.protobuf.json_format`, so
  the bindings check every field's type (integer enums, 64-bit integers sent as strings,
  unknown fields ignored as OTLP asks) and nothing here re-implements OTLP's schema.
- A protobuf request (`decode_protobuf`) is turned into the same OTLP JSON
  (`json_format.MessageToDict`, ids to hex): the landing folder only ever holds OTLP JSON,
  and a file is self-describing.

Each span is a record: it is validated on its own (`span_values`, then the pydantic model
`SpanRecord`) and a span that breaks the contract is quarantined alone, the other spans of
its request loaded. What a span carries that raw.spans has no column for (links, dropped
counts, flags, trace state, schema URLs) is not kept.

Attribute values become JSON (docs/opentelemetry.md): stringValue a string, boolValue a
boolean, intValue an integer, doubleValue a number, arrayValue an array, kvlistValue an
object, bytesValue its base64 text; events become `[{"name", "time", "attributes"}]`, `time`
ISO 8601 in UTC to the nanosecond.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from loader.ingest.contract import ContractError, Name, check_window
from loader.limits import MAX_DEPTH, MAX_NAME_BYTES, MAX_SPAN_ATTRIBUTES, MAX_SPAN_EVENTS

SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
"""`Span.SpanKind` by number (OTLP sends the number), as raw.spans stores it."""
STATUS_CODES = ("unset", "ok", "error")
"""`Status.StatusCode` by number."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_BIGINT = (1 << 63) - 1
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def is_export_request(value: Any) -> bool:
    """Is a decoded JSON line an OTLP export request (an object with `resourceSpans`)?"""
    return isinstance(value, dict) and "resourceSpans" in value


# --- the contract ---------------------------------------------------------------------------


def _attributes_fit(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_SPAN_ATTRIBUTES:
        raise ValueError(f"more than {MAX_SPAN_ATTRIBUTES} attributes")
    for key in value:
        if not key:
            raise ValueError("an attribute key is empty")
        if len(key) > MAX_NAME_BYTES // 4 and len(key.encode("utf-8", "surrogatepass")) > (
            MAX_NAME_BYTES
        ):
            raise ValueError(f"an attribute key is longer than {MAX_NAME_BYTES} bytes (UTF-8)")
    return value


Attributes = Annotated[dict[str, Any], AfterValidator(_attributes_fit)]
HexId = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]+$")]


def _not_zero(value: str) -> str:
    if value.strip("0") == "":
        raise ValueError("an all-zero id is invalid (OTLP)")
    return value


TraceId = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{32}$"), AfterValidator(_not_zero)]
SpanId = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{16}$"), AfterValidator(_not_zero)]
SpanTime = Annotated[datetime, AfterValidator(check_window)]


class SpanEvent(BaseModel):
    """One event of a span, as raw.spans.events holds it."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    time: StrictStr
    attributes: Attributes


class SpanRecord(BaseModel):
    """One span as raw.spans stores it: the contract a span must meet to load.

    Bounds as for events (loader/limits.py): ids of OTLP's lengths, names within
    MAX_NAME_BYTES with no hidden characters, times in the accepted window, at most
    MAX_SPAN_ATTRIBUTES attributes (on the span, its resource, each event) and
    MAX_SPAN_EVENTS events, an end not before the start.
    """

    model_config = ConfigDict(extra="forbid")

    trace_id: TraceId
    span_id: SpanId
    parent_span_id: SpanId | None
    name: Name
    kind: Literal[SPAN_KINDS]  # type: ignore[valid-type]
    start_time: SpanTime
    end_time: SpanTime
    duration_ns: Annotated[StrictInt, Field(ge=0, le=_MAX_BIGINT)]
    status_code: Literal[STATUS_CODES]  # type: ignore[valid-type]
    status_message: StrictStr | None
    attributes: Attributes
    resource_attributes: Attributes
    scope_name: Name | None
    scope_version: Name | None
    events: Annotated[list[SpanEvent], Field(max_length=MAX_SPAN_EVENTS)]


def _describe(error: ValidationError) -> str:
    """One line per failed field, without the value (a span's values are the sender's)."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "span"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "span " + "; ".join(parts)


# --- OTLP values to JSON ----------------------------------------------------------------------


def _value(value: AnyValue, depth: int) -> Any:
    """An `AnyValue` as JSON (see the module docstring)."""
    if depth > MAX_DEPTH:
        raise ContractError(f"span attributes: nested too deeply (the limit is {MAX_DEPTH})")
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        number = value.double_value
        if not math.isfinite(number):
            raise ContractError("span attributes: a doubleValue is NaN or infinite (not JSON)")
        return number
    if which == "array_value":
        return [_value(item, depth + 1) for item in value.array_value.values]
    if which == "kvlist_value":
        return {item.key: _value(item.value, depth + 1) for item in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None  # an empty AnyValue


def _attributes(items: Any) -> dict[str, Any]:
    """Key-value pairs as a JSON object (a repeated key: the last one wins, as in the SDKs)."""
    return {item.key: _value(item.value, 1) for item in items}


def _time(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def iso_nanos(nanos: int) -> str:
    """Nanoseconds since the Unix epoch as ISO 8601 UTC text, to the nanosecond."""
    return f"{_time(nanos):%Y-%m-%dT%H:%M:%S}.{nanos % 1_000_000_000:09d}Z"


def span_values(resource: Resource, scope: InstrumentationScope, span: Span) -> dict[str, Any]:
    """A span as raw.spans' columns (before validation; `SpanRecord` checks them)."""
    kind = span.kind
    code = span.status.code
    return {
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None,
        "name": span.name,
        "kind": SPAN_KINDS[kind] if 0 <= kind < len(SPAN_KINDS) else f"unknown ({kind})",
        "start_time": _time(span.start_time_unix_nano),
        "end_time": _time(span.end_time_unix_nano),
        "duration_ns": span.end_time_unix_nano - span.start_time_unix_nano,
        "status_code": STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else f"unknown ({code})",
        "status_message": span.status.message or None,
        "attributes": _attributes(span.attributes),
        "resource_attributes": _attributes(resource.attributes),
        "scope_name": scope.name or None,
        "scope_version": scope.version or None,
        "events": [
            {
                "name": event.name,
                "time": iso_nanos(event.time_unix_nano),
                "attributes": _attributes(event.attributes),
            }
            for event in span.events
        ],
    }


def checked_span(resource: Resource, scope: InstrumentationScope, span: Span) -> dict[str, Any]:
    """A span's raw.spans values, validated; ContractError with the reason otherwise."""
    values = span_values(resource, scope, span)
    if values["duration_ns"] < 0:
        raise ContractError("span end_time: the span ends before it starts")
    try:
        SpanRecord.model_validate(values)
    except ValidationError as error:
        raise ContractError(_describe(error)) from None
    return values


# --- OTLP JSON -----------------------------------------------------------------------------


def _hex_to_base64(value: Any, where: str) -> Any:
    """An id as OTLP JSON sends it (hex) in the form protobuf's JSON mapping reads (base64)."""
    if not isinstance(value, str):
        return value  # the bindings refuse it, with the reason
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        raise ContractError(f"span {where}: not hex (OTLP JSON sends ids as hex)") from None


def _parse(value: Any, message: Any, what: str) -> Any:
    """A JSON value parsed into a protobuf message by the OTLP bindings, or ContractError."""
    if value is None:
        return message
    if not isinstance(value, dict):
        raise ContractError(f"{what}: expected a JSON object")
    try:
        return json_format.ParseDict(value, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ContractError(f"{what}: not OTLP ({reason[:200]})") from None


def parse_span(value: Any) -> Span:
    """One span of OTLP JSON as a protobuf `Span`, or ContractError."""
    if not isinstance(value, dict):
        raise ContractError("span: expected a JSON object")
    value = dict(value)
    for name in _ID_FIELDS:
        if name in value:
            value[name] = _hex_to_base64(value[name], name)
    links = value.get("links")
    if isinstance(links, list):
        value["links"] = [
            {
                **link,
                **{
                    name: _hex_to_base64(link[name], f"links.{name}")
                    for name in ("traceId", "spanId")
                    if name in link
                },
            }
            if isinstance(link, dict)
            else link
            for link in links
        ]
    return _parse(value, Span(), "span")


class SpanItem:
    """One span of a request as read: its number in the request (1-based), its OTLP JSON
    as a one-span request (the quarantine keeps that: it loads again as it is), and either
    its raw.spans values or the reason it is quarantined."""

    __slots__ = ("index", "reason", "request", "values")

    def __init__(
        self, index: int, request: dict[str, Any], values: dict | None, reason: str | None
    ) -> None:
        self.index = index
        self.request = request
        self.values = values
        self.reason = reason


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ContractError(f"{what}: expected a JSON array")
    return value


def request_spans(request: dict[str, Any]) -> list[SpanItem]:
    """Every span of an OTLP JSON export request, each validated on its own.

    ContractError when the request's own layout is broken (`resourceSpans` not an array of
    objects, and the like): then no span can be told apart and the line is one record.
    """
    items: list[SpanItem] = []
    for resource_spans in _list(request.get("resourceSpans"), "resourceSpans"):
        if not isinstance(resource_spans, dict):
            raise ContractError("resourceSpans: expected JSON objects")
        resource_json = resource_spans.get("resource")
        for scope_spans in _list(resource_spans.get("scopeSpans"), "resourceSpans.scopeSpans"):
            if not isinstance(scope_spans, dict):
                raise ContractError("resourceSpans.scopeSpans: expected JSON objects")
            scope_json = scope_spans.get("scope")
            spans = _list(scope_spans.get("spans"), "scopeSpans.spans")
            problem = None
            try:
                resource = _parse(resource_json, Resource(), "resource")
                scope = _parse(scope_json, InstrumentationScope(), "scope")
            except ContractError as error:
                problem = error.reason
            for span_json in spans:
                one = {"resourceSpans": [{"scopeSpans": [{"spans": [span_json]}]}]}
                if resource_json is not None:
                    one["resourceSpans"][0]["resource"] = resource_json
                if scope_json is not None:
                    one["resourceSpans"][0]["scopeSpans"][0]["scope"] = scope_json
                values, reason = None, problem
                if reason is None:
                    try:
                        values = checked_span(resource, scope, parse_span(span_json))
                    except ContractError as error:
                        reason = error.reason
                items.append(SpanItem(len(items) + 1, one, values, reason))
    return items


# --- protobuf ------------------------------------------------------------------------------


def decode_protobuf(body: bytes) -> dict[str, Any]:
    """A protobuf `ExportTraceServiceRequest` as OTLP JSON (ids hex); ValueError if the
    bytes are not one."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise ValueError(f"not a protobuf ExportTraceServiceRequest ({error})") from None
    value = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in value.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _ids_to_hex(span)
                for link in span.get("links", ()):
                    _ids_to_hex(link)
    return value


def _ids_to_hex(value: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        if name in value:
            try:
                value[name] = base64.b64decode(value[name]).hex()
            except binascii.Error:  # MessageToDict writes valid base64: never
                raise ValueError(f"{name} is not base64") from None
