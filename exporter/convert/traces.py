"""Run -> spans, in the two forms the outbox keeps.

One description of a run's spans (`_describe`) feeds two builders: OTLP
protobuf bytes (`run_to_protobuf`: what the OTLP senders send, written once
when the run enters the outbox) and OTLP/JSON span objects (`run_to_spans`:
ids in hex, times as decimal nanosecond strings; `protocol: file` lines, and
the readable form tests assert on). Pure: no I/O, no clock; every time comes
from the platform.

Ids are deterministic: trace id = first 16 bytes of
sha256("{platform}|{base_url}|{top-level run id}"); span id = first 8 bytes
of sha256("{trace id hex}|{span key}") with keys built from platform ids
(`run:{id}`, `tool:{run id}:{call id}`, `step:{run id}:{step key}`), so a
re-sent span is a duplicate, never a new one.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Generic, TypeVar

from exporter.convert.protobuf import SpanWriter, scope_spans_entry
from exporter.model import ActivityEvent, AttrValue, Run, RunStatus, Step, ToolCall, ToolStatus

SPAN_KIND_INTERNAL = 1
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
ERROR_STATUSES = (RunStatus.FAILED, RunStatus.TIMED_OUT)
# What the SDK's OTLP encoder writes for a span whose parent is not remote
# (SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK).
SPAN_FLAGS = 0x100

SpanJSON = dict[str, object]
Value = AttrValue | list[str]
Pairs = list[tuple[str, Value | None]]
S = TypeVar("S")


def trace_id_for(platform: str, base_url: str, run_id: str) -> str:
    key = f"{platform}|{base_url.rstrip('/')}|{run_id}".encode()
    return _nonzero(hashlib.sha256(key).hexdigest()[:32])


def span_id_for(trace_id: str, span_key: str) -> str:
    return _nonzero(hashlib.sha256(f"{trace_id}|{span_key}".encode()).hexdigest()[:16])


def _nonzero(hex_id: str) -> str:
    # An all-zero id is invalid in OTLP; sha256 makes this practically
    # impossible, but a backend would silently drop such a span.
    return hex_id if hex_id.strip("0") else hex_id[:-1] + "1"


def run_trace_id(run: Run) -> str:
    return trace_id_for(run.platform, run.base_url, run.trace_run_id)


def run_to_spans(run: Run, *, capture_content: bool = False, max_attribute_length: int = 4096) -> list[SpanJSON]:
    """The run's own span, then its tool-call and step spans, as OTLP/JSON."""
    return _describe(run, _JsonBuilder(capture_content, max_attribute_length))


def run_to_protobuf(
    run: Run, writer: SpanWriter, *, capture_content: bool = False, max_attribute_length: int = 4096
) -> tuple[int, bytes]:
    """The same spans as `run_to_spans`, as (count, bytes of a ScopeSpans
    holding only them): concatenated rows form one ScopeSpans."""
    spans = _describe(run, _ProtoBuilder(capture_content, max_attribute_length, writer))
    return len(spans), b"".join(spans)


def _describe(run: Run, b: _Builder[S]) -> list[S]:
    """A sub-agent run (root_run_id set) lands in its top-level run's trace
    under its parent."""
    trace_id = run_trace_id(run)
    run_span = span_id_for(trace_id, f"run:{run.run_id}")
    parent = None
    if run.root_run_id:
        parent = span_id_for(trace_id, f"run:{run.parent_run_id or run.root_run_id}")
    end = run.ended_at or _last_time(run)
    events = run.events + tuple(_step_event(run, step) for step in run.steps if not step.started_at)
    spans = [
        b.span(
            trace_id=trace_id,
            span_id=run_span,
            parent=parent,
            name=f"invoke_agent {run.agent_name}",
            start=run.started_at,
            end=end,
            attributes=_run_attributes(run, b),
            events=events,
            status=_run_status(run),
        )
    ]
    spans.extend(_tool_span(b, run, trace_id, run_span, call) for call in run.tool_calls)
    spans.extend(_step_span(b, run, trace_id, run_span, step) for step in run.steps if step.started_at)
    return spans


def _run_status(run: Run) -> tuple[int, str | None]:
    if run.status in ERROR_STATUSES:
        return STATUS_ERROR, run.error_message or run.status.value
    if run.status is RunStatus.SUCCEEDED:
        return STATUS_OK, None
    return STATUS_UNSET, None  # cancelled, incomplete, unknown: details live in attributes


