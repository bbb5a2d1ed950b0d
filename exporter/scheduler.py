"""The one place that chains poll -> convert -> commit -> publish.

Each source is polled by its own APScheduler job (max_instances=1, so a
slow poll skips ticks instead of overlapping, coalesced, jittered). Every
batch a source yields is converted and committed in one transaction with its
checkpoint, spans and counter totals; the totals are published to /metrics
only after the commit. A failing source is marked down and logged once; the
others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from exporter.config import Config
from exporter.convert.metrics import (
    POLL_OUTCOMES,
    REJECT_REASONS,
    SPAN_OUTCOMES,
    Op,
    Update,
    event_updates,
    run_updates,
)
from exporter.convert.traces import run_trace_id
from exporter.export.otlp import OutboxDrain, run_list
from exporter.export.registry import MetricsBook
from exporter.model import Batch, Run
from exporter.sources.base import PollContext, Source
from exporter.sources.http import AuthError, BadResponseError, RetryableError, SourceError, Stopping
from exporter.state.store import SourceStateView, StateStore

log = logging.getLogger(__name__)

EXPIRE_CHUNK = 200
RECOUNT_SECONDS = 1.0  # within a poll, open runs are recounted for the in-progress gauge at most this often
MAX_AUTH_BACKOFF = 300.0  # a revoked key is retried at most this far apart


@dataclass(slots=True)
class SourceStatus:
    """What the status page shows of one source (never a secret)."""

    up: bool = False
    polls: int = 0
    last_poll_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_outcome: str | None = None
    skipped_ticks: int = 0
    held_until: float | None = None  # epoch: no poll before this (401/403 back-off, Retry-After)


@dataclass(slots=True)
class Pipeline:
    """Everything that touches state, shared by all sources' jobs."""

    config: Config
    store: StateStore
    book: MetricsBook
    drain: OutboxDrain | None
    commit_lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # set on SIGTERM: end polls between batches
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    caught_up: dict[str, datetime] = field(default_factory=dict)  # source -> time it is fully read up to
    _recounted: dict[str, float] = field(default_factory=dict)  # source -> monotonic time of the last recount

    def commit(self, source: Source, batch: Batch, extra: Iterable[Update] = (), *, recount: bool = False) -> None:
        """`recount`: refresh the in-progress gauge now (the end of a poll);
        otherwise it is refreshed at most every RECOUNT_SECONDS, as counting
        open runs costs a scan of them."""
        runs = batch.runs
        outbox = self._spans(runs)
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
        if outbox and self.drain and not self.drain.make_room(sum(n for _, n, _ in outbox), limit, self.stop):
            bound = None  # the backend takes spans: drop none
        with self.commit_lock:
            staged = self.book.stage(updates)
            dropped = self.store.commit(source.name, batch, outbox, self.book.persisted_form(staged), bound)
            if dropped.spans:
                staged.update(
                    self.book.stage(
                        [Update(Op.INC, "agent_exporter_spans_exported_total", ("dropped",), dropped.spans)]
                    )
                )
                self.store.write_series(self.book.persisted_form(staged))
                log.warning(
                    "outbox full (trace backend failing): dropped the %d oldest span(s), the traces of %d run(s): %s",
                    dropped.spans,
                    len(dropped.runs),
                    run_list(dropped.runs),
                )
            self.book.publish(staged)
        self._refresh_gauges(source.name, source.platform, batch, recount)
        if outbox and self.drain:
            self.drain.notify()

    def _spans(self, runs: list[Run]) -> list[tuple[str, int, bytes]]:
        if self.drain is None:
            return []  # traces are off
        traces = self.config.traces
        return [
            (run.run_id, *self.drain.encode(run, traces.capture_content, traces.max_attribute_length)) for run in runs
        ]

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
        self.book.set_live("agent_exporter_outbox_spans", (), float(self.store.outbox_spans()))


