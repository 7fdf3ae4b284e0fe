"""`POST /v1/traces` (OTLP/HTTP): what `agent-loader serve` does with an export request's body.

The request is decoded with the OTLP bindings (protobuf, `application/x-protobuf`) or as
OTLP JSON (`application/json`), optionally gzip, and written to the landing folder as OTLP
JSON lines, each an `ExportTraceServiceRequest` of its own (the spans of one resource and
scope, split so no line is over half the record size limit): a batch file is then what the
Collector's `file` exporter writes, and `load` reads both alike. The answer is OTLP's
`ExportTraceServiceResponse`, in the request's encoding, with `partialSuccess` giving how many
spans the loader will quarantine and why: the loader's own verdict (`load.span_verdicts`),
on each line as the loader will read it, as for `/v1/events`.

An ingest key bound to publishers or agents (`KeyScope`) speaks for those senders only, and
a span has no sender the contract can check against the binding: a bound key's spans are
all refused (nothing is written, `rejectedSpans` counts them all). Spans need an unbound key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]  # no stubs on PyPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from loader.ingest.load import span_verdicts
from loader.ingest.readers import line_record
from loader.ingest.spans import decode_protobuf

PROTOBUF = "application/x-protobuf"
TRACE_TYPES = (PROTOBUF, "application/json")
MAX_REASONS_IN_MESSAGE = 10
"""How many distinct reasons `partialSuccess.errorMessage` names (with the count of each)."""


class BadTraces(ValueError):
    """A body that is not an export request at all (400)."""


@dataclass(frozen=True)
class CheckedTraces:
    """A checked export request: its batch-file lines and what the answer says."""

    lines: list[bytes]
    spans: int
    rejected: int  # spans the loader will quarantine, or all of them when `refused`
    message: str  # partialSuccess.errorMessage ("" when nothing is rejected)
    refused: bool = False  # the key may not write spans: nothing is written


def decode_request(body: bytes, content_type: str) -> dict[str, Any]:
    """An export request body as OTLP JSON (a dict), or BadTraces."""
    if content_type == PROTOBUF:
        try:
            return decode_protobuf(body)
        except ValueError as error:
            raise BadTraces(str(error)) from None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadTraces(f"the body is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise BadTraces("expected an ExportTraceServiceRequest: a JSON object")
    return value


def _items(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadTraces(f"{what} must be an array of objects (OTLP JSON)")
    return value


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: the standard encoder
        import json

        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "backslashreplace"
        )


def request_lines(request: dict[str, Any], max_line_bytes: int) -> tuple[list[bytes], int]:
    """The request as OTLP JSON lines of at most about `max_line_bytes` (a span larger than
    that is a line alone), and its number of spans; BadTraces when its layout is broken."""
    lines: list[bytes] = []
    spans = 0
    for resource_spans in _items(request.get("resourceSpans"), "resourceSpans"):
        outer = {key: value for key, value in resource_spans.items() if key != "scopeSpans"}
        for scope_spans in _items(resource_spans.get("scopeSpans"), "scopeSpans"):
            inner = {key: value for key, value in scope_spans.items() if key != "spans"}
            members = scope_spans.get("spans") or []
            if not isinstance(members, list):
                raise BadTraces("spans must be an array (OTLP JSON)")
            spans += len(members)
            overhead = len(_dumps(outer)) + len(_dumps(inner)) + 64
            chunk: list[bytes] = []
            size = overhead
            for span in members:
                text = _dumps(span)
                if chunk and size + len(text) + 1 > max_line_bytes:
                    lines.append(_line(outer, inner, chunk))
                    chunk, size = [], overhead
                chunk.append(text)
                size += len(text) + 1
            if chunk:
                lines.append(_line(outer, inner, chunk))
    return lines, spans


def _line(outer: dict[str, Any], inner: dict[str, Any], spans: list[bytes]) -> bytes:
    """One export request of one resource, one scope and these spans (as JSON text)."""
    scope = _dumps(inner)[:-1] + (b"," if inner else b"") + b'"spans":[' + b",".join(spans) + b"]}"
    resource = _dumps(outer)[:-1] + (b"," if outer else b"") + b'"scopeSpans":[' + scope + b"]}"
    return b'{"resourceSpans":[' + resource + b"]}"


def line_verdicts(lines: list[bytes], max_record_bytes: int) -> tuple[int, str]:
    """How many of the lines' spans the loader will quarantine, and why (errorMessage)."""
    rejected = 0
    reasons: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        verdicts = span_verdicts(line_record(number, line, max_record_bytes))
        if verdicts is None:  # the line is one record the loader quarantines (oversized)
            count = line.count(b'"spanId"') or 1
            verdicts = [f"a span over the record size limit ({max_record_bytes} bytes)"] * count
        for reason in verdicts:
            if reason is not None:
                rejected += 1
                reasons[reason] = reasons.get(reason, 0) + 1
    shown = sorted(reasons.items(), key=lambda item: -item[1])[:MAX_REASONS_IN_MESSAGE]
    message = "; ".join(f"{count} x {reason}" for reason, count in shown)
    if rejected:
        message = f"{rejected} spans quarantined by the contract: {message}"
    return rejected, message


def export_response(rejected: int, message: str, protobuf: bool) -> tuple[bytes, str]:
    """The `ExportTraceServiceResponse` body and its content type (the request's encoding);
    `partialSuccess` only when some span is rejected, as OTLP asks."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if protobuf:
        return response.SerializeToString(), PROTOBUF
    return orjson.dumps(json_format.MessageToDict(response)), "application/json"


# gRPC status codes (google.rpc.Code) for the HTTP statuses a refusal has, as OTLP/HTTP's
# `Status` body carries them.
_GRPC_CODES = {400: 3, 401: 16, 408: 4, 413: 8, 415: 3, 429: 8, 503: 14}


def error_response(status: int, message: str, protobuf: bool) -> tuple[bytes, str]:
    """The body of a refused export request: a `google.rpc.Status` in the request's
    encoding (OTLP/HTTP), its message the same text `/v1/events` answers with."""
    answer = Status(code=_GRPC_CODES.get(status, 2), message=message)  # 2: UNKNOWN
    if protobuf:
        return answer.SerializeToString(), PROTOBUF
    return orjson.dumps(json_format.MessageToDict(answer)), "application/json"
