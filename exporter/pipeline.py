"""The one commit path: a batch's state and its metric totals, recorded
together.

`Recorder` owns the commit lock: every write of totals (a poll's batch, the
drain's delivered, rejected and failed spans, the series precreated at
start) stages them, writes them to state in the same transaction as what
they account for, and publishes them to /metrics only after the commit.
`Pipeline` is the batch commit the sources' jobs share: a batch converted to
spans, log records (logs on) and metric updates, room made in the outbox,
recorded, gauges refreshed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

from exporter.config import Config
from exporter.convert.metrics import Op, Update, event_updates, run_updates
from exporter.convert.traces import run_trace_id
from exporter.export.outbox import OutboxDrain, run_list
from exporter.export.prometheus import MetricsBook, SeriesKey
from exporter.model import Batch, Run
from exporter.progress import BackfillTracker
from exporter.recent import RecentRuns
from exporter.sources.base import Source
from exporter.state.keeper import Leases, SoleHolder
from exporter.state.leases import Fence
from exporter.state.store import Dropped, StateStore

log = logging.getLogger(__name__)

RECOUNT_SECONDS = 1.0  # within a poll, open runs are recounted for the in-progress gauge at most this often

R = TypeVar("R")


@dataclass(slots=True)
class Recorder:
    """Records totals with the state they account for, one batch at a time."""

    store: StateStore
    book: MetricsBook
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def record(
        self,
        updates: Iterable[Update],
        write: Callable[[dict[SeriesKey, object]], R],
        then: Callable[[R], list[Update]] | None = None,
    ) -> R:
        """Stage `updates` as new totals, `write` them to state (in the
        transaction of what they account for), publish them; return what
        `write` returned. `then`: the updates that result calls for (the
        spans the outbox bound dropped), written next and published with the
        rest. Under the commit lock, so two batches never stage from the
        same totals and a scrape never sees half of one."""
        with self._lock:
            staged = self.book.stage(updates)
            result = write(self.book.persisted_form(staged))
            if then is not None and (more := then(result)):
                staged.update(self.book.stage(more))
                self.store.write_series(self.book.persisted_form(staged))
            self.book.publish(staged)
        return result

    def show(self, updates: Iterable[Update]) -> None:
        """Publish `updates` without writing them: zeros over loaded totals
        (series precreated for a source this replica just took on), which
        change no stored value."""
        with self._lock:
            self.book.publish(self.book.stage(updates))

    def adopt(self, source: str) -> None:
        """Show a source's series from its stored totals (its lease was taken)."""
        with self._lock:
            self.book.adopt(source, self.store.series())

    def forget(self, source: str) -> None:
        """Stop showing a source's series (its lease went to another replica)."""
        with self._lock:
            self.book.forget(source)


