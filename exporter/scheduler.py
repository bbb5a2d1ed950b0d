"""The sources' jobs: the one place that chains poll -> commit.

Each source is polled by its own APScheduler job (max_instances=1, so a
slow poll skips ticks instead of overlapping, coalesced, jittered). Every
batch a source yields goes to `pipeline.Pipeline.commit`, converted and
committed in one transaction with its checkpoint, spans and counter totals;
the totals are published to /metrics only after the commit. A failing
source is marked down and logged once; the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from exporter.convert.metrics import POLL_OUTCOMES, REJECT_REASONS, SPAN_OUTCOMES, Op, Update
from exporter.model import Batch
from exporter.pipeline import Pipeline
from exporter.recent import RequestWindow
from exporter.sources.base import PollContext, Source
from exporter.sources.http import AuthError, BadResponseError, RetryableError, SourceError, Stopping
from exporter.state.db import StateUnavailable
from exporter.state.leases import Fence, LeaseLost
from exporter.state.view import SourceStateView

log = logging.getLogger(__name__)

EXPIRE_CHUNK = 200
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
    requests: RequestWindow = field(default_factory=RequestWindow)  # and 429s, over the last minutes
    polling_since: float | None = None  # epoch: the running poll's start (None: not polling)


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
        source.gate.watch(self._show_requests)

    def _show_requests(self, in_flight: int, limit: int) -> None:
        book, labels = self.pipeline.book, (self.source.name,)
        book.set_live("agent_exporter_requests_in_flight", labels, float(in_flight))
        book.set_live("agent_exporter_request_concurrency_limit", labels, float(limit))

    def due(self) -> bool:
        """False while the source is held back (revoked key, Retry-After)."""
        return time.monotonic() >= self._hold_until

    def __call__(self) -> bool:
        """A scheduled tick: poll, unless held back or another replica holds the source's lease."""
        return self.poll() if self.due() and self.pipeline.leases.holds(self.source.name) else False

    def poll(self) -> bool:
        """One poll under the source's lease: one that is lost (taken over,
        or the database out of reach) ends the poll with nothing more
        committed; the holder reads on from the last commit."""
        try:
            fence = self.pipeline.leases.fence(self.source.name)
            return self._poll(fence)
        except (LeaseLost, StateUnavailable) as err:
            log.warning("poll stopped, nothing more committed: %s", err, extra={"source": self.source.name})
            return False
        finally:
            self.status.polling_since = None

    def _poll(self, fence: Fence | None) -> bool:
        name = self.source.name
        started = time.monotonic()
        now = self.pipeline.clock()
        self.status.polling_since = now.timestamp()
        outcome: str = "success"
        error: SourceError | None = None
        try:
            ctx = PollContext(checkpoint=self.pipeline.store.checkpoint(name), now=now, state=self._view)
            self.pipeline.backfill.begin(name, now)
            for batch in self.source.poll(ctx):
                self.pipeline.commit(self.source, batch, self._request_updates(), fence=fence)
                if self.pipeline.stop.is_set():
                    break  # stopping: what is committed is consistent; the rest waits for the next start
            else:
                self.pipeline.backfill.end(name)  # read up to `now`: nothing of the history is left
                self._expire(now, fence)
        except Stopping:
            return False  # shutting down mid-poll: what is committed stands, nothing to account
        except (LeaseLost, StateUnavailable):
            raise  # not the source's failure: nothing to account (the accounting could not commit either)
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
        self._account(outcome, error, time.monotonic() - started, now, fence)
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
        self.status.requests.add(sum(codes.values()), limited)
        updates = [
            Update(Op.INC, "agent_exporter_api_requests_total", (self.source.name, c), n) for c, n in codes.items()
        ]
        if limited:
            updates.append(Update(Op.INC, "agent_exporter_rate_limited_total", (self.source.name,), limited))
        return updates

    def _expire(self, now: datetime, fence: Fence | None) -> None:
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
            self.pipeline.commit(self.source, batch, fence=fence)

    def _account(
        self, outcome: str, error: SourceError | None, seconds: float, now: datetime, fence: Fence | None
    ) -> None:
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
        self.pipeline.commit(self.source, Batch(), updates, recount=True, fence=fence)
        self.pipeline.book.set_live("agent_exporter_source_up", (name,), 1.0 if st.up else 0.0)


def precreate_series(pipeline: Pipeline, sources: Iterable[Source]) -> None:
    """Every per-source series exists from the first scrape, so rate() and
    absent() alerts work at once."""
    zero: list[Update] = [u for s in sources for u in source_zeros(pipeline, s.name)]
    zero += [Update(Op.INC, "agent_exporter_spans_exported_total", (o,), 0) for o in SPAN_OUTCOMES]
    if pipeline.config.logs.enabled:  # with logs off, the series stays absent
        zero += [Update(Op.INC, "agent_exporter_log_records_exported_total", (o,), 0) for o in SPAN_OUTCOMES]
    pipeline.recorder.record(zero, pipeline.store.write_series)
    pipeline.book.set_live("agent_exporter_outbox_spans", (), float(pipeline.store.outbox_spans()))


def source_zeros(pipeline: Pipeline, name: str) -> list[Update]:
    """A source's precreated series (as zero increments), its up gauge at 0."""
    pipeline.book.set_live("agent_exporter_source_up", (name,), 0.0)
    pipeline.book.set_live("agent_exporter_backfill_remaining_seconds", (name,), 0.0)
    zero = [Update(Op.INC, "agent_exporter_polls_total", (name, o), 0) for o in POLL_OUTCOMES]
    zero += [Update(Op.INC, "agent_exporter_records_rejected_total", (name, r), 0) for r in REJECT_REASONS]
    zero.append(Update(Op.INC, "agent_exporter_rate_limited_total", (name,), 0))
    return zero


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

    def run_now(self, name: str) -> None:
        """Poll a source at once (its lease was just taken: no interval's wait)."""
        job = self._scheduler.get_job(name)
        if job is not None:
            job.modify(next_run_time=datetime.now(timezone.utc))

    def shutdown(self) -> None:
        """Wait for running polls to finish their current transaction."""
        self._scheduler.shutdown(wait=True)
