"""The span contract: OpenTelemetry spans (OTLP) as raw.spans keeps them, one row per span.

Spans arrive as OTLP export requests (`ExportTraceServiceRequest`): from `agent-loader
serve` (`POST /v1/traces`, protobuf or JSON), which writes each request it accepts as OTLP
JSON lines, and from the OpenTelemetry Collector's `file` exporter, which writes one request
per line. Both are read here, from the same OTLP JSON; protobuf is decoded by the project's
OTLP bindings (`opentelemetry-proto`), never by hand:

- OTLP JSON is protobuf's JSON mapping with one difference that matters: trace and span
  ids are hex, not base64 (`bytesValue` attributes stay base64). Each span is read from it
  field by field (`json_span_values`), every value's type checked as the mapping defines it
  (integer enums or their names, 64-bit integers as JSON integers or strings of digits),
  unknown fields ignored as OTLP asks. `json_format.ParseDict` would check the same but
  costs about 40 times more a span, and reads ids as base64.
- A protobuf request is decoded by the bindings (`decode_protobuf`) and written as the
  same OTLP JSON: the landing folder only ever holds OTLP JSON, and a file is
  self-describing.

Each span is a record: it is validated on its own (`json_span_values`, then the pydantic model
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
import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
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
from loader.limits import (
    MAX_DEPTH,
    MAX_ID_BYTES,
    MAX_NAME_BYTES,
    MAX_SPAN_ATTRIBUTES,
    MAX_SPAN_EVENTS,
)

SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
"""`Span.SpanKind` by number (OTLP sends the number), as raw.spans stores it."""
STATUS_CODES = ("unset", "ok", "error")
"""`Status.StatusCode` by number."""

USER_ATTRIBUTES = ("user.id", "enduser.id")
"""The span and resource attributes that name a user, in that order (docs/opentelemetry.md):
tokenized under `--tokenize-users`, and what `purge --user` looks for."""
TENANT_ATTRIBUTE = "tenant.id"
"""The attribute that names a span's tenant, on the span or its resource."""

KEYED_ATTRIBUTES = frozenset(
    {
        # ids (MAX_ID_BYTES): who and which conversation a call belongs to
        TENANT_ATTRIBUTE,
        *USER_ATTRIBUTES,
        "gen_ai.conversation.id",
        "session.id",
        "traceloop.association.properties.session_id",
        # names (MAX_NAME_BYTES): what the cost marts group and index by
        "gen_ai.agent.name",
        "agent.name",
        "gen_ai.provider.name",
        "gen_ai.system",
        "llm.provider",
        "llm.system",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "llm.model_name",
        "llm.response.model",
        "embedding.model_name",
        "gen_ai.tool.name",
        "tool.name",
        "gen_ai.operation.name",
        "error.type",
    }
)
"""The attributes dbt staging reads into ids and names (models/staging/otel): held to
MAX_ID_BYTES / MAX_NAME_BYTES (both 256) on the span, its resource and its events, as an
event's ids and names are, so no span can make an index row of the cost marts too long.
tests/loader/test_spans.py holds this list to the keys the staging model reads."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_BIGINT = (1 << 63) - 1


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
        if key in KEYED_ATTRIBUTES:
            text = value[key] if isinstance(value[key], str) else json.dumps(value[key])
            most = min(MAX_ID_BYTES, MAX_NAME_BYTES)
            if len(text.encode("utf-8", "surrogatepass")) > most:
                raise ValueError(
                    f"attribute {key} is longer than {most} bytes (UTF-8): the warehouse keys"
                    " its cost marts by it"
                )
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


# --- times -----------------------------------------------------------------------------------


def _time(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def iso_nanos(nanos: int) -> str:
    """Nanoseconds since the Unix epoch as ISO 8601 UTC text, to the nanosecond."""
    return f"{_time(nanos):%Y-%m-%dT%H:%M:%S}.{nanos % 1_000_000_000:09d}Z"


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """A span's raw.spans values, validated; ContractError with the reason otherwise."""
    if values["duration_ns"] < 0:
        raise ContractError("span end_time: the span ends before it starts")
    try:
        SpanRecord.model_validate(values)
    except ValidationError as error:
        raise ContractError(_describe(error)) from None
    return values


