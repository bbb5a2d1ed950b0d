"""The outbox drain: the thread that moves spans (and log records, when logs
are on) from the outbox to their backends.

Each signal is a lane with its own sender and its own backoff: a logs
backend that is down holds back log records, never spans, and the other
way round. A lane takes its signal's oldest rows, sends them
(`export.otlp`), and deletes them only once the backend has accepted them;
on failure it keeps them and backs off. Rows of a signal that is off wait
in the outbox, as spans always did while traces were off.
A row the backend rejects is dropped and counted, never retried, so one bad
batch cannot block the outbox; retryable failures keep every span until the
backend is back or the outbox bound drops the oldest. What it delivers, drops
or fails to deliver is counted through the pipeline's one commit path
(`exporter.pipeline.Recorder.record`), under its commit lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from exporter.convert.metrics import Op, Update
from exporter.export.otlp import LOGS, TRACES, LogSender, Outcome, Sender, SendResult, SpanSender
from exporter.export.prometheus import MetricsBook, SeriesKey
from exporter.model import ActivityEvent, Run
from exporter.state.db import StateUnavailable
from exporter.state.store import OutboxRow, StateStore

log = logging.getLogger(__name__)

MAX_BATCH_SPANS = 512
LINGER_SECONDS = 0.2  # how long the drain waits for a batch to fill
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 300.0

R = TypeVar("R")


class Recording(Protocol):
    """The commit path the drain counts through: `exporter.pipeline.Recorder`
    (the export layer does not import the pipeline)."""

    @property
    def store(self) -> StateStore: ...

    @property
    def book(self) -> MetricsBook: ...

    def record(self, updates: Iterable[Update], write: Callable[[dict[SeriesKey, object]], R]) -> R: ...


def run_list(runs: Iterable[tuple[str, str | None]]) -> str:
    """Runs named in a log line as source/run id (rows from before the outbox
    named its runs show as source/?)."""
    return ", ".join(f"{source}/{run or '?'}" for source, run in runs)


# signal -> (what its backend is called, its items, the counter of their deliveries)
SIGNALS = {
    TRACES: ("trace backend", "span(s)", "agent_exporter_spans_exported_total"),
    LOGS: ("logs backend", "log record(s)", "agent_exporter_log_records_exported_total"),
}


@dataclass(slots=True)
class _Lane:
    """One signal's sender and its delivery state."""

    signal: str
    sender: Sender
    backoff: float = 0.0
    retry_at: float = 0.0  # monotonic: no send before this while failing
    failing: bool = False

    @property
    def words(self) -> tuple[str, str, str]:
        return SIGNALS[self.signal]