@dataclass(slots=True)
class Pipeline:
    """Everything that touches state, shared by all sources' jobs."""

    config: Config
    recorder: Recorder
    drain: OutboxDrain | None
    stop: threading.Event = field(default_factory=threading.Event)  # set on SIGTERM: end polls between batches
    leases: Leases = field(default_factory=SoleHolder)  # which sources this replica may commit
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    caught_up: dict[str, datetime] = field(default_factory=dict)  # source -> time it is fully read up to
    backfill: BackfillTracker = field(default_factory=BackfillTracker)  # history still to read, per source
    recent: RecentRuns = field(default_factory=RecentRuns)  # the latest finished runs, for the status page
    _recounted: dict[str, float] = field(default_factory=dict)  # source -> monotonic time of the last recount

    @property
    def store(self) -> StateStore:
        return self.recorder.store

    @property
    def book(self) -> MetricsBook:
        return self.recorder.book

    def commit(
        self,
        source: Source,
        batch: Batch,
        extra: Iterable[Update] = (),
        *,
        recount: bool = False,
        fence: Fence | None = None,
    ) -> None:
        """`recount`: refresh the in-progress gauge now (the end of a poll);
        otherwise it is refreshed at most every RECOUNT_SECONDS, as counting
        open runs costs a scan of them. `fence`: the lease the poll started
        under; the commit writes only while it is still current, here and in
        the database (else LeaseLost, nothing written)."""
        runs = batch.runs
        outbox = self._spans(runs)
        logs = self._log_records(source, batch)
        updates = [u for run in runs for u in run_updates(run, run_trace_id(run))]
        updates += event_updates(source.name, source.platform, batch.events)
        updates += [
            Update(Op.INC, "agent_exporter_records_total", (source.name, k), n) for k, n in batch.records.items()
        ]
        reasons: dict[str, int] = {}
        for rejected in batch.rejected:
            reasons[rejected.reason] = reasons.get(rejected.reason, 0) + 1
            log.warning(
                "rejected a record (or a field of one) that does not parse: %s",
                rejected.detail,
                extra={"source": source.name, "record_id": rejected.record_id},
            )
        updates += [
            Update(Op.INC, "agent_exporter_records_rejected_total", (source.name, r), n) for r, n in reasons.items()
        ]
        updates += extra
        limit = self.config.traces.outbox_max_spans
        bound: int | None = limit
        items = sum(n for _, n, _ in outbox) + (logs[0] if logs else 0)
        if items and self.drain and not self.drain.make_room(items, limit, self.stop):
            bound = None  # the backends take what they are sent: drop none

        def write(series: dict[SeriesKey, object]) -> Dropped:
            self.leases.confirm(fence)  # under the commit lock: a lease lost and taken again is a new claim
            return self.store.commit(source.name, batch, outbox, series, bound, logs=logs, fence=fence)

        dropped = self.recorder.record(updates, write, _dropped)
        if dropped.spans:
            log.warning(
                "outbox full (trace backend failing): dropped the %d oldest span(s), the traces of %d run(s): %s",
                dropped.spans,
                len(dropped.runs),
                run_list(dropped.runs),
            )
        if dropped.logs:
            log.warning("outbox full (a backend failing): dropped the %d oldest log record(s)", dropped.logs)
        self.recent.add(runs)
        self._refresh_gauges(source.name, source.platform, batch, recount)
        if items and self.drain:
            self.drain.notify()

    def _spans(self, runs: list[Run]) -> list[tuple[str, int, bytes]]:
        if self.drain is None or not self.drain.sends_spans:
            return []  # traces are off
        traces = self.config.traces
        return [
            (run.run_id, *self.drain.encode(run, traces.capture_content, traces.max_attribute_length)) for run in runs
        ]

    def _log_records(self, source: Source, batch: Batch) -> tuple[int, bytes] | None:
        """The batch's activity items (each read for the first time, as
        counted) as one outbox row of log records; None while logs are off."""
        if not batch.events or self.drain is None or not self.drain.sends_logs:
            return None
        max_len = self.config.traces.max_attribute_length
        return self.drain.encode_logs(source.platform, source.base_url, batch.events, max_len)

    def _refresh_gauges(self, source: str, platform: str, batch: Batch, recount: bool) -> None:
        now = time.monotonic()
        if recount or now - self._recounted.get(source, float("-inf")) >= RECOUNT_SECONDS:
            self._recounted[source] = now
            counts = self.store.open_run_counts(source)
            self.book.replace_live(
                "agent_runs_in_progress",
                (source, platform),
                {(source, platform, agent): float(n) for agent, n in counts.items()},
            )
        if batch.caught_up_to is not None:
            self.caught_up[source] = batch.caught_up_to
        if source in self.caught_up:
            # On every commit, failed polls included (their accounting commits an
            # empty batch): while no data arrives, the lag grows.
            lag = max(0.0, (self.clock() - self.caught_up[source]).total_seconds())
            self.book.set_live("agent_exporter_data_lag_seconds", (source,), lag)
        remaining = self.backfill.read(source, batch.read_to or batch.caught_up_to, sum(batch.records.values()))
        self.book.set_live("agent_exporter_backfill_remaining_seconds", (source,), remaining)
        self.book.set_live("agent_exporter_outbox_spans", (), float(self.store.outbox_spans()))


def _dropped(dropped: Dropped) -> list[Update]:
    """The spans and log records a commit dropped to keep the outbox bound,
    counted."""
    updates = []
    if dropped.spans:
        updates.append(Update(Op.INC, "agent_exporter_spans_exported_total", ("dropped",), dropped.spans))
    if dropped.logs:
        updates.append(Update(Op.INC, "agent_exporter_log_records_exported_total", ("dropped",), dropped.logs))
    return updates