# --- OTLP JSON -----------------------------------------------------------------------------
# OTLP JSON is protobuf's JSON mapping with hex ids (see the module docstring). It is read
# here field by field, each value's type checked as the mapping defines it (a 64-bit integer
# as a JSON integer or a string of digits, an enum as its number or its name), unknown fields
# ignored as OTLP asks. A protobuf request reaches this same reading (`decode_protobuf`).


def _integer(value: Any, what: str, least: int, most: int) -> int:
    if type(value) is int and least <= value <= most:  # (the usual case first)
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and value.isascii():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        raise ContractError(f"span {what}: expected an integer in [{least}, {most}]")
    return value


def _enum(value: Any, names: tuple[str, ...], prefix: str, what: str) -> int:
    if isinstance(value, str) and value.startswith(prefix):
        name = value.removeprefix(prefix).lower()
        if name in names:
            return names.index(name)
    if value is None:
        return 0
    return _integer(value, what, -(1 << 31), (1 << 31) - 1)


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ContractError(f"span {what}: expected a string")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ContractError(f"{what}: expected a JSON object")
    return value


def _json_value(value: Any, depth: int) -> Any:
    """An OTLP JSON `AnyValue` as JSON (see the module docstring)."""
    if depth > MAX_DEPTH:
        raise ContractError(f"span attributes: nested too deeply (the limit is {MAX_DEPTH})")
    value = _object(value, "span attributes: a value")
    if "stringValue" in value:
        return _string(value["stringValue"], "attributes: a stringValue")
    if "boolValue" in value:
        if not isinstance(value["boolValue"], bool):
            raise ContractError("span attributes: a boolValue is not a boolean")
        return value["boolValue"]
    if "intValue" in value:
        return _integer(value["intValue"], "attributes: an intValue", -(1 << 63), (1 << 63) - 1)
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, int) and not isinstance(number, bool):
            return float(number)
        if not isinstance(number, float) or not math.isfinite(number):
            raise ContractError("span attributes: a doubleValue is not a finite number")
        return number
    if "arrayValue" in value:
        items = _object(value["arrayValue"], "span attributes: an arrayValue").get("values")
        return [_json_value(item, depth + 1) for item in _list(items, "span attributes: values")]
    if "kvlistValue" in value:
        items = _object(value["kvlistValue"], "span attributes: a kvlistValue").get("values")
        return _json_attributes(items, "attributes", depth + 1)
    if "bytesValue" in value:
        text = _string(value["bytesValue"], "attributes: a bytesValue")
        try:
            base64.b64decode(text, validate=True)
        except binascii.Error:
            raise ContractError("span attributes: a bytesValue is not base64") from None
        return text
    return None  # an empty AnyValue


def _json_attributes(items: Any, what: str, depth: int = 1) -> dict[str, Any]:
    """OTLP JSON key-value pairs as a JSON object (a repeated key: the last one wins, as in
    the SDKs).

    A string value under a string key, most of them, is taken without `_json_value`'s
    calls: the same reading, a third of a span's checking less."""
    found = {}
    for item in items if type(items) is list else _list(items, f"span {what}"):
        if type(item) is dict:
            key, value = item.get("key"), item.get("value")
            if type(key) is str and type(value) is dict and depth <= MAX_DEPTH:
                text = value.get("stringValue")
                if type(text) is str:
                    found[key] = text
                    continue
        item = _object(item, f"span {what}: a key-value pair")
        found[_string(item.get("key"), f"{what}: a key")] = _json_value(item.get("value"), depth)
    return found


