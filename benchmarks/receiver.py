"""The tests' real OTLP/HTTP receiver (testkit/receiver.py: protobuf on
/v1/traces, every request decoded) in its own process, keeping counts
instead of span objects so that a backfill of 100,000s of spans costs it
little. Prints "<otlp base URL> <count URL>", serves until stdin closes.
GET <count URL> -> {"spans": n, "roots": n, "requests": n}.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from testkit.receiver import OtlpReceiver


class CountingReceiver(OtlpReceiver):
    span_count: int = 0
    root_count: int = 0

    def _add(self, request: ExportTraceServiceRequest) -> None:
        spans = roots = 0
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                spans += len(ss.spans)
                roots += sum(1 for s in ss.spans if not s.parent_span_id)
        with self._lock:
            self.requests += 1
            self.span_count += spans
            self.root_count += roots


def main() -> int:
    receiver = CountingReceiver()
    otlp = receiver.start()

    class Count(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with receiver._lock:
                body = json.dumps(
                    {"spans": receiver.span_count, "roots": receiver.root_count, "requests": receiver.requests}
                ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Count)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write(f"{otlp} http://127.0.0.1:{server.server_address[1]}/count\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.shutdown()
    receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
