"""The drain routes each signal's outbox rows to its own sender, counts
them in its own metric, and keeps one signal's failing backend from holding
back the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.export.otlp import DELIVERED, Outcome, SendResult
from exporter.export.outbox import OutboxDrain
from exporter.export.prometheus import MetricsBook
from exporter.model import Batch, Run
from exporter.pipeline import Recorder
from exporter.state.store import StateStore

RETRY = SendResult(Outcome.RETRY, "HTTP 503")


class Backend:
    """A sender of either signal recording what it was sent."""

    def __init__(self, result: SendResult = DELIVERED) -> None:
        self.result = result
        self.sent: list[tuple[str, list[bytes]]] = []

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        raise AssertionError("not used")

    def encode_logs(self, platform: str, base_url: str, events: object, max_attribute_length: int) -> tuple[int, bytes]:
        raise AssertionError("not used")

    def send(self, source: str, payloads: list[bytes]) -> SendResult:
        self.sent.append((source, payloads))
        return self.result

    def close(self) -> None:
        pass


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(tmp_path / "state.db")
    s.commit("a", Batch(), [("r1", 2, b"spans-a")], {}, 10_000, logs=(3, b"logs-a"))
    s.commit("b", Batch(), [("r2", 1, b"spans-b")], {}, 10_000, logs=(5, b"logs-b"))
    yield s
    s.close()


def test_each_signal_goes_to_its_own_sender_and_metric(store: StateStore) -> None:
    book = MetricsBook({}, max_agents=10, max_tools=10)
    spans, logs = Backend(), Backend()
    drain = OutboxDrain(spans, Recorder(store, book), logs=logs)
    assert drain.drain_once() is True
    assert spans.sent == [("a", [b"spans-a"]), ("b", [b"spans-b"])]
    assert logs.sent == [("a", [b"logs-a"]), ("b", [b"logs-b"])]
    assert store.outbox_spans() == 0 and not drain.waiting()
    assert book.value("agent_exporter_spans_exported_total", ("success",)) == 3
    assert book.value("agent_exporter_log_records_exported_total", ("success",)) == 8


def test_a_failing_logs_backend_keeps_its_records_and_holds_back_no_span(store: StateStore) -> None:
    book = MetricsBook({}, max_agents=10, max_tools=10)
    spans, logs = Backend(), Backend(RETRY)
    drain = OutboxDrain(spans, Recorder(store, book), logs=logs)
    drain.drain_once()
    assert [source for source, _ in spans.sent] == ["a", "b"]
    assert [r.payload for r in store.outbox_take(100)] == [b"logs-a", b"logs-b"]  # kept for retry
    assert drain.failing  # so a full outbox drops rather than waits
    assert book.value("agent_exporter_log_records_exported_total", ("failure",)) == 3
    assert book.value("agent_exporter_spans_exported_total", ("failure",)) is None  # never counted
    logs.result = DELIVERED
    assert drain.drain_once() is True and store.outbox_spans() == 0 and not drain.failing


def test_rows_of_a_signal_that_is_off_wait(store: StateStore) -> None:
    """Logs turned off: their rows stay, untouched, for a later run with
    logs on; traces off: spans wait likewise."""
    spans = Backend()
    only_traces = OutboxDrain(spans, Recorder(store, MetricsBook({}, max_agents=10, max_tools=10)))
    assert only_traces.drain_once() is True
    assert not only_traces.waiting()
    assert [r.payload for r in store.outbox_take(100)] == [b"logs-a", b"logs-b"]
    store.commit("a", Batch(), [("r3", 1, b"spans-c")], {}, 10_000)
    logs = Backend()
    only_logs = OutboxDrain(None, Recorder(store, MetricsBook({}, max_agents=10, max_tools=10)), logs=logs)
    only_logs.drain_once()
    assert [p for _, payloads in logs.sent for p in payloads] == [b"logs-a", b"logs-b"]
    assert [r.payload for r in store.outbox_take(100)] == [b"spans-c"]
    with pytest.raises(AssertionError, match="traces are off"):
        only_logs.encode(None, False, 10)  # type: ignore[arg-type]
    assert only_logs.sends_logs and not only_logs.sends_spans
