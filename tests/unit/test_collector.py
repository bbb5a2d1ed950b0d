"""The exporter's process runs the cyclic garbage collector rarely
(app.tuned_gc), so nothing large may wait for it: a finished httpx
response, with the page read or the span batch posted, goes when the
caller drops it (httpx keeps it in a cycle with its spent stream)."""

from __future__ import annotations

import gc
import weakref

import httpx

from exporter.app import GC_THRESHOLDS, tuned_gc
from exporter.convert.protobuf import SpanWriter
from exporter.convert.traces import run_to_protobuf
from exporter.export.otlp import HttpSender, Outcome
from exporter.sources.http import ApiClient
from tests.conftest import NoWait
from tests.unit.test_traces import make_run


def test_the_exporter_process_runs_the_collector_rarely_and_restores_it() -> None:
    before = gc.get_threshold()
    with tuned_gc():
        assert gc.get_threshold() == GC_THRESHOLDS and gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_read_page_is_freed_at_once_not_by_the_cyclic_collector() -> None:
    responses: list[weakref.ref[httpx.Response]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, json={"data": ["x" * 1000] * 100})
        responses.append(weakref.ref(response))
        return response

    api = ApiClient(
        source="s",
        base_url="https://api.example",
        headers={},
        timeout=5.0,
        transport=httpx.MockTransport(handler),
        stop=NoWait(),
    )
    gc.collect()
    gc.disable()
    try:
        assert api.get_json("/v1/x") == {"data": ["x" * 1000] * 100}
        assert responses and responses[0]() is None
    finally:
        gc.enable()


def test_a_posted_span_batch_is_freed_once_sent() -> None:
    requests: list[weakref.ref[httpx.Request]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(weakref.ref(request))
        return httpx.Response(200)

    sender = HttpSender("http://collector/v1/traces", {}, 5.0, "svc")
    sender._client = httpx.Client(transport=httpx.MockTransport(handler))
    rows = [run_to_protobuf(make_run(run_id=f"run_{i}"), SpanWriter())[1] for i in range(50)]
    gc.collect()
    gc.disable()
    try:
        assert sender.send("feed", rows).outcome is Outcome.DELIVERED
        assert requests and requests[0]() is None
    finally:
        gc.enable()
        sender.close()
