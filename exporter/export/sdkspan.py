"""The one place spans become OpenTelemetry SDK objects: the protobuf
senders take their resource and scope from the SDK's encoder (a probe span),
and the tests hold our protobuf rows to what that encoder writes."""

from __future__ import annotations

from typing import Any, cast

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from exporter import __version__
from exporter.export.otlpjson import STATUS_CODES, attributes

SCOPE = InstrumentationScope("agent-activity-exporter", __version__)


def to_readable_span(span: dict[str, object], resource: Resource) -> ReadableSpan:
    """The one place spans become SDK objects (its docstring discourages
    hand-built spans, hence exactly one function, contract-tested)."""
    trace_id = int(str(span["traceId"]), 16)
    context = SpanContext(
        trace_id, int(str(span["spanId"]), 16), is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    parent_hex = span.get("parentSpanId")
    parent = (
        SpanContext(trace_id, int(str(parent_hex), 16), is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        if parent_hex
        else None
    )
    status = span.get("status") or {}
    assert isinstance(status, dict)
    code = STATUS_CODES.get(int(status.get("code", 0)), StatusCode.UNSET)
    events = [
        Event(str(e["name"]), attributes(e.get("attributes")), timestamp=int(e["timeUnixNano"]))
        for e in cast(list[dict[str, Any]], span.get("events") or [])
    ]
    return ReadableSpan(
        name=str(span["name"]),
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes(span.get("attributes")),
        events=events,
        kind=SpanKind.INTERNAL,
        status=Status(code, status.get("message") if code is StatusCode.ERROR else None),
        start_time=int(str(span["startTimeUnixNano"])),
        end_time=int(str(span["endTimeUnixNano"])),
        instrumentation_scope=SCOPE,
    )