class SourceJob:
    """One source's poll: run it, commit its batches, account for it."""

    def __init__(self, source: Source, pipeline: Pipeline, interval: float = 30.0) -> None:
        self.source = source
        self.pipeline = pipeline
        self.status = SourceStatus()
        self._view = SourceStateView(pipeline.store, source.name)
        self._interval = interval
        self._auth_failures = 0
        self._hold_until = 0.0  # monotonic

    def due(self) -> bool:
        """False while the source is held back (revoked key, Retry-After)."""
        return time.monotonic() >= self._hold_until

    def __call__(self) -> bool:
        return self.poll() if self.due() else False

    def poll(self) -> bool:
        name = self.source.name
        started = time.monotonic()
        now = self.pipeline.clock()
        outcome: str = "success"
        error: SourceError | None = None
        try:
            ctx = PollContext(checkpoint=self.pipeline.store.checkpoint(name), now=now, state=self._view)
            for batch in self.source.poll(ctx):
                self.pipeline.commit(self.source, batch, self._request_updates())
                if self.pipeline.stop.is_set():
                    break  # stopping: what is committed is consistent; the rest waits for the next start
            else:
                self._expire(now)
        except Stopping:
            return False  # shutting down mid-poll: what is committed stands, nothing to account
        except AuthError as err:
            outcome, error = "auth_error", err
        except BadResponseError as err:
            outcome, error = "bad_response", err
        except SourceError as err:
            outcome, error = "error", err
        except Exception as err:  # a bug must not kill the scheduler: log it with its traceback
            log.exception("poll failed unexpectedly", extra={"source": name})
            outcome, error = "error", SourceError(name, f"internal error: {type(err).__name__}")
        self._hold(error)
        self._account(outcome, error, time.monotonic() - started, now)
        return outcome == "success"

    def _hold(self, error: SourceError | None) -> None:
        """A revoked key is retried at a slowing rate (doubling up to
        MAX_AUTH_BACKOFF); a Retry-After longer than the client waits out
        itself is honoured here, between polls."""
        delay = 0.0
        if isinstance(error, AuthError):
            self._auth_failures += 1
            delay = min(MAX_AUTH_BACKOFF, self._interval * 2 ** (self._auth_failures - 1)) - self._interval
        else:
            self._auth_failures = 0
            if isinstance(error, RetryableError) and error.retry_after:
                delay = error.retry_after
        self._hold_until = time.monotonic() + max(0.0, delay)
        self.status.held_until = time.time() + delay if delay > 0 else None

    def _request_updates(self) -> list[Update]:
        codes, limited = self.source.stats.drain()
        updates = [
            Update(Op.INC, "agent_exporter_api_requests_total", (self.source.name, c), n) for c, n in codes.items()
        ]
        if limited:
            updates.append(Update(Op.INC, "agent_exporter_rate_limited_total", (self.source.name,), limited))
        return updates

    def _expire(self, now: datetime) -> None:
        """Emit runs open longer than runs.max_open_age as incomplete, once."""
        cutoff = now.timestamp() - self.pipeline.config.runs.max_open_age
        while stale := self.pipeline.store.stale_open_runs(self.source.name, cutoff, EXPIRE_CHUNK):
            batch = Batch()
            for open_run in stale:
                batch.runs.append(self.source.expire(open_run, now))
                batch.open_deletes.add(open_run.run_id)
                batch.seen_add[f"run:{open_run.run_id}"] = now.timestamp()
            log.info(
                "gave up on %d run(s) open longer than max_open_age", len(stale), extra={"source": self.source.name}
            )
            self.pipeline.commit(self.source, batch)

    def _account(self, outcome: str, error: SourceError | None, seconds: float, now: datetime) -> None:
        name = self.source.name
        st = self.status
        was_up = st.up
        st.polls += 1
        st.last_poll_at = now.timestamp()
        st.last_outcome = outcome
        st.up = error is None
        updates = [
            Update(Op.INC, "agent_exporter_polls_total", (name, outcome), 1),
            Update(Op.OBSERVE, "agent_exporter_poll_duration_seconds", (name,), seconds),
            *self._request_updates(),
        ]
        if error is None:
            st.last_success_at, st.last_error = now.timestamp(), None
            updates.append(
                Update(Op.MAX, "agent_exporter_last_successful_poll_timestamp_seconds", (name,), now.timestamp())
            )
            if not was_up and st.polls > 1:
                log.info("source is up again", extra={"source": name})
        else:
            # Log the change, not every failing poll.
            if was_up or st.polls == 1 or st.last_error != error.message:
                log.warning("source is down: %s", error.message, extra={"source": name})
            st.last_error = error.message
        self.pipeline.commit(self.source, Batch(), updates, recount=True)
        self.pipeline.book.set_live("agent_exporter_source_up", (name,), 1.0 if st.up else 0.0)


def precreate_series(pipeline: Pipeline, sources: Iterable[Source]) -> None:
    """Every per-source series exists from the first scrape, so rate() and
    absent() alerts work at once."""
    zero: list[Update] = []
    for s in sources:
        zero += [Update(Op.INC, "agent_exporter_polls_total", (s.name, o), 0) for o in POLL_OUTCOMES]
        zero += [Update(Op.INC, "agent_exporter_records_rejected_total", (s.name, r), 0) for r in REJECT_REASONS]
        zero.append(Update(Op.INC, "agent_exporter_rate_limited_total", (s.name,), 0))
        pipeline.book.set_live("agent_exporter_source_up", (s.name,), 0.0)
    zero += [Update(Op.INC, "agent_exporter_spans_exported_total", (o,), 0) for o in SPAN_OUTCOMES]
    with pipeline.commit_lock:
        staged = pipeline.book.stage(zero)
        pipeline.store.write_series(pipeline.book.persisted_form(staged))
        pipeline.book.publish(staged)
    pipeline.book.set_live("agent_exporter_outbox_spans", (), float(pipeline.store.outbox_spans()))


class Scheduler:
    """One APScheduler job per source at its interval, with jitter."""

    def __init__(self, jobs: list[SourceJob], intervals: dict[str, float]) -> None:
        self._jobs = {job.source.name: job for job in jobs}
        self._scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"misfire_grace_time": None})
        for job in jobs:
            interval = intervals[job.source.name]
            self._scheduler.add_job(
                job,
                "interval",
                seconds=interval,
                jitter=min(interval * 0.1, 5.0),
                id=job.source.name,
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(timezone.utc),
            )
        self._scheduler.add_listener(self._on_skip, EVENT_JOB_MAX_INSTANCES)

    def _on_skip(self, event: JobExecutionEvent) -> None:
        job = self._jobs.get(event.job_id)
        if job:
            job.status.skipped_ticks += 1
            log.info("previous poll still running: skipped this tick", extra={"source": event.job_id})

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        """Wait for running polls to finish their current transaction."""
        self._scheduler.shutdown(wait=True)
