"""Outbox rows are encoded once, as protobuf; the drain only concatenates
them. The contract: the request is byte for byte what the SDK's own OTLP
encoder writes for the same spans."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource

from exporter.convert.traces import run_to_spans
from exporter.export.otlp import (
    _Encoder,
    encode_payload,
    encode_protobuf_payload,
    json_spans,
    resource_attributes,
    to_readable_span,
)
from tests.unit.test_traces import make_run


def sdk_request(spans: list[dict[str, object]]) -> bytes:
    resource = Resource.create(resource_attributes("svc", "feed"))
    return encode_spans([to_readable_span(s, resource) for s in spans]).SerializeToString()  # type: ignore[no-any-return]


def test_concatenated_rows_equal_the_sdk_encoders_request() -> None:
    first, second = run_to_spans(make_run()), run_to_spans(make_run(run_id="run_2"))
    rows = [encode_protobuf_payload(first), encode_protobuf_payload(second)]
    assert _Encoder("svc").request_bytes("feed", rows) == sdk_request(first + second)


def test_rows_stored_as_json_by_an_older_version_encode_the_same() -> None:
    spans = run_to_spans(make_run())
    encoder = _Encoder("svc")
    assert encoder.request_bytes("feed", [encode_payload(spans)]) == encoder.request_bytes(
        "feed", [encode_protobuf_payload(spans)]) == sdk_request(spans)


def test_protobuf_rows_read_back_as_the_same_otlp_json() -> None:
    spans = run_to_spans(make_run(), capture_content=True)
    assert json_spans([encode_protobuf_payload(spans)]) == spans
