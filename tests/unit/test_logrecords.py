"""Activity items -> OTLP log records: one item of each platform, read by
the platform's own parsing, becomes the record its fields say; the trace
and span ids are those of the run's exported span; both encodings say the
same; the bytes are a valid, canonical LogRecord and never change."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import ScopeLogs

from exporter.convert.logrecords import describe, event_name, to_json, to_protobuf
from exporter.convert.protobuf import SpanWriter
from exporter.convert.traces import run_to_spans
from exporter.export.otlpjson import encode_protobuf_logs, json_logs
from exporter.model import ActivityEvent, Run, RunStatus, Severity
from exporter.sources.agent_activities.runs import build_run
from exporter.sources.bctrl.api import parse_item
from exporter.sources.bctrl.runs import item_event
from exporter.sources.runtools.api import counted_event, parse_event

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "https://api.example"
T0 = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)


def fixture(platform: str, name: str) -> Any:
    return json.loads((FIXTURES / platform / name).read_text())


def trace_of(platform: str, run_id: str) -> str:
    """The trace id as the README defines it, computed here on its own."""
    return hashlib.sha256(f"{platform}|{BASE}|{run_id}".encode()).hexdigest()[:32]


def run_span_of(platform: str, run_id: str) -> tuple[str, str]:
    """(trace id, span id) of the run's own span as the exporter sends it."""
    run = Run(
        source="s",
        platform=platform,
        base_url=BASE,
        run_id=run_id,
        agent_id="a",
        agent_name="a",
        status=RunStatus.SUCCEEDED,
        raw_status="completed",
        started_at=T0,
        ended_at=T0,
    )
    span = run_to_spans(run)[0]
    return str(span["traceId"]), str(span["spanId"])


def attrs(record: Any) -> dict[str, object]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in record.attributes}


def decoded(platform: str, event: ActivityEvent) -> Any:
    [record] = ScopeLogs.FromString(to_protobuf([describe(platform, BASE, event)], SpanWriter())).log_records
    return record


def test_a_runtools_event_in_a_run() -> None:
    [raw] = fixture("runtools", "activity_page.json")["data"]["events"]
    ev, at = parse_event("feed", raw)
    record = decoded("runtools", counted_event(ev, at))
    assert record.event_name == "agent_activity.runtools.thread"  # its bounded resourceType
    assert record.time_unix_nano == 1_778_414_400 * 10**9  # occurredAt, 2026-05-10T12:00:00Z
    assert (record.severity_number, record.severity_text) == (9, "info")
    assert record.body.string_value == "Agent run completed"
    assert (record.trace_id.hex(), record.span_id.hex()) == run_span_of("runtools", "run_abc123")
    assert record.trace_id.hex() == trace_of("runtools", "run_abc123")
    assert record.flags == 1
    a = attrs(record)
    assert a["event.name"] == "agent_activity.runtools.thread"
    assert a["agent_activity.event.type"] == "agent.run.completed"
    assert a["agent_activity.event.id"] == "act_abc123"
    assert a["agent_activity.run_id"] == "run_abc123"
    assert a["agent_activity.event.thread_id"] == "thr_abc123"
    assert a["agent_activity.event.status"] == "completed"


def test_a_runtools_event_outside_any_run_has_no_trace_context() -> None:
    raw = {"id": "e9", "eventType": "sandbox.created", "resourceType": "sandbox", "severity": "warning"}
    ev, at = parse_event("feed", {**raw, "occurredAt": "2026-05-10T12:00:00Z"})
    record = decoded("runtools", counted_event(ev, at))
    assert (record.trace_id, record.span_id, record.flags) == (b"", b"", 0)
    assert (record.severity_number, record.severity_text) == (13, "warning")
    assert record.event_name == "agent_activity.runtools.sandbox"
    assert record.body.string_value == "sandbox.created"  # no title or summary: its type
    assert "agent_activity.run_id" not in attrs(record)


