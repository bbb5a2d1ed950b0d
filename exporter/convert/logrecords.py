"""Activity items -> OTLP log records, in the two forms the outbox keeps.

One log record per activity item, shaped as an OpenTelemetry event:

- `event_name` (LogRecord field 12) `agent_activity.<platform>.<category>`:
  low-cardinality, from the platform's own bounded category (anything else
  becomes `unknown`, never free text); also as the `event.name` attribute,
  for pipelines older than the field;
- timestamp: when the item happened, at the platform (no observed time:
  the record is the same whenever it is read);
- severity: the platform's info / warning / error as INFO (9) / WARN (13) /
  ERROR (17), its word as severity_text; unknown leaves both unset;
- body: the item's message (runtools summary, bctrl message), else its
  title, else its type;
- attributes: the item's fields as `agent_activity.*` (truncated like span
  attributes);
- trace context: an item of a run carries that run's trace id and the id of
  the run's span (`convert.traces`: the ids of the spans exported for it);
  an item outside any run carries none.

`describe` builds the neutral `LogRecord`; `to_protobuf` writes it as the
bytes of a ScopeLogs entry (the OTLP senders' rows, concatenated into one
request), `to_json` as an OTLP/JSON object (`protocol: file`). Pure: no I/O,
no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from exporter.convert.protobuf import SpanWriter, scope_spans_entry
from exporter.convert.traces import (
    Pairs,
    Value,
    clean_attributes,
    json_attributes,
    span_id_for,
    to_ns,
    trace_id_for,
    truncate,
)
from exporter.model import ActivityEvent, Severity

SEVERITIES: Final = {
    Severity.INFO: (9, "info"),
    Severity.WARNING: (13, "warning"),
    Severity.ERROR: (17, "error"),
    Severity.UNKNOWN: (0, ""),
}
TRACE_FLAG_SAMPLED: Final = 0x01  # the run's spans are all exported
_NAME_PART: Final = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One OTLP log record, ids in hex ("" when the item belongs to no run)."""

    time_ns: int
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, Value]
    trace_id: str
    span_id: str
    event_name: str

    @property
    def flags(self) -> int:
        return TRACE_FLAG_SAMPLED if self.trace_id else 0


def event_name(platform: str, category: str) -> str:
    return f"agent_activity.{_bounded(platform)}.{_bounded(category)}"


def _bounded(part: str) -> str:
    return part if _NAME_PART.fullmatch(part) else "unknown"


def describe(platform: str, base_url: str, event: ActivityEvent, max_attribute_length: int = 4096) -> LogRecord:
    name = event_name(platform, event.category)
    number, text = SEVERITIES[event.severity]
    trace_id = span_id = ""
    if event.run_id:
        trace_id = trace_id_for(platform, base_url, event.run_id)
        span_id = span_id_for(trace_id, f"run:{event.run_id}")
    pairs: Pairs = [
        ("event.name", name),
        ("gen_ai.provider.name", platform),
        ("agent_activity.event.id", event.id),
        ("agent_activity.event.type", event.name),
        ("agent_activity.event.category", event.category),
        ("agent_activity.event.severity", event.severity.value),
        ("agent_activity.event.status", event.status),
        ("agent_activity.run_id", event.run_id),
        *event.attributes,
    ]
    attributes = clean_attributes(pairs, max_attribute_length)
    return LogRecord(
        time_ns=to_ns(event.time),
        severity_number=number,
        severity_text=text,
        body=truncate(event.message or event.name, max_attribute_length),
        attributes=attributes,
        trace_id=trace_id,
        span_id=span_id,
        event_name=name,
    )


def to_protobuf(records: Iterable[LogRecord], writer: SpanWriter) -> bytes:
    """The records as `log_records` entries of a ScopeLogs: rows concatenate
    into one request."""
    return b"".join(
        scope_spans_entry(
            writer.log_record(
                time_ns=r.time_ns,
                severity_number=r.severity_number,
                severity_text=r.severity_text,
                body=r.body,
                attributes=r.attributes.items(),
                flags=r.flags,
                trace_id=bytes.fromhex(r.trace_id),
                span_id=bytes.fromhex(r.span_id),
                event_name=r.event_name,
            )
        )
        for r in records
    )


def to_json(record: LogRecord) -> dict[str, object]:
    """OTLP/JSON: ids in hex, times as decimal strings, defaults left out."""
    out: dict[str, object] = {"timeUnixNano": str(record.time_ns)}
    if record.severity_number:
        out["severityNumber"] = record.severity_number
        out["severityText"] = record.severity_text
    out["body"] = {"stringValue": record.body}
    out["attributes"] = json_attributes(record.attributes)
    if record.trace_id:
        out.update(flags=record.flags, traceId=record.trace_id, spanId=record.span_id)
    out["eventName"] = record.event_name
    return out


def from_json(obj: dict[str, object], values: Callable[[object], dict[str, Value]]) -> LogRecord:
    """An OTLP/JSON record as `to_json` wrote it (a row written for
    `protocol: file`, sent after a switch to an OTLP protocol); `values`
    reads its attributes."""
    body = obj.get("body")
    return LogRecord(
        time_ns=int(str(obj.get("timeUnixNano", 0))),
        severity_number=int(str(obj.get("severityNumber", 0))),
        severity_text=str(obj.get("severityText", "")),
        body=str(body.get("stringValue", "")) if isinstance(body, dict) else "",
        attributes=values(obj.get("attributes")),
        trace_id=str(obj.get("traceId", "")),
        span_id=str(obj.get("spanId", "")),
        event_name=str(obj.get("eventName", "")),
    )
