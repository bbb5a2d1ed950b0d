"""OutboxDrain.make_room: a poll waits for a backend that takes spans, and
may drop spans only while the backend fails."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.export.otlp import DELIVERED, Outcome, SendResult
from exporter.export.outbox import OutboxDrain
from exporter.export.prometheus import MetricsBook
from exporter.model import Batch, Run
from exporter.pipeline import Recorder
from exporter.state.store import StateStore


class Backend:
    """A sender whose answers the test controls; `gate` holds every send."""

    def __init__(self, result: SendResult = DELIVERED) -> None:
        self.result = result
        self.gate = threading.Event()
        self.sent: list[int] = []

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        raise AssertionError("not used")

    def send(self, source: str, payloads: list[bytes]) -> SendResult:
        self.gate.wait(30)
        self.sent.append(len(payloads))
        return self.result

    def close(self) -> None:
        self.gate.set()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(tmp_path / "state.db")
    yield s
    s.close()


def drain_over(store: StateStore, backend: Backend) -> OutboxDrain:
    return OutboxDrain(backend, Recorder(store, MetricsBook({}, max_agents=10, max_tools=10)))


def fill(store: StateStore, rows: int, spans: int = 10) -> None:
    store.commit("feed", Batch(), [(f"r{i}", spans, b"x") for i in range(rows)], {}, 10_000)


def test_a_poll_waits_while_the_backend_takes_spans_then_fits_the_bound(store: StateStore) -> None:
    fill(store, 30)  # 300 spans, the whole bound
    backend = Backend()
    drain = drain_over(store, backend)
    drain.start()
    waited = threading.Event()
    result: list[bool] = []

    def poll() -> None:
        waited.set()
        result.append(drain.make_room(50, 300, threading.Event()))

    poller = threading.Thread(target=poll)
    poller.start()
    waited.wait(5)
    assert poller.is_alive() and not result  # no room yet, and the backend has not answered: it waits
    backend.gate.set()  # the backend takes spans
    poller.join(30)
    assert result == [False] and store.outbox_spans() + 50 <= 300  # room made, nothing may be dropped
    drain.stop()


def test_a_batch_larger_than_the_bound_goes_in_whole_while_the_backend_takes_spans(store: StateStore) -> None:
    drain = drain_over(store, Backend())
    drain.start()
    assert drain.make_room(1_375, 300, threading.Event()) is False  # empty outbox: no wait, and no drop
    drain.stop()


def test_stopping_commits_its_batch_whole_instead_of_dropping(store: StateStore) -> None:
    fill(store, 30)
    backend = Backend()  # healthy, but its gate stays shut: no room is made
    drain = drain_over(store, backend)
    drain.start()
    stop = threading.Event()
    stop.set()  # SIGTERM: the poll must not wait, and must not lose what it read
    assert drain.make_room(50, 300, stop) is False
    drain.stop()


def test_only_a_failing_backend_makes_a_poll_drop_the_oldest(store: StateStore) -> None:
    fill(store, 30)
    backend = Backend(SendResult(Outcome.RETRY, "HTTP 503"))
    backend.gate.set()
    drain = drain_over(store, backend)
    assert drain.drain_once() is False  # the backend fails: the drain knows it
    drain.start()
    assert drain.make_room(50, 300, threading.Event()) is True  # no waiting: the commit trims to the bound
    drain.stop()


def test_without_a_drain_thread_the_bound_holds(store: StateStore) -> None:
    fill(store, 30)
    drain = drain_over(store, Backend())  # never started: nothing will make room
    assert drain.make_room(50, 300, threading.Event()) is True
