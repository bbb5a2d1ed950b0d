"""HTTP: /metrics, /healthz, /readyz and /status. Reads snapshots only,
never a platform, so a scrape is fast whatever the vendors are doing.

/metrics answers in OpenMetrics when the scraper asks for it (that is the
only format that carries exemplars) and in the classic text format
otherwise. /status (and /) answers with the HTML status page when the
client prefers text/html to JSON (a browser), and with the JSON otherwise
(curl's */*, Accept: application/json); /status.json is always the JSON.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

StatusFn = Callable[[], dict[str, object]]
PageFn = Callable[[dict[str, object]], str]  # the status as HTML


class ExporterServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, status: StatusFn, page: PageFn) -> None:
        self.registry = registry
        self.status = status
        self.page = page
        self.ready = threading.Event()
        self.unready: Callable[[], str | None] = lambda: None  # why it is not ready although started (never a secret)
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: ExporterServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(server.registry), content_type)
            elif path == "/healthz":
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                reason = server.unready() if server.ready.is_set() else "starting"
                body = f"{reason or 'ready'}\n".encode()
                self._reply(503 if reason else 200, body, "text/plain; charset=utf-8")
            elif path in ("/status", "/") and prefers_html(self.headers.get("Accept", "")):
                page = server.page(server.status()).encode()
                self._reply(200, page, "text/html; charset=utf-8", {"Vary": "Accept", "Cache-Control": "no-store"})
            elif path in ("/status", "/", "/status.json"):
                body = json.dumps(server.status(), indent=2, sort_keys=True).encode() + b"\n"
                self._reply(200, body, "application/json", {"Vary": "Accept"} if path != "/status.json" else {})
            else:
                self._reply(404, b"not found: try /metrics, /status, /healthz, /readyz\n", "text/plain; charset=utf-8")

        def _reply(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
            log.debug("http: " + format, *args)

    return Handler


def prefers_html(accept: str) -> bool:
    """Whether an Accept header ranks text/html (or XHTML) above JSON: a
    browser's does; curl's */*, an empty one and application/json do not.
    On a tie the type named first wins."""
    html: tuple[float, int] = (0.0, 0)
    json_: tuple[float, int] = (0.0, 0)
    for index, part in enumerate(accept.split(",")):
        media, _, params = part.partition(";")
        media = media.strip().lower()
        q = _quality(params)
        rank = (q, -index)
        if media in ("text/html", "application/xhtml+xml"):
            html = max(html, rank)
        elif media in ("application/json", "text/json"):
            json_ = max(json_, rank)
    return html[0] > 0 and html > json_


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                return min(1.0, max(0.0, float(value)))
            except ValueError:
                return 0.0
    return 1.0
