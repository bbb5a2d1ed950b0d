"""One fix for both HTTP clients (platform reads and OTLP posts)."""

from __future__ import annotations

import httpx


def released(response: httpx.Response) -> httpx.Response:
    """httpx leaves a finished response in a reference cycle with its spent
    stream (BoundSyncStream -> response -> request), so a page read or a
    posted request body (hundreds of KB) would stay in memory until the
    cyclic garbage collector runs, which the exporter's process does rarely
    (app.tuned_gc). Replacing the spent stream breaks the cycle; the body is
    already read."""
    response.stream = httpx.ByteStream(b"")
    return response
