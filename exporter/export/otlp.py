"""The three ways spans and log records leave: OTLP http/protobuf and grpc
(bodies byte-identical to the OpenTelemetry SDK's OTLP encoder's, which
supplies the resource and scope), or OTLP/JSON lines (`protocol: file`).
A sender serves one signal (`traces` or `logs`): its URL, gRPC service and
request shape.

The outbox holds one row per run, encoded once, when it enters, by the
sender's `encode`: for the OTLP senders as protobuf `Span` messages written
straight from the run (`convert.traces.run_to_protobuf`), so that a request
is rows concatenated under a cached resource and scope; for `protocol: file`
as an OTLP/JSON list of span objects. Either sender reads either form
(`export.otlpjson`). Log records go the same way: a row holds one batch's
records (`convert.logrecords`), protobuf `LogRecord`s or an OTLP/JSON list;
ExportLogsServiceRequest has the field numbers of ExportTraceServiceRequest
(resource 1, scope 1, items 2, schema_url 3), so one encoder writes both
requests from the same resource and scope. A sender says what the backend answered: delivered,
retry (keep the spans, back off) or rejected (drop them: HTTP 4xx other than
401/403/408/429, or a non-retryable gRPC status), for `export.outbox`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.sdk.resources import Resource

from exporter import __version__
from exporter.config import LogsConfig, TracesConfig
from exporter.convert import logrecords
from exporter.convert.protobuf import SpanWriter, field
from exporter.convert.traces import run_to_protobuf, run_to_spans
from exporter.export.otlpjson import (
    encode_payload,
    encode_protobuf_logs,
    encode_protobuf_payload,
    is_json,
    json_logs,
    json_spans,
)
from exporter.export.sdkspan import SCOPE, to_readable_span
from exporter.httpx_response import released
from exporter.model import ActivityEvent, Run
from exporter.retry_after import parse_retry_after


def resource_attributes(service_name: str, source: str) -> dict[str, str]:
    return {"service.name": service_name, "service.version": __version__, "agent_activity.source": source}


class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # the backend is away or busy: keep the spans, back off
    REJECTED = "rejected"  # the backend refused this batch: retrying cannot help


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None


DELIVERED = SendResult(Outcome.DELIVERED)


TRACES, LOGS = "traces", "logs"


class Sender(Protocol):
    """What the drain needs: send rows of one source, close."""

    def send(self, source: str, payloads: list[bytes]) -> SendResult: ...

    def close(self) -> None: ...


class SpanSender(Sender, Protocol):
    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        """One run's spans as an outbox row (span count, bytes), in the form
        this sender sends."""
        ...


class LogSender(Sender, Protocol):
    def encode_logs(
        self, platform: str, base_url: str, events: Sequence[ActivityEvent], max_attribute_length: int
    ) -> tuple[int, bytes]:
        """A batch's activity items as one outbox row of log records
        (record count, bytes), in the form this sender sends."""
        ...


def _protobuf_logs(
    writer: SpanWriter, platform: str, base_url: str, events: Sequence[ActivityEvent], max_len: int
) -> tuple[int, bytes]:
    records = [logrecords.describe(platform, base_url, e, max_len) for e in events]
    return len(records), logrecords.to_protobuf(records, writer)


class _Encoder:
    """The protobuf senders' encoding: a run -> its outbox row, and outbox
    rows -> one serialised ExportTraceServiceRequest with one ResourceSpans
    per source. The resource and scope come from the SDK's encoder
    (Resource.create adds the SDK's and OTEL_RESOURCE_ATTRIBUTES'
    attributes), once per source; the spans are the rows' bytes. One
    SpanWriter, shared by the polling and drain threads (its caches allow it)."""

    def __init__(self, service_name: str, signal: str = TRACES) -> None:
        self._service = service_name
        self._heads: dict[str, tuple[bytes, bytes]] = {}  # source -> (ResourceSpans head, ScopeSpans head)
        self._writer = SpanWriter()
        # A row in the OTLP/JSON form (written for `protocol: file`) -> protobuf.
        self._from_json: Callable[[list[dict[str, object]], SpanWriter], bytes] = (
            encode_protobuf_logs if signal == LOGS else encode_protobuf_payload
        )

    def row(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        return run_to_protobuf(
            run, self._writer, capture_content=capture_content, max_attribute_length=max_attribute_length
        )

    def log_row(
        self, platform: str, base_url: str, events: Sequence[ActivityEvent], max_attribute_length: int
    ) -> tuple[int, bytes]:
        return _protobuf_logs(self._writer, platform, base_url, events, max_attribute_length)

    def _head(self, source: str) -> tuple[bytes, bytes]:
        head = self._heads.get(source)
        if head is None:
            resource = Resource.create(resource_attributes(self._service, source))
            probe = encode_spans([to_readable_span(_PROBE_SPAN, resource)]).resource_spans[0]
            scope = ScopeSpans(scope=probe.scope_spans[0].scope, schema_url=probe.scope_spans[0].schema_url)
            rs = ResourceSpans(resource=probe.resource, schema_url=probe.schema_url)
            head = self._heads[source] = (rs.SerializeToString(), scope.SerializeToString())
        return head

    def request_bytes(self, source: str, payloads: Sequence[bytes]) -> bytes:
        rs_head, scope_head = self._head(source)
        items = b"".join(p if not is_json(p) else self._from_json(json.loads(p), self._writer) for p in payloads)
        return field(1, rs_head + field(2, scope_head + items))


_PROBE_SPAN: dict[str, object] = {
    "traceId": "1" * 32,
    "spanId": "1" * 16,
    "name": "probe",
    "startTimeUnixNano": "0",
    "endTimeUnixNano": "0",
}


class _ProtobufRows:
    """The rows of the OTLP senders: protobuf, by their `_Encoder`."""

    _encoder: _Encoder

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        return self._encoder.row(run, capture_content, max_attribute_length)

    def encode_logs(
        self, platform: str, base_url: str, events: Sequence[ActivityEvent], max_attribute_length: int
    ) -> tuple[int, bytes]:
        return self._encoder.log_row(platform, base_url, events, max_attribute_length)


class HttpSender(_ProtobufRows):
    """OTLP/HTTP protobuf. The body comes from the SDK's encoder; the
    transport is ours so the drain knows what the backend said (the SDK
    exporter folds every failure into one FAILURE): 2xx delivered; 429, 5xx
    gateways, 401/403 (credentials, not the data) and network errors kept and
    retried; any other answer rejects the batch, never retried."""

    RETRY_CODES = frozenset({401, 403, 408, 429, 500, 502, 503, 504})

    def __init__(
        self, url: str, headers: dict[str, str], timeout: float, service_name: str, signal: str = TRACES
    ) -> None:
        self._url = url
        self._encoder = _Encoder(service_name, signal)
        self._client = httpx.Client(
            headers={**headers, "Content-Type": "application/x-protobuf"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        )

    def send(self, source: str, payloads: list[bytes]) -> SendResult:
        body = self._encoder.request_bytes(source, payloads)
        try:
            response = released(self._client.post(self._url, content=body))
        except httpx.TransportError as err:
            return SendResult(Outcome.RETRY, f"{type(err).__name__} posting to the OTLP endpoint")
        code = response.status_code
        if 200 <= code < 300:
            return DELIVERED
        detail = f"OTLP endpoint answered HTTP {code}"
        if code in self.RETRY_CODES:
            return SendResult(Outcome.RETRY, detail, parse_retry_after(response.headers.get("retry-after")))
        return SendResult(Outcome.REJECTED, detail)

    def close(self) -> None:
        self._client.close()


class GrpcSender(_ProtobufRows):
    """OTLP/gRPC TraceService.Export (LogsService.Export for logs) with the
    SDK's encoder; status codes classified as the OTLP specification says."""

    RETRY_CODES = frozenset(
        {
            "CANCELLED",
            "DEADLINE_EXCEEDED",
            "RESOURCE_EXHAUSTED",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
            "PERMISSION_DENIED",
        }
    )

    def __init__(
        self, url: str, headers: dict[str, str], timeout: float, service_name: str, signal: str = TRACES
    ) -> None:
        import grpc
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

        parsed = urlsplit(url if "://" in url else f"http://{url}")
        target = parsed.netloc or parsed.path
        if parsed.scheme == "https":
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(target)
        stub = LogsServiceStub if signal == LOGS else TraceServiceStub
        self._stub = stub(self._channel)
        self._request: type[ExportLogsServiceRequest] | type[ExportTraceServiceRequest] = (
            ExportLogsServiceRequest if signal == LOGS else ExportTraceServiceRequest
        )
        self._metadata = tuple(headers.items())
        self._timeout = timeout
        self._encoder = _Encoder(service_name, signal)
        self._rpc_error = grpc.RpcError

    def send(self, source: str, payloads: list[bytes]) -> SendResult:
        request = self._request.FromString(self._encoder.request_bytes(source, payloads))
        try:
            self._stub.Export(request, metadata=self._metadata, timeout=self._timeout)
        except self._rpc_error as err:
            code = err.code().name if hasattr(err, "code") else "UNKNOWN"
            outcome = Outcome.RETRY if code in self.RETRY_CODES else Outcome.REJECTED
            return SendResult(outcome, f"OTLP endpoint answered gRPC {code}")
        return DELIVERED

    def close(self) -> None:
        self._channel.close()