def _json_id(value: Any, digits: int, what: str) -> str | None:
    """An id as OTLP JSON sends it (hex, any case), in lowercase; None when absent or empty."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != digits or not _HEX.fullmatch(value):
        raise ContractError(f"span {what}: not {digits} hex digits (OTLP JSON sends ids as hex)")
    return value.lower()


_HEX = re.compile(r"[0-9a-fA-F]+")
_MAX_UINT64 = (1 << 64) - 1


def json_span_values(
    resource_attributes: dict[str, Any], scope: dict[str, Any], span: Any
) -> dict[str, Any]:
    """A span of OTLP JSON as raw.spans' columns (before `SpanRecord` checks them), or
    ContractError for a value of the wrong type."""
    span = _object(span, "span")
    start = _integer(span.get("startTimeUnixNano", 0), "startTimeUnixNano", 0, _MAX_UINT64)
    end = _integer(span.get("endTimeUnixNano", 0), "endTimeUnixNano", 0, _MAX_UINT64)
    kind = _enum(span.get("kind"), SPAN_KINDS, "SPAN_KIND_", "kind")
    status = _object(span.get("status"), "span status")
    code = _enum(status.get("code"), STATUS_CODES, "STATUS_CODE_", "status.code")
    events = []
    for event in _list(span.get("events"), "span events"):
        event = _object(event, "span events: an event")
        nanos = _integer(event.get("timeUnixNano", 0), "events: timeUnixNano", 0, _MAX_UINT64)
        events.append(
            {
                "name": _string(event.get("name"), "events: name"),
                "time": iso_nanos(nanos),
                "attributes": _json_attributes(event.get("attributes"), "events: attributes"),
            }
        )
    return {
        "trace_id": _json_id(span.get("traceId"), 32, "traceId") or "",
        "span_id": _json_id(span.get("spanId"), 16, "spanId") or "",
        "parent_span_id": _json_id(span.get("parentSpanId"), 16, "parentSpanId"),
        "name": _string(span.get("name"), "name"),
        "kind": SPAN_KINDS[kind] if 0 <= kind < len(SPAN_KINDS) else f"unknown ({kind})",
        "start_time": _time(start),
        "end_time": _time(end),
        "duration_ns": end - start,
        "status_code": STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else f"unknown ({code})",
        "status_message": _string(status.get("message"), "status.message") or None,
        "attributes": _json_attributes(span.get("attributes"), "attributes"),
        "resource_attributes": resource_attributes,
        "scope_name": _string(scope.get("name"), "scope.name") or None,
        "scope_version": _string(scope.get("version"), "scope.version") or None,
        "events": events,
    }


def checked_json_span(
    resource_attributes: dict[str, Any], scope: dict[str, Any], span: Any
) -> dict[str, Any]:
    """A span of OTLP JSON as raw.spans' values, validated; ContractError otherwise."""
    return _checked(json_span_values(resource_attributes, scope, span))


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
    objects, and the like): then no span can be told apart and the line is one record. A
    resource or scope that cannot be read quarantines the spans under it.
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
                resource = _object(resource_json, "span resource")
                attributes = _json_attributes(resource.get("attributes"), "resource attributes")
                scope = _object(scope_json, "span scope")
            except ContractError as error:
                problem = error.reason
            for span_json in spans:
                values, reason = None, problem
                if reason is None:
                    try:
                        values = checked_json_span(attributes, scope, span_json)
                    except ContractError as error:
                        reason = error.reason
                one: dict[str, Any] = {} if resource_json is None else {"resource": resource_json}
                inner: dict[str, Any] = {} if scope_json is None else {"scope": scope_json}
                one["scopeSpans"] = [{**inner, "spans": [span_json]}]
                items.append(SpanItem(len(items) + 1, {"resourceSpans": [one]}, values, reason))
    return items


# --- protobuf ------------------------------------------------------------------------------