def _run_attributes(run: Run, b: _Builder[S]) -> Pairs:
    attrs: Pairs = [
        ("gen_ai.operation.name", "invoke_agent"),
        ("gen_ai.provider.name", run.platform),
        ("gen_ai.agent.id", run.agent_id),
        ("gen_ai.agent.name", run.agent_name),
        ("gen_ai.conversation.id", run.conversation_id),
        ("gen_ai.usage.input_tokens", run.input_tokens),
        ("gen_ai.usage.output_tokens", run.output_tokens),
        ("gen_ai.response.finish_reasons", list(run.finish_reasons) or None),
        ("error.type", run.error_type or (run.status.value if run.status in ERROR_STATUSES else None)),
        ("openinference.span.kind", "AGENT"),
        ("agent_activity.run_id", run.run_id),
        ("agent_activity.source", run.source),
        ("agent_activity.status", run.status.value),
        ("agent_activity.platform_status", run.raw_status),
        ("agent_activity.trigger_type", run.trigger_type),
        ("agent_activity.total_tokens", run.total_tokens),
        ("agent_activity.cost_usd", float(run.cost_usd) if run.cost_usd is not None else None),
        ("agent_activity.iterations", run.iterations),
        ("agent_activity.sandbox", run.sandbox),
        ("agent_activity.parent_run_id", run.parent_run_id),
        ("agent_activity.incomplete", True if run.status is RunStatus.INCOMPLETE else None),
        ("agent_activity.error.message", run.error_message if run.status not in ERROR_STATUSES else None),
    ]
    if run.ended_at is None:
        attrs.append(("agent_activity.end_time_derived", True))
    attrs.extend(run.attributes)
    if b.capture_content:
        attrs += [("agent_activity.input", run.input), ("agent_activity.output", run.output)]
    return attrs


def _tool_span(b: _Builder[S], run: Run, trace_id: str, parent: str, call: ToolCall) -> S:
    failed = call.status is ToolStatus.FAILED
    attrs: Pairs = [
        ("gen_ai.operation.name", "execute_tool"),
        ("gen_ai.tool.name", call.name),
        ("gen_ai.tool.call.id", call.id),
        ("openinference.span.kind", "TOOL"),
        ("agent_activity.tool.status", call.status.value),
        ("agent_activity.platform_status", call.raw_status),
        ("error.type", "tool_error" if failed else None),
        ("agent_activity.end_time_derived", True if call.ended_at is None else None),
        *call.attributes,
    ]
    if b.capture_content:
        attrs += [("gen_ai.tool.call.arguments", call.input), ("gen_ai.tool.call.result", call.output)]
    return b.span(
        trace_id=trace_id,
        span_id=span_id_for(trace_id, f"tool:{run.run_id}:{call.id}"),
        parent=parent,
        name=f"execute_tool {call.name}",
        start=call.started_at,
        end=call.ended_at or call.started_at,
        attributes=attrs,
        events=call.events,
        status=(STATUS_ERROR, call.error_message or "tool call failed") if failed else (STATUS_UNSET, None),
    )


def _step_span(b: _Builder[S], run: Run, trace_id: str, parent: str, step: Step) -> S:
    assert step.started_at is not None
    attrs: Pairs = [
        ("openinference.span.kind", "CHAIN"),
        ("agent_activity.step.status", step.status.value),
        *step.attributes,
    ]
    if b.capture_content:
        attrs += [("agent_activity.input", step.input), ("agent_activity.output", step.output)]
    failed = step.status is ToolStatus.FAILED
    return b.span(
        trace_id=trace_id,
        span_id=span_id_for(trace_id, f"step:{run.run_id}:{step.key}"),
        parent=parent,
        name=step.name,
        start=step.started_at,
        end=step.ended_at or step.started_at,
        attributes=attrs,
        events=(),
        status=(STATUS_ERROR, "step failed") if failed else (STATUS_UNSET, None),
    )


def _step_event(run: Run, step: Step) -> ActivityEvent:
    """A step the platform gives no time for: a span event at the run's
    start (never "now"), flagged as placed there by us."""
    return ActivityEvent(
        id=step.key,
        name=step.name,
        time=run.started_at,
        attributes=(
            *step.attributes,
            ("agent_activity.step.status", step.status.value),
            ("agent_activity.time_derived", True),
        ),
    )


def _last_time(run: Run) -> datetime:
    times = [run.started_at, *(e.time for e in run.events)]
    times += [t.ended_at or t.started_at for t in run.tool_calls]
    return max(times)


