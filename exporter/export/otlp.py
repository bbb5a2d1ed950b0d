"""Span delivery: the outbox drain and the three ways out (OTLP http/protobuf
and grpc through the OpenTelemetry SDK's exporters, or OTLP/JSON lines).

The outbox holds spans as OTLP/JSON objects, one row per run. The drain
thread takes the oldest rows, sends them, and deletes them only once the
backend has accepted them; on failure it keeps them and backs off. A row
that keeps failing while the backend is reachable is given up after
MAX_ATTEMPTS so one bad batch cannot block the outbox for ever.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from exporter import __version__
from exporter.config import TracesConfig
from exporter.convert.metrics import Op, Update
from exporter.export.registry import MetricsBook
from exporter.state.store import OutboxRow, StateStore

log = logging.getLogger(__name__)

SCOPE = InstrumentationScope("agent-activity-exporter", __version__)
MAX_BATCH_SPANS = 512
MAX_ATTEMPTS = 50
MAX_BACKOFF = 30.0
_STATUS = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}


def encode_payload(spans: Sequence[dict[str, object]]) -> bytes:
    return json.dumps(spans, separators=(",", ":")).encode()


def resource_attributes(service_name: str, source: str) -> dict[str, str]:
    return {"service.name": service_name, "service.version": __version__, "agent_activity.source": source}


class Sender(Protocol):
    def send(self, source: str, spans: list[dict[str, object]]) -> bool: ...

    def close(self) -> None: ...


class SdkSender:
    """Decodes OTLP/JSON spans into SDK ReadableSpans for an SDK exporter."""

    def __init__(self, exporter: SpanExporter, service_name: str) -> None:
        self._exporter = exporter
        self._service = service_name
        self._resources: dict[str, Resource] = {}  # one Resource per source: encode_spans groups by it

    def send(self, source: str, spans: list[dict[str, object]]) -> bool:
        resource = self._resources.get(source)
        if resource is None:
            resource = self._resources[source] = Resource.create(resource_attributes(self._service, source))
        readable = [to_readable_span(s, resource) for s in spans]
        return self._exporter.export(readable) is SpanExportResult.SUCCESS

    def close(self) -> None:
        self._exporter.shutdown()


class FileSender:
    """OTLP/JSON lines: one ExportTraceServiceRequest per line."""

    def __init__(self, path: str, service_name: str) -> None:
        self._path = Path(path)
        self._service = service_name

    def send(self, source: str, spans: list[dict[str, object]]) -> bool:
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
            log.warning("cannot write traces file %s: %s", self._path, err)
            return False
        return True

    def close(self) -> None:
        pass


def make_sender(config: TracesConfig, service_name: str) -> Sender | None:
    if not config.enabled:
        return None
    if config.protocol == "file":
        return FileSender(config.file, service_name)
    exporter: SpanExporter
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        insecure = not (config.url or "").startswith("https://")
        exporter = GrpcExporter(
            endpoint=config.url, insecure=insecure, headers=dict(config.headers), timeout=config.timeout
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter(endpoint=config.url, headers=dict(config.headers), timeout=config.timeout)
    return SdkSender(exporter, service_name)


def to_readable_span(span: dict[str, object], resource: Resource) -> ReadableSpan:
    """The one place spans become SDK objects (its docstring discourages
    hand-built spans, hence exactly one function, contract-tested)."""
    trace_id = int(str(span["traceId"]), 16)
    context = SpanContext(trace_id, int(str(span["spanId"]), 16), is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
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
        for e in span.get("events", []) or []  # type: ignore[union-attr]
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


def _attributes(items: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items or []:  # type: ignore[attr-defined]
        out[item["key"]] = _value(item["value"])
    return out


def _value(v: dict[str, object]) -> object:
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "intValue" in v:
        return int(str(v["intValue"]))
    if "doubleValue" in v:
        return float(v["doubleValue"])  # type: ignore[arg-type]
    values = v.get("arrayValue", {}).get("values", [])  # type: ignore[union-attr]
    return tuple(_value(x) for x in values)


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
        self._clock = clock
        self._thread = threading.Thread(target=self._loop, name="outbox-drain", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._backoff or 1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            while self.drain_once():
                if self._stop.is_set():
                    return

    def drain_once(self) -> bool:
        """Send one batch; True when something was delivered and more may wait."""
        rows = self._store.outbox_take(MAX_BATCH_SPANS)
        if not rows:
            self._backoff = 0.0
            return False
        by_source: dict[str, list[OutboxRow]] = {}
        for row in rows:
            by_source.setdefault(row.source, []).append(row)
        delivered = True
        for source, group in by_source.items():
            spans: list[dict[str, object]] = [s for r in group for s in json.loads(r.payload)]
            if self._sender.send(source, spans):
                self._finish(group, "success")
            else:
                delivered = False
                self._failed(group)
        if delivered:
            self._backoff = 0.0
        else:
            self._backoff = min(MAX_BACKOFF, max(1.0, self._backoff * 2))
        return delivered

    def _finish(self, rows: list[OutboxRow], outcome: str) -> None:
        spans = sum(r.spans for r in rows)
        with self._commit_lock:
            staged = self._book.stage([Update(Op.INC, "agent_exporter_spans_exported_total", (outcome,), spans)])
            self._store.outbox_done([r.id for r in rows], self._book.persisted_form(staged))
            self._book.publish(staged)

    def _failed(self, rows: list[OutboxRow]) -> None:
        spans = sum(r.spans for r in rows)
        with self._commit_lock:
            staged = self._book.stage([Update(Op.INC, "agent_exporter_spans_exported_total", ("failure",), spans)])
            self._store.write_series(self._book.persisted_form(staged))
            self._book.publish(staged)
        self._store.outbox_failed([r.id for r in rows])
        hopeless = [r for r in rows if r.attempts + 1 >= MAX_ATTEMPTS]
        if hopeless:
            log.error("giving up %d span(s) after %d failed attempts", sum(r.spans for r in hopeless), MAX_ATTEMPTS)
            self._finish(hopeless, "dropped")

    def flush(self, deadline: float) -> None:
        """Deliver what is waiting until the outbox is empty or the deadline
        (a monotonic time) passes: for SIGTERM and `once`."""
        while self._clock() < deadline:
            if not self.drain_once():
                if not self._store.outbox_take(1):
                    return
                time.sleep(min(0.5, max(0.0, deadline - self._clock())))

    def stop(self, flush_deadline: float | None = None) -> None:
        """End the thread, then deliver what waits until the deadline."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        if flush_deadline is not None:
            self.flush(flush_deadline)
        self._sender.close()
