"""A real OTLP endpoint for tests and benchmarks: accepts protobuf
ExportTraceServiceRequests on /v1/traces and ExportLogsServiceRequests on
/v1/logs (or both over gRPC) and keeps the decoded spans and log records."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, object]
    events: list[tuple[str, int, dict[str, object]]]
    resource: dict[str, object]


@dataclass(frozen=True)
class ReceivedLog:
    time_ns: int
    severity_number: int
    severity_text: str
    body: str
    event_name: str
    trace_id: str  # "" when the record has none
    span_id: str
    flags: int
    attributes: dict[str, object]
    resource: dict[str, object]
    raw: bytes  # the record's own bytes: an identical re-send has the same


@dataclass
class OtlpReceiver:
    spans: list[ReceivedSpan] = field(default_factory=list)
    logs: list[ReceivedLog] = field(default_factory=list)
    requests: int = 0  # accepted export requests (either signal)
    posts: int = 0  # every POST, refused ones included
    fail_with: int | None = None  # answer every request with this status (outage tests)
    endpoint: str = ""  # the base URL start() returned, where a fixture keeps it
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.posts += 1
                if receiver.fail_with:
                    self.send_response(receiver.fail_with)
                    self.end_headers()
                    return
                if self.path not in ("/v1/traces", "/v1/logs") or (
                    self.headers.get("Content-Type") != "application/x-protobuf"
                ):
                    self.send_response(400)
                    self.end_headers()
                    return
                if self.path == "/v1/logs":
                    receiver._add_logs(ExportLogsServiceRequest.FromString(body))
                    out = ExportLogsServiceResponse().SerializeToString()
                else:
                    receiver._add(ExportTraceServiceRequest.FromString(body))
                    out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start_grpc(self) -> str:
        """The same receiver as an OTLP/gRPC TraceService and LogsService."""
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        receiver = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: ExportTraceServiceRequest, context: object) -> ExportTraceServiceResponse:  # noqa: N802
                receiver._add(request)
                return ExportTraceServiceResponse()

        class LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: ExportLogsServiceRequest, context: object) -> ExportLogsServiceResponse:  # noqa: N802
                receiver._add_logs(request)
                return ExportLogsServiceResponse()

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        # The generated gRPC modules have no type information (grpcio-tools writes none).
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self._grpc)  # type: ignore[no-untyped-call]
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsServicer(), self._grpc)  # type: ignore[no-untyped-call]
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if getattr(self, "_grpc", None) is not None:
            self._grpc.stop(grace=None)
        if getattr(self, "_server", None) is not None:
            self._server.shutdown()
            self._server.server_close()

    def _add(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            self.requests += 1
            for rs in request.resource_spans:
                resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append(
                            ReceivedSpan(
                                trace_id=s.trace_id.hex(),
                                span_id=s.span_id.hex(),
                                parent_span_id=s.parent_span_id.hex(),
                                name=s.name,
                                start_ns=s.start_time_unix_nano,
                                end_ns=s.end_time_unix_nano,
                                status_code=s.status.code,
                                status_message=s.status.message,
                                attributes={a.key: _value(a.value) for a in s.attributes},
                                events=[
                                    (e.name, e.time_unix_nano, {a.key: _value(a.value) for a in e.attributes})
                                    for e in s.events
                                ],
                                resource=resource,
                            )
                        )

    def _add_logs(self, request: ExportLogsServiceRequest) -> None:
        with self._lock:
            self.requests += 1
            for rl in request.resource_logs:
                resource = {a.key: _value(a.value) for a in rl.resource.attributes}
                for sl in rl.scope_logs:
                    for r in sl.log_records:
                        self.logs.append(
                            ReceivedLog(
                                time_ns=r.time_unix_nano,
                                severity_number=r.severity_number,
                                severity_text=r.severity_text,
                                body=r.body.string_value,
                                event_name=r.event_name,
                                trace_id=r.trace_id.hex(),
                                span_id=r.span_id.hex(),
                                flags=r.flags,
                                attributes={a.key: _value(a.value) for a in r.attributes},
                                resource=resource,
                                raw=r.SerializeToString(),
                            )
                        )

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def log_snapshot(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self.logs)


def _value(v: object) -> object:
    kind = v.WhichOneof("value")  # type: ignore[attr-defined]
    if kind == "array_value":
        return tuple(_value(x) for x in v.array_value.values)  # type: ignore[attr-defined]
    return getattr(v, kind) if kind else None