class _Builder(Generic[S]):
    """Turns one span's description into one output form. Attribute values
    are cleaned the same way for both: None left out, strings truncated,
    a repeated key keeps its first place and its last value (OTLP keys are
    unique; the SDK's attribute dict does the same)."""

    def __init__(self, capture_content: bool, max_len: int) -> None:
        self.capture_content = capture_content
        self.max_len = max_len

    def span(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent: str | None,
        name: str,
        start: datetime,
        end: datetime,
        attributes: Pairs,
        events: tuple[ActivityEvent, ...],
        status: tuple[int, str | None],
    ) -> S:
        start_ns = to_ns(start)
        code, message = status
        return self.build(
            trace_id=trace_id,
            span_id=span_id,
            parent=parent,
            name=self.truncate(name),
            start_ns=start_ns,
            # End before start (clock skew at the platform) becomes zero length.
            end_ns=max(start_ns, to_ns(end)),
            attributes=self.clean(attributes),
            events=[(to_ns(e.time), e.name, self.clean(e.attributes)) for e in sorted(events, key=lambda e: e.time)],
            code=code,
            message=self.truncate(message) if message and code == STATUS_ERROR else "",
        )

    def build(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent: str | None,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, Value],
        events: list[tuple[int, str, dict[str, Value]]],
        code: int,
        message: str,
    ) -> S:
        raise NotImplementedError

    def clean(self, pairs: Pairs | tuple[tuple[str, AttrValue], ...]) -> dict[str, Value]:
        return clean_attributes(pairs, self.max_len)

    def truncate(self, text: str) -> str:
        return truncate(text, self.max_len)


def clean_attributes(pairs: Pairs | tuple[tuple[str, AttrValue], ...], max_len: int) -> dict[str, Value]:
    """None left out, strings truncated to `max_len`, a repeated key keeps
    its first place and its last value."""
    out: dict[str, Value] = {key: value for key, value in pairs if value is not None}
    for key in [k for k, v in out.items() if v.__class__ is list or (v.__class__ is str and len(v) > max_len)]:
        value = out[key]
        out[key] = (
            [truncate(str(v), max_len) for v in value] if isinstance(value, list) else truncate(str(value), max_len)
        )
    return out


def truncate(text: str, max_len: int) -> str:
    return text if len(text) <= max_len else text[:max_len]


class _JsonBuilder(_Builder[SpanJSON]):
    def build(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent: str | None,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, Value],
        events: list[tuple[int, str, dict[str, Value]]],
        code: int,
        message: str,
    ) -> SpanJSON:
        span: SpanJSON = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": name,
            "kind": SPAN_KIND_INTERNAL,
            "startTimeUnixNano": str(start_ns),
            "endTimeUnixNano": str(end_ns),
            "attributes": json_attributes(attributes),
        }
        if parent:
            span["parentSpanId"] = parent
        if events:
            span["events"] = [
                {"timeUnixNano": str(t), "name": n, "attributes": json_attributes(a)} for t, n, a in events
            ]
        span["status"] = {"code": code, **({"message": message} if message else {})}
        return span


def json_attributes(attributes: dict[str, Value]) -> list[dict[str, object]]:
    return [{"key": key, "value": _json_value(value)} for key, value in attributes.items()]


def _json_value(value: Value) -> dict[str, object]:
    # OTLP/JSON: ints as strings (64-bit), bool before int (bool is an int).
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [{"stringValue": v} for v in value]}}
    return {"stringValue": value}


class _ProtoBuilder(_Builder[bytes]):
    def __init__(self, capture_content: bool, max_len: int, writer: SpanWriter) -> None:
        super().__init__(capture_content, max_len)
        self._writer = writer

    def build(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent: str | None,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, Value],
        events: list[tuple[int, str, dict[str, Value]]],
        code: int,
        message: str,
    ) -> bytes:
        return scope_spans_entry(
            self._writer.span(
                trace_id=bytes.fromhex(trace_id),
                span_id=bytes.fromhex(span_id),
                parent=bytes.fromhex(parent) if parent else b"",
                name=name,
                kind=SPAN_KIND_INTERNAL,
                start_ns=start_ns,
                end_ns=end_ns,
                attributes=attributes.items(),
                events=[(t, n, a.items()) for t, n, a in events],
                status_code=code,
                status_message=message,
                flags=SPAN_FLAGS,
            )
        )


def to_ns(dt: datetime) -> int:
    # Integer arithmetic: float timestamps lose microseconds at this scale.
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
