"""A finished httpx response, and the request body it holds, go when the
caller drops them, without the cyclic collector (which the exporter's
process runs rarely)."""

from __future__ import annotations

import gc
import weakref

import httpx

from exporter.httpx_response import released


def test_a_posted_body_is_freed_when_the_response_is_dropped() -> None:
    requests: list[weakref.ref[httpx.Request]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(weakref.ref(request))
        return httpx.Response(200, content=b"{}")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    gc.collect()
    gc.disable()
    try:
        response = released(client.post("http://collector/v1/traces", content=b"x" * 500_000))
        assert response.status_code == 200 and response.content == b"{}"
        del response
        assert requests and requests[0]() is None
    finally:
        gc.enable()