class FileSender:
    """OTLP/JSON lines: one ExportTraceServiceRequest (ExportLogsServiceRequest
    for logs) per line."""

    def __init__(self, path: str, service_name: str, signal: str = TRACES) -> None:
        self._path = Path(path)
        self._service = service_name
        self._signal = signal
        # (resource list key, scope list key, item list key, rows -> items)
        self._shape: tuple[str, str, str, Callable[[Sequence[bytes]], list[dict[str, object]]]] = (
            ("resourceLogs", "scopeLogs", "logRecords", json_logs)
            if signal == LOGS
            else ("resourceSpans", "scopeSpans", "spans", json_spans)
        )

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        spans = run_to_spans(run, capture_content=capture_content, max_attribute_length=max_attribute_length)
        return len(spans), encode_payload(spans)

    def encode_logs(
        self, platform: str, base_url: str, events: Sequence[ActivityEvent], max_attribute_length: int
    ) -> tuple[int, bytes]:
        records = [logrecords.to_json(logrecords.describe(platform, base_url, e, max_attribute_length)) for e in events]
        return len(records), encode_payload(records)

    def send(self, source: str, payloads: list[bytes]) -> SendResult:
        resources, scopes, items, read = self._shape
        attrs = resource_attributes(self._service, source)
        request = {
            resources: [
                {
                    "resource": {"attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]},
                    scopes: [{"scope": {"name": SCOPE.name, "version": SCOPE.version}, items: read(payloads)}],
                }
            ]
        }
        try:
            with self._path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(request, separators=(",", ":")) + "\n")
        except OSError as err:
            return SendResult(Outcome.RETRY, f"cannot write {self._signal} file {self._path}: {err.strerror}")
        return DELIVERED

    def close(self) -> None:
        pass


def make_sender(config: TracesConfig | LogsConfig, service_name: str) -> HttpSender | GrpcSender | FileSender | None:
    """The sender of a signal's section (traces or logs); None while it is off."""
    if not config.enabled:
        return None
    signal = LOGS if isinstance(config, LogsConfig) else TRACES
    if config.protocol == "file":
        return FileSender(config.file, service_name, signal)
    assert config.url is not None
    if config.protocol == "grpc":
        return GrpcSender(config.url, dict(config.headers), config.timeout, service_name, signal)
    return HttpSender(config.url, dict(config.headers), config.timeout, service_name, signal)
