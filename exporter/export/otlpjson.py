"""The OTLP/JSON form of outbox rows, and its conversions to and from the
protobuf form (span rows and log-record rows alike).

Rows written for `protocol: file` are OTLP/JSON lists of span objects; rows
written for the OTLP senders are protobuf `Span` messages (the bytes of a
`ScopeSpans` that holds only spans). Either sender reads either form (rows
written before a change of protocol): a JSON row goes out through the same
SpanWriter as rows made from runs, a protobuf row is read back as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord
from opentelemetry.proto.logs.v1.logs_pb2 import ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from exporter.convert import logrecords
from exporter.convert.protobuf import SpanWriter, scope_spans_entry
from exporter.convert.traces import SPAN_FLAGS, SPAN_KIND_INTERNAL, Value

STATUS_CODES = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}


def encode_payload(spans: Sequence[dict[str, object]]) -> bytes:
    """An outbox row as OTLP/JSON (for `protocol: file`)."""
    return json.dumps(spans, separators=(",", ":")).encode()


def encode_protobuf_payload(spans: Sequence[dict[str, object]], writer: SpanWriter | None = None) -> bytes:
    """OTLP/JSON spans (an outbox row written for `protocol: file`, sent
    after a switch to an OTLP protocol) as a protobuf row, written by the same
    SpanWriter as rows made from runs: field for field what the SDK's encoder
    writes for the ReadableSpan `to_readable_span` makes (tested)."""
    writer = writer or SpanWriter()
    return b"".join(scope_spans_entry(_write_json_span(writer, s)) for s in spans)


def _write_json_span(writer: SpanWriter, span: dict[str, object]) -> bytes:
    status = span.get("status") or {}
    assert isinstance(status, dict)
    code = STATUS_CODES.get(int(status.get("code", 0)), StatusCode.UNSET)
    message = status.get("message") if code is StatusCode.ERROR else None
    parent = span.get("parentSpanId")
    events = cast(list[dict[str, object]], span.get("events") or [])
    return writer.span(
        trace_id=bytes.fromhex(str(span["traceId"])),
        span_id=bytes.fromhex(str(span["spanId"])),
        parent=bytes.fromhex(str(parent)) if parent else b"",
        name=str(span["name"]),
        kind=SPAN_KIND_INTERNAL,
        start_ns=int(str(span["startTimeUnixNano"])),
        end_ns=int(str(span["endTimeUnixNano"])),
        # A dict, as ReadableSpan's attributes are: a repeated key keeps its
        # first place and its last value.
        attributes=_writable(attributes(span.get("attributes"))),
        events=[
            (int(str(e["timeUnixNano"])), str(e["name"]), _writable(attributes(e.get("attributes")))) for e in events
        ],
        status_code=code.value,
        status_message=str(message) if message else "",
        flags=SPAN_FLAGS,
    )


def _writable(attrs: dict[str, AttributeValue]) -> list[tuple[str, str | bool | int | float | list[str]]]:
    return [
        (k, [str(x) for x in v] if isinstance(v, tuple) else cast(str | bool | int | float, v))
        for k, v in attrs.items()
    ]


def is_json(payload: bytes) -> bool:
    """Whether an outbox row is in the OTLP/JSON form (else protobuf)."""
    return payload[:1] == b"["


def _json_span(pb: PbSpan) -> dict[str, object]:
    """A protobuf span back to our OTLP/JSON form (a row written for an OTLP
    sender, delivered after a switch to `protocol: file`)."""
    out: dict[str, object] = {
        "traceId": pb.trace_id.hex(),
        "spanId": pb.span_id.hex(),
        "name": pb.name,
        "kind": 1,
        "startTimeUnixNano": str(pb.start_time_unix_nano),
        "endTimeUnixNano": str(pb.end_time_unix_nano),
        "attributes": [{"key": a.key, "value": _json_value(a.value)} for a in pb.attributes],
    }
    if pb.parent_span_id:
        out["parentSpanId"] = pb.parent_span_id.hex()
    if pb.events:
        out["events"] = [
            {
                "timeUnixNano": str(e.time_unix_nano),
                "name": e.name,
                "attributes": [{"key": a.key, "value": _json_value(a.value)} for a in e.attributes],
            }
            for e in pb.events
        ]
    out["status"] = {"code": pb.status.code, **({"message": pb.status.message} if pb.status.message else {})}
    return out


def _json_value(v: AnyValue) -> dict[str, object]:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return {"stringValue": v.string_value}
    if kind == "bool_value":
        return {"boolValue": v.bool_value}
    if kind == "int_value":
        return {"intValue": str(v.int_value)}
    if kind == "double_value":
        return {"doubleValue": v.double_value}
    return {"arrayValue": {"values": [_json_value(x) for x in v.array_value.values]}}


def json_spans(payloads: Sequence[bytes]) -> list[dict[str, object]]:
    """Outbox rows of either form -> OTLP/JSON span objects."""
    out: list[dict[str, object]] = []
    for payload in payloads:
        if is_json(payload):
            out.extend(json.loads(payload))
        else:
            out.extend(_json_span(s) for s in ScopeSpans.FromString(payload).spans)
    return out


def attributes(items: object) -> dict[str, AttributeValue]:
    """OTLP/JSON attributes -> SDK attribute values by key."""
    out: dict[str, AttributeValue] = {}
    for item in cast(list[dict[str, Any]], items or []):
        out[item["key"]] = _value(item["value"])
    return out


def _value(v: dict[str, Any]) -> AttributeValue:
    """OTLP/JSON AnyValue -> SDK attribute value (the converter writes only
    strings, bools, ints, doubles and arrays of strings)."""
    if "stringValue" in v:
        return str(v["stringValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    values = v.get("arrayValue", {}).get("values", [])
    return tuple(str(x.get("stringValue", "")) for x in values)


def encode_protobuf_logs(records: Sequence[dict[str, object]], writer: SpanWriter | None = None) -> bytes:
    """OTLP/JSON log records (a row written for `protocol: file`) as a
    protobuf row, written as rows made from activity items are."""
    return logrecords.to_protobuf((logrecords.from_json(r, _log_values) for r in records), writer or SpanWriter())


def json_logs(payloads: Sequence[bytes]) -> list[dict[str, object]]:
    """Log-record rows of either form -> OTLP/JSON log record objects."""
    out: list[dict[str, object]] = []
    for payload in payloads:
        if is_json(payload):
            out.extend(json.loads(payload))
        else:
            out.extend(logrecords.to_json(_log_record(r)) for r in ScopeLogs.FromString(payload).log_records)
    return out


def _log_record(pb: PbLogRecord) -> logrecords.LogRecord:
    return logrecords.LogRecord(
        time_ns=pb.time_unix_nano,
        severity_number=pb.severity_number,
        severity_text=pb.severity_text,
        body=pb.body.string_value,
        attributes=_log_values([{"key": a.key, "value": _json_value(a.value)} for a in pb.attributes]),
        trace_id=pb.trace_id.hex(),
        span_id=pb.span_id.hex(),
        event_name=pb.event_name,
    )


def _log_values(items: object) -> dict[str, Value]:
    return {k: [str(x) for x in v] if isinstance(v, tuple) else cast(Value, v) for k, v in attributes(items).items()}