class OutboxDrain:
    """Background thread moving spans and log records from the outbox to
    their backends."""

    def __init__(
        self,
        sender: SpanSender | None,
        recorder: Recording,
        *,
        logs: LogSender | None = None,
        clock: Callable[[], float] = time.monotonic,
        sources: Callable[[], Collection[str] | None] = lambda: None,
    ) -> None:
        """`sources`: whose rows to deliver (None: all); a replica delivers
        the spans of the sources it reads, so two never send one row."""
        self._store = recorder.store
        self._sources = sources
        self._spans = sender
        self._logs = logs
        lanes: list[tuple[str, Sender | None]] = [(TRACES, sender), (LOGS, logs)]
        self._lanes = [_Lane(signal, s) for signal, s in lanes if s is not None]
        self._signals = tuple(lane.signal for lane in self._lanes)
        self._book = recorder.book
        self._recorder = recorder
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._state_wait = 0.0  # backoff while the state database is away (0: it answers)
        self._clock = clock
        self._delivered = threading.Condition()  # notified whenever rows leave the outbox
        self._thread = threading.Thread(target=self._loop, name="outbox-drain", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def make_room(self, spans: int, bound: int, stop: threading.Event) -> bool:
        """Hold the polling thread while the outbox has no room for `spans`
        more and the backend is taking spans: a backfill that reads faster
        than the backend accepts waits for it, instead of pushing its oldest
        traces out of a full outbox.

        Returns whether the commit may drop the oldest spans to keep within
        `bound`: only while the backend fails (or no drain thread runs), when
        waiting cannot make room. Otherwise the batch goes in whole (one
        larger than the bound, one committed while stopping, or one racing
        another source's commit): the outbox may pass the bound by a batch
        or so, and the drain catches up."""
        while (
            not stop.is_set()
            and not self.failing
            and self._thread.is_alive()
            and self._store.outbox_spans() > 0
            and self._store.outbox_spans() + spans > bound
        ):
            self._wake.set()
            with self._delivered:
                self._delivered.wait(0.5)  # bounded: a missed notification costs half a second
        return self.failing or not self._thread.is_alive()

    @property
    def failing(self) -> bool:
        """A backend fails: its rows do not leave, so waiting makes no room."""
        return any(lane.failing for lane in self._lanes)

    @property
    def sends_spans(self) -> bool:
        return self._spans is not None

    @property
    def sends_logs(self) -> bool:
        return self._logs is not None

    def notify(self) -> None:
        self._wake.set()

    def encode(self, run: Run, capture_content: bool, max_attribute_length: int) -> tuple[int, bytes]:
        assert self._spans is not None, "traces are off"
        return self._spans.encode(run, capture_content, max_attribute_length)

    def encode_logs(
        self, platform: str, base_url: str, events: Sequence[ActivityEvent], max_attribute_length: int
    ) -> tuple[int, bytes]:
        assert self._logs is not None, "logs are off"
        return self._logs.encode_logs(platform, base_url, events, max_attribute_length)

    def waiting(self) -> bool:
        """Whether rows of a signal this drain sends wait in the outbox."""
        return bool(self._store.outbox_take(1, self._signals, self._sources()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._backoff() or self._state_wait or 1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._linger()
                while self.drain_once(wait_out_backoff=True):
                    if self._stop.is_set():
                        return
                    self._linger()
                self._state_wait = 0.0
            except StateUnavailable as err:  # the database is away: the rows wait in it
                if not self._state_wait:
                    log.warning("outbox: state database unreachable, delivery waits: %s", err)
                self._state_wait = min(MAX_BACKOFF, max(1.0, self._state_wait * 2))

    def _linger(self) -> None:
        """Let a batch fill (up to LINGER_SECONDS) rather than post every
        commit's few spans on their own: one request per MAX_BATCH_SPANS,
        like the SDK's BatchSpanProcessor, at the cost of a fraction of a
        second of freshness."""
        deadline = time.monotonic() + LINGER_SECONDS  # real time, whatever clock tests inject
        while self._store.outbox_spans() < MAX_BATCH_SPANS and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, LINGER_SECONDS / 4))

    def _backoff(self) -> float:
        """How long until a failing lane may try again (0: none is failing)."""
        waits = [lane.retry_at - self._clock() for lane in self._lanes if lane.failing]
        return max(0.0, min(waits)) if waits else 0.0

    def drain_once(self, *, wait_out_backoff: bool = False) -> bool:
        """Send one batch per signal; True when something left the outbox
        and more may wait. `wait_out_backoff` (the thread): a failing signal
        only once its backoff is over; flush tries every one."""
        moved = False
        for lane in self._lanes:
            if wait_out_backoff and lane.failing and self._clock() < lane.retry_at:
                continue
            moved = self._drain_lane(lane) or moved
        return moved

    def _drain_lane(self, lane: _Lane) -> bool:
        rows = self._store.outbox_take(MAX_BATCH_SPANS, (lane.signal,), self._sources())
        if not rows:
            lane.backoff = 0.0
            return False
        backend, items, _ = lane.words
        by_source: dict[str, list[OutboxRow]] = {}
        for row in rows:
            by_source.setdefault(row.source, []).append(row)
        for source, group in by_source.items():
            result = lane.sender.send(source, [r.payload for r in group])
            if result.outcome is Outcome.DELIVERED:
                self._finish(lane, group, "success")
                if lane.failing:
                    log.info("%s accepts %s again", backend, items)
                lane.failing = False
            elif result.outcome is Outcome.REJECTED:
                log.error(
                    "%s rejected %d %s, dropped: %s; runs: %s",
                    backend,
                    sum(r.spans for r in group),
                    items,
                    result.detail,
                    run_list((r.source, r.run) for r in group) if lane.signal == TRACES else "-",
                )
                self._finish(lane, group, "rejected")
            else:
                self._failed(lane, group, result)
                return False
        lane.backoff = 0.0
        return True

    def _finish(self, lane: _Lane, rows: list[OutboxRow], outcome: str) -> None:
        """The rows left the outbox (delivered or rejected): delete them and
        count their items in one transaction."""
        ids = [r.id for r in rows]
        self._recorder.record(
            _exported(lane.signal, outcome, rows), lambda series: self._store.outbox_done(ids, series)
        )
        self._book.set_live("agent_exporter_outbox_spans", (), float(self._store.outbox_spans()))
        with self._delivered:
            self._delivered.notify_all()

    def _failed(self, lane: _Lane, rows: list[OutboxRow], result: SendResult) -> None:
        """Keep the rows; back off (as told, when told), log the change once."""
        self._recorder.record(_exported(lane.signal, "failure", rows), self._store.write_series)
        lane.backoff = min(MAX_BACKOFF, max(1.0, lane.backoff * 2))
        if result.retry_after is not None:
            lane.backoff = min(MAX_RETRY_AFTER, max(lane.backoff, result.retry_after))
        lane.retry_at = self._clock() + lane.backoff
        if not lane.failing:
            log.warning("cannot deliver %s, keeping them and retrying: %s", lane.words[1], result.detail)
        lane.failing = True

    def flush(self, deadline: float, *, patience: float = 0.0) -> None:
        """Deliver what is waiting until the outbox is empty or the deadline
        (a monotonic time) passes: for SIGTERM and `once`. With `patience`,
        every delivery moves the deadline to at least that far ahead: a long
        outbox is delivered for as long as the backend keeps taking it."""
        while self._clock() < deadline:
            if self.drain_once():
                deadline = max(deadline, self._clock() + patience)
            elif not self.waiting():
                return
            else:
                time.sleep(min(0.5, max(0.0, deadline - self._clock())))

    def end_thread(self) -> None:
        """Stop the background thread (after its current batch); the drain
        can still flush from the caller's thread, never from two at once."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def stop(self, flush_deadline: float | None = None) -> None:
        """End the thread, then deliver what waits until the deadline."""
        self.end_thread()
        if flush_deadline is not None:
            self.flush(flush_deadline)
        for lane in self._lanes:
            lane.sender.close()


def _exported(signal: str, outcome: str, rows: list[OutboxRow]) -> list[Update]:
    return [Update(Op.INC, SIGNALS[signal][2], (outcome,), sum(r.spans for r in rows))]