def test_a_bctrl_item_carries_its_message_and_its_run() -> None:
    raw = fixture("bctrl", "activity_page.json")["items"][1]
    item, run_id, _, _ = parse_item("b", raw)
    record = decoded("bctrl", item_event(item, run_id))
    assert record.event_name == "agent_activity.bctrl.action"
    assert record.body.string_value == "Navigating to https://example.com"
    assert (record.trace_id.hex(), record.span_id.hex()) == run_span_of("bctrl", "run_01")
    a = attrs(record)
    assert (a["agent_activity.event.title"], a["agent_activity.event.level"]) == ("Navigate", "summary")
    assert a["agent_activity.event.command_id"] == "cmd_1"


def test_agent_activities_timeline_entries_of_a_run() -> None:
    listing = fixture("agent_activities", "list_activities.json")["data"]["items"][0]["attributes"]
    detail = fixture("agent_activities", "get_activity.json")["data"]["attributes"]
    run = build_run("acts", BASE, "uid", "run-uuid-here", listing, detail, None)
    records = [decoded("agent_activities", e) for e in run.events]
    assert [r.event_name for r in records] == ["agent_activity.agent_activities.timeline"] * 2
    assert [attrs(r)["agent_activity.event.type"] for r in records] == ["goal_defined", "run_completed"]
    assert records[0].body.string_value == "Respond to payment inquiry from Acme Corp"  # the entry's detail
    assert records[1].body.string_value == "run_completed"
    assert {(r.trace_id.hex(), r.span_id.hex()) for r in records} == {run_span_of("agent_activities", run.run_id)}
    assert attrs(records[1])["agent_activity.timeline.index"] == 3


@pytest.mark.parametrize(
    ("severity", "number", "text"),
    [
        (Severity.INFO, 9, "info"),
        (Severity.WARNING, 13, "warning"),
        (Severity.ERROR, 17, "error"),
        (Severity.UNKNOWN, 0, ""),
    ],
)
def test_severity_mapping(severity: Severity, number: int, text: str) -> None:
    record = describe("bctrl", BASE, ActivityEvent(id="i", name="t", time=T0, severity=severity))
    assert (record.severity_number, record.severity_text) == (number, text)


def test_event_names_stay_bounded() -> None:
    assert event_name("runtools", "tool") == "agent_activity.runtools.tool"
    for free_text in ("Disk full on host-7!", "", "a" * 100, "tool call"):
        assert event_name("runtools", free_text) == "agent_activity.runtools.unknown"


def test_long_values_are_truncated_like_span_attributes() -> None:
    event = ActivityEvent(id="i", name="t", time=T0, message="m" * 50, attributes=(("agent_activity.x", "v" * 50),))
    record = describe("bctrl", BASE, event, max_attribute_length=16)
    assert record.body == "m" * 16 and record.attributes["agent_activity.x"] == "v" * 16


def test_encoding_is_canonical_and_both_forms_agree() -> None:
    events = [
        ActivityEvent(id="a", name="x", time=T0, category="tool", severity=Severity.ERROR, run_id="r1", message="m"),
        ActivityEvent(id="b", name="y", time=T0, attributes=(("agent_activity.timeline.index", 4),)),
    ]
    records = [describe("runtools", BASE, e) for e in events]
    payload = to_protobuf(records, SpanWriter())
    # Field order and defaults as protobuf's own serialiser writes them: the
    # same bytes on every re-send.
    assert ScopeLogs.FromString(payload).SerializeToString() == payload
    assert to_protobuf([describe("runtools", BASE, e) for e in events], SpanWriter()) == payload
    # A row written for protocol: file, sent over OTLP (and back) after a switch.
    as_json = json.dumps([to_json(r) for r in records]).encode()
    assert encode_protobuf_logs(json.loads(as_json)) == payload
    assert json_logs([payload]) == json_logs([as_json]) == [to_json(r) for r in records]
    first = json_logs([payload])[0]
    assert (first["traceId"], first["severityNumber"], first["eventName"]) == (
        trace_of("runtools", "r1"),
        17,
        "agent_activity.runtools.tool",
    )
