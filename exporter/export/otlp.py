"""Span delivery: the outbox drain and the three ways out: OTLP http/protobuf
and grpc (bodies byte-identical to the OpenTelemetry SDK's OTLP encoder's,
which supplies the resource and scope), or OTLP/JSON lines.

The outbox holds one row per run, encoded once, when it enters: for the
OTLP senders as protobuf `Span` messages written straight from the run
(`convert.traces.run_to_protobuf`: the bytes of a `ScopeSpans` that holds
only spans), so that the drain builds a request by concatenating rows under
a cached resource and scope; for `protocol: file` as an OTLP/JSON list of
span objects. Either sender reads either form (rows written before a
change of protocol; a JSON row goes out through the same SpanWriter). The
drain thread takes the oldest rows, sends them, and deletes them only once
the backend has accepted them; on failure it keeps them and backs off. A
row the backend rejects (HTTP 4xx other than 401/403/408/429, or a
non-retryable gRPC status) is dropped and counted, never retried, so one
bad batch cannot block the outbox; retryable failures keep every span until
the backend is back or the outbox bound drops the oldest.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from exporter import __version__
from exporter.config import TracesConfig
from exporter.convert.metrics import Op, Update
from exporter.convert.protobuf import SpanWriter, field, scope_spans_entry
from exporter.convert.traces import SPAN_FLAGS, SPAN_KIND_INTERNAL, run_to_protobuf, run_to_spans
from exporter.export.registry import MetricsBook
from exporter.httpx_response import released
from exporter.model import Run
from exporter.retry_after import parse_retry_after
from exporter.state.store import OutboxRow, StateStore

log = logging.getLogger(__name__)

SCOPE = InstrumentationScope("agent-activity-exporter", __version__)
MAX_BATCH_SPANS = 512
LINGER_SECONDS = 0.2  # how long the drain waits for a batch to fill
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 300.0
_STATUS = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}


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
    code = _STATUS.get(int(status.get("code", 0)), StatusCode.UNSET)
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
        attributes=_writable(_attributes(span.get("attributes"))),
        events=[
            (int(str(e["timeUnixNano"])), str(e["name"]), _writable(_attributes(e.get("attributes")))) for e in events
        ],
        status_code=code.value,
        status_message=str(message) if message else "",
        flags=SPAN_FLAGS,
    )


def _writable(attributes: dict[str, AttributeValue]) -> list[tuple[str, str | bool | int | float | list[str]]]:
    return [
        (k, [str(x) for x in v] if isinstance(v, tuple) else cast(str | bool | int | float, v))
        for k, v in attributes.items()
    ]


def _is_json(payload: bytes) -> bool:
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
        if _is_json(payload):
            out.extend(json.loads(payload))
        else:
            out.extend(_json_span(s) for s in ScopeSpans.FromString(payload).spans)
    return out


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


class Sender(Protocol):
    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        """One run's spans as an outbox row (span count, bytes), in the form
        this sender sends."""
        ...

    def send(self, source: str, payloads: list[bytes]) -> SendResult: ...

    def close(self) -> None: ...


class _Encoder:
    """The protobuf senders' encoding: a run -> its outbox row, and outbox
    rows -> one serialised ExportTraceServiceRequest with one ResourceSpans
    per source. The resource and scope come from the SDK's encoder
    (Resource.create adds the SDK's and OTEL_RESOURCE_ATTRIBUTES'
    attributes), once per source; the spans are the rows' bytes. One
    SpanWriter, shared by the polling and drain threads (its caches allow it)."""

    def __init__(self, service_name: str) -> None:
        self._service = service_name
        self._heads: dict[str, tuple[bytes, bytes]] = {}  # source -> (ResourceSpans head, ScopeSpans head)
        self._writer = SpanWriter()

    def row(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        return run_to_protobuf(
            run, self._writer, capture_content=capture_content, max_attribute_length=max_attribute_length
        )

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
        spans = b"".join(
            p if not _is_json(p) else encode_protobuf_payload(json.loads(p), self._writer) for p in payloads
        )
        return field(1, rs_head + field(2, scope_head + spans))


_PROBE_SPAN: dict[str, object] = {
    "traceId": "1" * 32,
    "spanId": "1" * 16,
    "name": "probe",
    "startTimeUnixNano": "0",
    "endTimeUnixNano": "0",
}


class HttpSender:
    """OTLP/HTTP protobuf. The body comes from the SDK's encoder; the
    transport is ours so the drain knows what the backend said (the SDK
    exporter folds every failure into one FAILURE): 2xx delivered; 429, 5xx
    gateways, 401/403 (credentials, not the data) and network errors kept and
    retried; any other answer rejects the batch, never retried."""

    RETRY_CODES = frozenset({401, 403, 408, 429, 500, 502, 503, 504})

    def __init__(self, url: str, headers: dict[str, str], timeout: float, service_name: str) -> None:
        self._url = url
        self._encoder = _Encoder(service_name)
        self._client = httpx.Client(
            headers={**headers, "Content-Type": "application/x-protobuf"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        )

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        return self._encoder.row(run, capture_content, max_attribute_length)

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


class GrpcSender:
    """OTLP/gRPC TraceService.Export with the SDK's encoder; status codes
    classified as the OTLP specification says."""

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

    def __init__(self, url: str, headers: dict[str, str], timeout: float, service_name: str) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

        parsed = urlsplit(url if "://" in url else f"http://{url}")
        target = parsed.netloc or parsed.path
        if parsed.scheme == "https":
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = TraceServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = tuple(headers.items())
        self._timeout = timeout
        self._encoder = _Encoder(service_name)
        self._rpc_error = grpc.RpcError

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        return self._encoder.row(run, capture_content, max_attribute_length)

    def send(self, source: str, payloads: list[bytes]) -> SendResult:
        request = ExportTraceServiceRequest.FromString(self._encoder.request_bytes(source, payloads))
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
    """OTLP/JSON lines: one ExportTraceServiceRequest per line."""

    def __init__(self, path: str, service_name: str) -> None:
        self._path = Path(path)
        self._service = service_name

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        spans = run_to_spans(run, capture_content=capture_content, max_attribute_length=max_attribute_length)
        return len(spans), encode_payload(spans)

    def send(self, source: str, payloads: list[bytes]) -> SendResult:
        spans = json_spans(payloads)
        attrs = resource_attributes(self._service, source)
        request = {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]},
                    "scopeSpans": [{"scope": {"name": SCOPE.name, "version": SCOPE.version}, "spans": spans}],
                }
            ]
        }
        try:
            with self._path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(request, separators=(",", ":")) + "\n")
        except OSError as err:
            return SendResult(Outcome.RETRY, f"cannot write traces file {self._path}: {err.strerror}")
        return DELIVERED

    def close(self) -> None:
        pass


def make_sender(config: TracesConfig, service_name: str) -> Sender | None:
    if not config.enabled:
        return None
    if config.protocol == "file":
        return FileSender(config.file, service_name)
    assert config.url is not None
    if config.protocol == "grpc":
        return GrpcSender(config.url, dict(config.headers), config.timeout, service_name)
    return HttpSender(config.url, dict(config.headers), config.timeout, service_name)


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
    code = _STATUS.get(int(status.get("code", 0)), StatusCode.UNSET)
    events = [
        Event(str(e["name"]), _attributes(e.get("attributes")), timestamp=int(e["timeUnixNano"]))
        for e in cast(list[dict[str, Any]], span.get("events") or [])
    ]
    return ReadableSpan(
        name=str(span["name"]),
        context=context,
        parent=parent,
        resource=resource,
        attributes=_attributes(span.get("attributes")),
        events=events,
        kind=SpanKind.INTERNAL,
        status=Status(code, status.get("message") if code is StatusCode.ERROR else None),
        start_time=int(str(span["startTimeUnixNano"])),
        end_time=int(str(span["endTimeUnixNano"])),
        instrumentation_scope=SCOPE,
    )


def _attributes(items: object) -> dict[str, AttributeValue]:
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


def run_list(runs: Iterable[tuple[str, str | None]]) -> str:
    """Runs named in a log line as source/run id (rows from before the outbox
    named its runs show as source/?)."""
    return ", ".join(f"{source}/{run or '?'}" for source, run in runs)


class OutboxDrain:
    """Background thread moving spans from the outbox to the backend."""

    def __init__(
        self,
        store: StateStore,
        sender: Sender,
        book: MetricsBook,
        commit_lock: threading.Lock,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._sender = sender
        self._book = book
        self._commit_lock = commit_lock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._backoff = 0.0
        self._failing = False
        self._clock = clock
        self._delivered = threading.Condition()  # notified whenever rows leave the outbox
        self._thread = threading.Thread(target=self._loop, name="outbox-drain", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def make_room(self, spans: int, bound: int, stop: threading.Event) -> bool:
        """Hold the polling thread while the outbox has no room for `spans`
        more and the backend is taking spans: a backfill that reads faster
        than the backend accepts waits for it, instead of pushing its oldest
        traces out of a full outbox.

        Returns whether the commit may drop the oldest spans to keep within
        `bound`: only while the backend fails (or no drain thread runs), when
        waiting cannot make room. Otherwise the batch goes in whole (one
        larger than the bound, one committed while stopping, or one racing
        another source's commit): the outbox may pass the bound by a batch
        or so, and the drain catches up."""
        while (
            not stop.is_set()
            and not self._failing
            and self._thread.is_alive()
            and self._store.outbox_spans() > 0
            and self._store.outbox_spans() + spans > bound
        ):
            self._wake.set()
            with self._delivered:
                self._delivered.wait(0.5)  # bounded: a missed notification costs half a second
        return self._failing or not self._thread.is_alive()

    def notify(self) -> None:
        self._wake.set()

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        return self._sender.encode(run, capture_content, max_attribute_length)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._backoff or 1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._linger()
            while self.drain_once():
                if self._stop.is_set():
                    return
                self._linger()

    def _linger(self) -> None:
        """Let a batch fill (up to LINGER_SECONDS) rather than post every
        commit's few spans on their own: one request per MAX_BATCH_SPANS,
        like the SDK's BatchSpanProcessor, at the cost of a fraction of a
        second of freshness."""
        deadline = time.monotonic() + LINGER_SECONDS  # real time, whatever clock tests inject
        while self._store.outbox_spans() < MAX_BATCH_SPANS and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, LINGER_SECONDS / 4))

    def drain_once(self) -> bool:
        """Send one batch; True when something left the outbox and more may wait."""
        rows = self._store.outbox_take(MAX_BATCH_SPANS)
        if not rows:
            self._backoff = 0.0
            return False
        by_source: dict[str, list[OutboxRow]] = {}
        for row in rows:
            by_source.setdefault(row.source, []).append(row)
        for source, group in by_source.items():
            spans = sum(r.spans for r in group)
            result = self._sender.send(source, [r.payload for r in group])
            if result.outcome is Outcome.DELIVERED:
                self._finish(group, "success")
                if self._failing:
                    log.info("trace backend accepts spans again")
                self._failing = False
            elif result.outcome is Outcome.REJECTED:
                log.error(
                    "trace backend rejected %d span(s), dropped: %s; runs: %s",
                    spans,
                    result.detail,
                    run_list((r.source, r.run) for r in group),
                )
                self._finish(group, "rejected")
            else:
                self._failed(group, result)
                return False
        self._backoff = 0.0
        return True

    def _finish(self, rows: list[OutboxRow], outcome: str) -> None:
        spans = sum(r.spans for r in rows)
        with self._commit_lock:
            staged = self._book.stage([Update(Op.INC, "agent_exporter_spans_exported_total", (outcome,), spans)])
            self._store.outbox_done([r.id for r in rows], self._book.persisted_form(staged))
            self._book.publish(staged)
        self._book.set_live("agent_exporter_outbox_spans", (), float(self._store.outbox_spans()))
        with self._delivered:
            self._delivered.notify_all()

    def _failed(self, rows: list[OutboxRow], result: SendResult) -> None:
        """Keep the spans; back off (as told, when told), log the change once."""
        spans = sum(r.spans for r in rows)
        with self._commit_lock:
            staged = self._book.stage([Update(Op.INC, "agent_exporter_spans_exported_total", ("failure",), spans)])
            self._store.write_series(self._book.persisted_form(staged))
            self._book.publish(staged)
        self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))
        if result.retry_after is not None:
            self._backoff = min(MAX_RETRY_AFTER, max(self._backoff, result.retry_after))
        if not self._failing:
            log.warning("cannot deliver spans, keeping them and retrying: %s", result.detail)
        self._failing = True

    def flush(self, deadline: float, *, patience: float = 0.0) -> None:
        """Deliver what is waiting until the outbox is empty or the deadline
        (a monotonic time) passes: for SIGTERM and `once`. With `patience`,
        every delivery moves the deadline to at least that far ahead: a long
        outbox is delivered for as long as the backend keeps taking it."""
        while self._clock() < deadline:
            if self.drain_once():
                deadline = max(deadline, self._clock() + patience)
            elif not self._store.outbox_take(1):
                return
            else:
                time.sleep(min(0.5, max(0.0, deadline - self._clock())))

    def end_thread(self) -> None:
        """Stop the background thread (after its current batch); the drain
        can still flush from the caller's thread, never from two at once."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def stop(self, flush_deadline: float | None = None) -> None:
        """End the thread, then deliver what waits until the deadline."""
        self.end_thread()
        if flush_deadline is not None:
            self.flush(flush_deadline)
        self._sender.close()
