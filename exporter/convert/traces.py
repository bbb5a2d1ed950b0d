"""Run -> spans, as OTLP/JSON span objects (SPEC section 6).

Spans leave the converter in the OTLP/JSON shape (ids in hex, times as
decimal nanosecond strings, typed attribute values) because they must cross
the durable outbox: the same object is a line of `protocol: file` output and
is decoded into an SDK ReadableSpan for the OTLP exporters. Pure: no I/O,
no clock; every time comes from the platform.

Ids are deterministic: trace id = first 16 bytes of
sha256("{platform}|{base_url}|{top-level run id}"); span id = first 8 bytes
of sha256("{trace id hex}|{span key}") with keys built from platform ids
(`run:{id}`, `tool:{run id}:{call id}`, `step:{run id}:{step key}`), so a
re-sent span is a duplicate, never a new one.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

from exporter.model import ActivityEvent, AttrValue, Run, RunStatus, Step, ToolCall, ToolStatus

SPAN_KIND_INTERNAL = 1
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
ERROR_STATUSES = (RunStatus.FAILED, RunStatus.TIMED_OUT)

SpanJSON = dict[str, object]


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
    """The run's own span, then its tool-call and step spans. A sub-agent run
    (root_run_id set) lands in its top-level run's trace under its parent."""
    b = _Builder(capture_content, max_attribute_length)
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


def _run_attributes(run: Run, b: _Builder) -> list[tuple[str, AttrValue | list[str] | None]]:
    attrs: list[tuple[str, AttrValue | list[str] | None]] = [
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


def _tool_span(b: _Builder, run: Run, trace_id: str, parent: str, call: ToolCall) -> SpanJSON:
    failed = call.status is ToolStatus.FAILED
    attrs: list[tuple[str, AttrValue | list[str] | None]] = [
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


def _step_span(b: _Builder, run: Run, trace_id: str, parent: str, step: Step) -> SpanJSON:
    assert step.started_at is not None
    attrs: list[tuple[str, AttrValue | list[str] | None]] = [
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
        attributes=(*step.attributes, ("agent_activity.step.status", step.status.value),
                    ("agent_activity.time_derived", True)),
    )


def _last_time(run: Run) -> datetime:
    times = [run.started_at, *(e.time for e in run.events)]
    times += [t.ended_at or t.started_at for t in run.tool_calls]
    return max(times)


class _Builder:
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
        attributes: list[tuple[str, AttrValue | list[str] | None]],
        events: tuple[ActivityEvent, ...],
        status: tuple[int, str | None],
    ) -> SpanJSON:
        start_ns = to_ns(start)
        span: SpanJSON = {
            "traceId": trace_id,
            "spanId": span_id,
            "name": self.truncate(name),
            "kind": SPAN_KIND_INTERNAL,
            "startTimeUnixNano": str(start_ns),
            # End before start (clock skew at the platform) becomes zero length.
            "endTimeUnixNano": str(max(start_ns, to_ns(end))),
            "attributes": self.attributes(attributes),
        }
        if parent:
            span["parentSpanId"] = parent
        if events:
            span["events"] = [
                {"timeUnixNano": str(to_ns(e.time)), "name": e.name, "attributes": self.attributes(list(e.attributes))}
                for e in sorted(events, key=lambda e: e.time)
            ]
        code, message = status
        span["status"] = {"code": code, **({"message": self.truncate(message)} if message else {})}
        return span

    def attributes(self, pairs: list[tuple[str, AttrValue | list[str] | None]]) -> list[dict[str, object]]:
        return [{"key": key, "value": self.value(value)} for key, value in pairs if value is not None]

    def value(self, value: AttrValue | list[str]) -> dict[str, object]:
        # OTLP/JSON: ints as strings (64-bit), bool before int (bool is an int).
        if isinstance(value, bool):
            return {"boolValue": value}
        if isinstance(value, int):
            return {"intValue": str(value)}
        if isinstance(value, float):
            return {"doubleValue": value}
        if isinstance(value, list):
            return {"arrayValue": {"values": [{"stringValue": self.truncate(str(v))} for v in value]}}
        return {"stringValue": self.truncate(str(value))}

    def truncate(self, text: str) -> str:
        return text if len(text) <= self.max_len else text[: self.max_len]


def to_ns(dt: datetime) -> int:
    # Integer arithmetic: float timestamps lose microseconds at this scale.
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
