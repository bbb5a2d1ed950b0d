"""Run -> spans: ids, structure, GenAI attributes, status, content, and the
contract with the SDK's OTLP encoder."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import cast

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource

from exporter.convert.traces import run_to_spans, span_id_for, trace_id_for
from exporter.export.sdkspan import to_readable_span
from exporter.model import ActivityEvent, Run, RunStatus, Severity, ToolCall, ToolStatus
from tests.conftest import json_of

T0 = datetime(2026, 5, 10, 12, 0, 0, tzinfo=timezone.utc)


def make_run(**overrides: object) -> Run:
    run = Run(
        source="feed",
        platform="runtools",
        base_url="https://api.runtools.example",
        run_id="run_1",
        agent_id="triage",
        agent_name="triage",
        status=RunStatus.FAILED,
        raw_status="failed",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=10),
        conversation_id="thr_1",
        error_message="tool exploded",
        input_tokens=120,
        output_tokens=30,
        total_tokens=150,
        cost_usd=Decimal("0.023"),
        finish_reasons=("max_iterations_reached",),
        input="the prompt " * 50,
        tool_calls=(
            ToolCall(
                id="tc1",
                name="web_search",
                started_at=T0 + timedelta(seconds=1),
                ended_at=T0 + timedelta(seconds=3),
                status=ToolStatus.SUCCEEDED,
                input='{"q": "x"}',
            ),
            ToolCall(
                id="tc2",
                name="send_email",
                started_at=T0 + timedelta(seconds=4),
                ended_at=None,
                status=ToolStatus.FAILED,
                error_message="smtp down",
            ),
        ),
        events=(
            ActivityEvent(
                id="e1",
                name="agent.message.added",
                time=T0 + timedelta(seconds=2),
                severity=Severity.INFO,
                attributes=(("k", "v"),),
            ),
        ),
    )
    return replace(run, **overrides)  # type: ignore[arg-type]


def attrs(span: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for a in json_of(span["attributes"]):
        ((_kind, value),) = a["value"].items()
        out[a["key"]] = value
    return out


def test_ids_follow_the_spec_formula() -> None:
    expected = hashlib.sha256(b"runtools|https://api.runtools.example|run_1").hexdigest()[:32]
    assert trace_id_for("runtools", "https://api.runtools.example/", "run_1") == expected
    assert span_id_for(expected, "run:run_1") == hashlib.sha256(f"{expected}|run:run_1".encode()).hexdigest()[:16]


def test_same_run_same_ids_different_run_different_trace() -> None:
    a, b = run_to_spans(make_run()), run_to_spans(make_run())
    assert [(s["traceId"], s["spanId"]) for s in a] == [(s["traceId"], s["spanId"]) for s in b]
    other = run_to_spans(make_run(run_id="run_2"))
    assert other[0]["traceId"] != a[0]["traceId"]
    assert len({s["spanId"] for s in a}) == len(a)


def test_root_span_has_genai_attributes_and_error_status() -> None:
    root, *_children = run_to_spans(make_run())
    assert root["name"] == "invoke_agent triage" and "parentSpanId" not in root
    a = attrs(root)
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert a["gen_ai.provider.name"] == "runtools"
    assert a["gen_ai.agent.id"] == "triage" and a["gen_ai.conversation.id"] == "thr_1"
    assert a["gen_ai.usage.input_tokens"] == "120" and a["gen_ai.usage.output_tokens"] == "30"
    assert a["gen_ai.response.finish_reasons"] == {"values": [{"stringValue": "max_iterations_reached"}]}
    assert a["error.type"] == "failed" and a["openinference.span.kind"] == "AGENT"
    assert a["agent_activity.cost_usd"] == 0.023
    assert root["status"] == {"code": 2, "message": "tool exploded"}
    assert root["startTimeUnixNano"] == str(int(T0.timestamp()) * 10**9)
    assert [e["name"] for e in json_of(root["events"])] == ["agent.message.added"]


def test_tool_calls_are_child_spans() -> None:
    root, search, email = run_to_spans(make_run())
    assert search["parentSpanId"] == root["spanId"] == email["parentSpanId"]
    assert search["name"] == "execute_tool web_search"
    a = attrs(search)
    assert (a["gen_ai.tool.name"], a["gen_ai.tool.call.id"], a["openinference.span.kind"]) == (
        "web_search",
        "tc1",
        "TOOL",
    )
    assert email["status"] == {"code": 2, "message": "smtp down"}
    assert email["endTimeUnixNano"] == email["startTimeUnixNano"]  # no end known: zero length, flagged
    assert attrs(email)["agent_activity.end_time_derived"] is True


def test_status_mapping() -> None:
    def status(s: RunStatus) -> dict[str, object]:
        return run_to_spans(make_run(status=s, error_message=None))[0]["status"]  # type: ignore[return-value]

    assert status(RunStatus.SUCCEEDED) == {"code": 1}
    assert status(RunStatus.TIMED_OUT) == {"code": 2, "message": "timed_out"}
    assert status(RunStatus.CANCELLED) == {"code": 0}
    cancelled = attrs(run_to_spans(make_run(status=RunStatus.CANCELLED))[0])
    assert cancelled["agent_activity.status"] == "cancelled" and "error.type" not in cancelled


def test_incomplete_run_ends_at_its_last_known_activity() -> None:
    root = run_to_spans(make_run(status=RunStatus.INCOMPLETE, ended_at=None))[0]
    assert root["status"] == {"code": 0}
    assert attrs(root)["agent_activity.incomplete"] is True
    assert int(cast(str, root["endTimeUnixNano"])) == int((T0 + timedelta(seconds=4)).timestamp()) * 10**9


def test_end_before_start_becomes_zero_length() -> None:
    root = run_to_spans(make_run(ended_at=T0 - timedelta(seconds=5)))[0]
    assert root["endTimeUnixNano"] == root["startTimeUnixNano"]


def test_sub_agent_run_is_a_child_in_its_top_level_trace() -> None:
    parent = run_to_spans(make_run(run_id="exec_1"))[0]
    child = run_to_spans(make_run(run_id="exec_2", root_run_id="exec_1", parent_run_id="exec_1", agent_id="helper"))[0]
    assert child["traceId"] == parent["traceId"]
    assert child["parentSpanId"] == parent["spanId"]
    grandchild = run_to_spans(make_run(run_id="exec_3", root_run_id="exec_1", parent_run_id="exec_2"))[0]
    assert grandchild["traceId"] == parent["traceId"] and grandchild["parentSpanId"] == child["spanId"]


def test_content_only_with_capture_content_and_truncated() -> None:
    off = run_to_spans(make_run())
    assert not any(k in attrs(s) for s in off for k in ("agent_activity.input", "gen_ai.tool.call.arguments"))
    on = run_to_spans(make_run(), capture_content=True, max_attribute_length=32)
    assert attrs(on[0])["agent_activity.input"] == ("the prompt " * 50)[:32]
    assert attrs(on[1])["gen_ai.tool.call.arguments"] == '{"q": "x"}'


def test_spans_survive_the_sdk_encoder_intact() -> None:
    """The contract with opentelemetry-sdk: our OTLP/JSON decodes into
    ReadableSpans that the SDK's OTLP encoder writes with the same ids,
    times, attributes (typed) and status."""
    spans = run_to_spans(make_run())
    resource = Resource.create({"service.name": "t"})
    request = encode_spans([to_readable_span(s, resource) for s in spans])
    encoded = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [s.span_id.hex() for s in encoded] == [s["spanId"] for s in spans]
    root = encoded[0]
    assert root.trace_id.hex() == spans[0]["traceId"]
    assert root.start_time_unix_nano == int(cast(str, spans[0]["startTimeUnixNano"]))
    assert root.status.code == 2 and root.status.message == "tool exploded"
    by_key = {a.key: a.value for a in root.attributes}
    assert by_key["gen_ai.usage.input_tokens"].int_value == 120
    assert by_key["agent_activity.cost_usd"].double_value == 0.023
    assert [v.string_value for v in by_key["gen_ai.response.finish_reasons"].array_value.values] == [
        "max_iterations_reached"
    ]
    assert root.events[0].time_unix_nano == int((T0 + timedelta(seconds=2)).timestamp()) * 10**9
    assert encoded[1].parent_span_id.hex() == spans[0]["spanId"]
