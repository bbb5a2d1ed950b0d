"""A page server that costs (almost) nothing: it replays pages captured once
from the simulator (capture.py), each response pre-rendered to bytes, over
HTTP/1.1 keep-alive on asyncio. The throughput benchmarks use it so that
what they time is the client (the exporter, or a baseline), not the
simulator, which renders every page from its world model under one lock.

    python -m benchmarks.pageserver CAPTURE.pkl [CAPTURE.pkl ...]

Prints its base URL, serves until stdin closes. GET /_stats -> {"hits", "misses"}:
a miss (a page that was never captured) answers 404 and means the client did
not ask what the capture asked, which the benchmark reports as a failure.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
from pathlib import Path
from typing import cast

from benchmarks.capture import Capture


def _response(status: int, content_type: str, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}.get(status, "OK")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode("ascii") + body


class Pages:
    def __init__(self, captures: list[Capture]) -> None:
        self.by_target: dict[bytes, bytes] = {}
        for capture in captures:
            for page in capture.pages:
                self.by_target[page.target.encode("ascii")] = _response(page.status, page.content_type, page.body)
        self.hits = 0
        self.misses = 0

    def answer(self, target: bytes) -> bytes:
        if target == b"/_stats":
            return _response(200, "application/json", json.dumps({"hits": self.hits, "misses": self.misses}).encode())
        found = self.by_target.get(target)
        if found is None:
            self.misses += 1
            return _response(404, "application/json", b'{"error":{"code":"not_found","message":"not captured"}}')
        self.hits += 1
        return found


class _Protocol(asyncio.Protocol):
    def __init__(self, pages: Pages) -> None:
        self._pages = pages
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._buf = self._buf[:end], self._buf[end + 4 :]
            line = head.split(b"\r\n", 1)[0]
            parts = line.split(b" ")
            target = parts[1] if len(parts) >= 2 else b"/"
            assert self._transport is not None
            self._transport.write(self._pages.answer(target))


async def _serve(pages: Pages) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(pages), "127.0.0.1", 0, backlog=128)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"http://127.0.0.1:{port}\n")
    sys.stdout.flush()
    done = asyncio.Event()
    stdin = cast(io.BufferedReader, sys.stdin.buffer)  # typeshed says BinaryIO, which has no read1
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not stdin.read1(65536) else None)
    await done.wait()
    server.close()


def main() -> int:
    pages = Pages([Capture.load(Path(p)) for p in sys.argv[1:]])
    asyncio.run(_serve(pages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
