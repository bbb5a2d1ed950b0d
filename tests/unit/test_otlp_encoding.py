"""Outbox rows are encoded once, as protobuf written straight from the run;
the drain only concatenates them. The contract: the request is byte for byte
what the SDK's own OTLP encoder writes for the same spans (the OTLP/JSON form
of the run, made into SDK ReadableSpans)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource

from exporter.convert.protobuf import SpanWriter, varint
from exporter.convert.traces import run_to_protobuf, run_to_spans
from exporter.export.otlp import _Encoder, resource_attributes
from exporter.export.otlpjson import encode_payload, encode_protobuf_payload, json_spans
from exporter.export.sdkspan import to_readable_span
from exporter.model import ActivityEvent, Attributes, Run, RunStatus, Step, ToolCall, ToolStatus
from tests.conftest import json_of
from tests.unit.test_traces import T0, make_run


def sdk_request(spans: list[dict[str, object]]) -> bytes:
    resource = Resource.create(resource_attributes("svc", "feed"))
    return encode_spans([to_readable_span(s, resource) for s in spans]).SerializeToString()  # type: ignore[no-any-return]


def rows(*runs: Run, capture_content: bool = False, max_len: int = 4096) -> list[bytes]:
    writer = SpanWriter()
    return [run_to_protobuf(r, writer, capture_content=capture_content, max_attribute_length=max_len)[1] for r in runs]


def test_concatenated_rows_equal_the_sdk_encoders_request() -> None:
    first, second = make_run(), make_run(run_id="run_2")
    expected = sdk_request(run_to_spans(first) + run_to_spans(second))
    assert _Encoder("svc").request_bytes("feed", rows(first, second)) == expected


def test_rows_count_the_spans_they_hold() -> None:
    count, _ = run_to_protobuf(make_run(), SpanWriter())
    assert count == len(run_to_spans(make_run())) == 3


TEXT = st.text(max_size=300)  # past 127 bytes, lengths take two varint bytes
VALUE = st.one_of(
    TEXT, st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.lists(TEXT, max_size=3)
)
ATTRS = st.lists(st.tuples(st.sampled_from(["k", "agent_activity.x", "gen_ai.agent.id", "é"]), VALUE), max_size=5)
OFFSET = st.integers(0, 10**9).map(lambda us: T0 + timedelta(microseconds=us))


def attributes(draw: st.DrawFn) -> Attributes:
    """Drawn attributes, list values included: the encoders take them (a
    Value is AttrValue | list[str]) though the model's type leaves them out."""
    return cast(Attributes, tuple(draw(ATTRS)))


@st.composite
def runs(draw: st.DrawFn) -> Run:
    tool = ToolCall(
        id=draw(TEXT),
        name=draw(TEXT),
        started_at=draw(OFFSET),
        ended_at=draw(st.none() | OFFSET),
        status=draw(st.sampled_from(list(ToolStatus))),
        attributes=attributes(draw),
        input=draw(st.none() | TEXT),
    )
    step = Step(
        key=draw(TEXT),
        name=draw(TEXT),
        started_at=draw(st.none() | OFFSET),
        ended_at=draw(st.none() | OFFSET),
        status=draw(st.sampled_from(list(ToolStatus))),
        attributes=attributes(draw),
    )
    event = ActivityEvent(id="e", name=draw(TEXT), time=draw(OFFSET), attributes=attributes(draw))
    return make_run(
        run_id=draw(TEXT),
        agent_name=draw(TEXT),
        status=draw(st.sampled_from(list(RunStatus))),
        ended_at=draw(st.none() | OFFSET),
        error_message=draw(st.none() | TEXT),
        conversation_id=draw(st.none() | TEXT),
        input_tokens=draw(st.none() | st.integers(0, 2**40)),
        sandbox=draw(st.none() | st.booleans()),
        root_run_id=draw(st.none() | st.just("root")),
        finish_reasons=tuple(draw(st.lists(TEXT, max_size=2))),
        tool_calls=draw(st.lists(st.just(tool), max_size=2)),
        steps=(step,),
        events=(event,),
        attributes=tuple(draw(ATTRS)),
    )


@settings(max_examples=150, deadline=None)
@given(runs(), st.booleans(), st.integers(1, 400))
def test_spans_written_from_the_run_equal_the_sdk_encoders_bytes(run: Run, content: bool, max_len: int) -> None:
    spans = run_to_spans(run, capture_content=content, max_attribute_length=max_len)
    written = rows(run, capture_content=content, max_len=max_len)
    assert _Encoder("svc").request_bytes("feed", written) == sdk_request(spans)
    assert json_spans(written) == spans
    assert encode_protobuf_payload(spans) == b"".join(written)  # a JSON row re-encoded: the same bytes


def test_varints_match_the_wire_format() -> None:
    assert varint(0) == b"\x00" and varint(127) == b"\x7f" and varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes, two's complement


def test_rows_stored_as_json_by_an_older_version_encode_the_same() -> None:
    spans = run_to_spans(make_run())
    encoder = _Encoder("svc")
    assert (
        encoder.request_bytes("feed", [encode_payload(spans)])
        == encoder.request_bytes("feed", [encode_protobuf_payload(spans)])
        == sdk_request(spans)
    )


def test_protobuf_rows_read_back_as_the_same_otlp_json() -> None:
    spans = run_to_spans(make_run(), capture_content=True)
    assert json_spans([encode_protobuf_payload(spans)]) == spans == json_spans(rows(make_run(), capture_content=True))


def test_a_repeated_attribute_key_keeps_its_first_place_and_last_value() -> None:
    run = replace(make_run(), attributes=(("gen_ai.agent.id", "override"),))
    (root, *_) = run_to_spans(run)
    keys = [a["key"] for a in json_of(root["attributes"])]
    assert keys.count("gen_ai.agent.id") == 1 and keys.index("gen_ai.agent.id") == 2
    values = {a["key"]: a["value"] for a in json_of(root["attributes"])}
    value = values["gen_ai.agent.id"]
    assert value == {"stringValue": "override"}
    assert _Encoder("svc").request_bytes("feed", rows(run)) == sdk_request(run_to_spans(run))


def test_a_writer_reused_across_runs_writes_the_same_bytes_and_stays_bounded() -> None:
    from exporter.convert import protobuf

    writer = SpanWriter()
    run = make_run()
    fresh = rows(run)[0]
    for _ in range(3):  # the second time a pair is written it is cached; the third time served from the cache
        assert run_to_protobuf(run, writer)[1] == fresh
    for i in range(3 * protobuf.HOT_ROUND):  # unique values: never cached, rounds forget them
        writer.attribute("agent_activity.run_id", f"run_{i}")
        writer.attribute("agent_activity.run_id", f"run_{i}")  # seen twice: cached until HOT_MAX
    assert len(writer._hot) <= protobuf.HOT_MAX and len(writer._candidates) <= protobuf.HOT_ROUND
    assert run_to_protobuf(run, writer)[1] == fresh
