"""The HTTP plumbing: a threaded stdlib server that hands every request to one
dispatch function and writes back what it returns. It knows nothing of
platforms, faults or the world."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


# (method, raw path with query, headers with lower-cased names, body) -> reply
Dispatch = Callable[[str, str, dict[str, str], bytes], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # server_close() would otherwise join every handler thread, including
    # those parked on idle keep-alive connections: stop() must not hang.
    block_on_close = False
    allow_reuse_address = True


def _handler_for(dispatch: Dispatch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Head and body go out in two writes: without this, Nagle holds the body
        # until the client's delayed ACK, adding ~40 ms to every small answer.
        disable_nagle_algorithm = True

        protocol_version = "HTTP/1.1"  # keep-alive, as clients like httpx expect
        server_version = "agent-platform-simulator/1"
        sys_version = ""

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = dispatch(method, self.path, headers, body)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (e.g. its timeout beat a slow fault).
                log.debug("client went away before %s %s was answered", method, self.path)
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            log.debug("%s - %s", self.address_string(), format % args)

    return Handler


class HttpServer:
    def __init__(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> tuple[str, int]:
        if self._server is not None:
            raise RuntimeError("already started")
        self._server = _Server((host, port), _handler_for(self._dispatch))
        bound_host, bound_port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"simulator-http-{bound_port}",
            daemon=True,
        )
        self._thread.start()
        log.info("simulator listening on http://%s:%s", bound_host, bound_port)
        return str(bound_host), int(bound_port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