def decode_protobuf(body: bytes) -> dict[str, Any]:
    """A protobuf `ExportTraceServiceRequest`, decoded by the OTLP bindings, as OTLP JSON
    (ids hex, 64-bit integers as strings, enums as numbers, default values left out, as
    protobuf's JSON mapping writes them); ValueError if the bytes are not one.

    Written field by field rather than by `json_format.MessageToDict`, which walks messages
    in Python about twenty times slower and writes ids in base64.
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError) as error:
        raise ValueError(f"not a protobuf ExportTraceServiceRequest ({error})") from None
    return {
        "resourceSpans": [
            _present(
                resource=_present(
                    attributes=_kvs(resource_spans.resource.attributes),
                    droppedAttributesCount=resource_spans.resource.dropped_attributes_count,
                )
                if resource_spans.HasField("resource")
                else None,
                scopeSpans=[
                    _present(
                        scope=_scope(scope_spans.scope) if scope_spans.HasField("scope") else None,
                        spans=[_span(span) for span in scope_spans.spans],
                        schemaUrl=scope_spans.schema_url,
                    )
                    for scope_spans in resource_spans.scope_spans
                ],
                schemaUrl=resource_spans.schema_url,
            )
            for resource_spans in request.resource_spans
        ]
    }


def _present(**fields: Any) -> dict[str, Any]:
    """The fields that hold something (protobuf's JSON mapping leaves defaults out); a
    message field given as {} (present, empty) is kept."""
    return {name: value for name, value in fields.items() if value or value == {}}


def _scope(scope: InstrumentationScope) -> dict[str, Any]:
    return _present(
        name=scope.name,
        version=scope.version,
        attributes=_kvs(scope.attributes),
        droppedAttributesCount=scope.dropped_attributes_count,
    )


def _span(span: Span) -> dict[str, Any]:
    return _present(
        traceId=span.trace_id.hex(),
        spanId=span.span_id.hex(),
        traceState=span.trace_state,
        parentSpanId=span.parent_span_id.hex(),
        flags=span.flags,
        name=span.name,
        kind=span.kind,
        startTimeUnixNano=str(span.start_time_unix_nano) if span.start_time_unix_nano else "",
        endTimeUnixNano=str(span.end_time_unix_nano) if span.end_time_unix_nano else "",
        attributes=_kvs(span.attributes),
        droppedAttributesCount=span.dropped_attributes_count,
        events=[
            _present(
                timeUnixNano=str(event.time_unix_nano) if event.time_unix_nano else "",
                name=event.name,
                attributes=_kvs(event.attributes),
                droppedAttributesCount=event.dropped_attributes_count,
            )
            for event in span.events
        ],
        droppedEventsCount=span.dropped_events_count,
        links=[
            _present(
                traceId=link.trace_id.hex(),
                spanId=link.span_id.hex(),
                traceState=link.trace_state,
                attributes=_kvs(link.attributes),
                droppedAttributesCount=link.dropped_attributes_count,
                flags=link.flags,
            )
            for link in span.links
        ],
        droppedLinksCount=span.dropped_links_count,
        status=_present(message=span.status.message, code=span.status.code)
        if span.HasField("status")
        else None,
    )


def _kvs(items: Any) -> list[dict[str, Any]]:
    return [{"key": item.key, "value": _any(item.value)} for item in items]


def _any(value: AnyValue) -> dict[str, Any]:
    """An `AnyValue` in OTLP JSON (a double JSON cannot hold as its name, as protobuf's
    mapping writes it; the span contract refuses it)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "double_value":
        number = value.double_value
        if math.isfinite(number):
            return {"doubleValue": number}
        name = "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
        return {"doubleValue": name}
    if which == "array_value":
        return {"arrayValue": {"values": [_any(item) for item in value.array_value.values]}}
    if which == "kvlist_value":
        return {"kvlistValue": {"values": _kvs(value.kvlist_value.values)}}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode("ascii")}
    return {}
