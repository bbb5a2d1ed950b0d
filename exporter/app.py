"""Wires the parts together for `run` and `once`: state, sources, pipeline,
outbox drain, HTTP server and scheduler, and takes them down in order."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.config import Config, StateConfig
from exporter.config.shards import expand
from exporter.convert.metrics import SPAN_OUTCOMES
from exporter.export.otlp import make_sender
from exporter.export.outbox import OutboxDrain
from exporter.export.prometheus import ActivityCollector, MetricsBook
from exporter.pipeline import Pipeline, Recorder
from exporter.recent import REQUEST_WINDOW
from exporter.redact import Redactor, url_without_password
from exporter.scheduler import Scheduler, SourceJob, precreate_series, source_zeros
from exporter.server import ExporterServer
from exporter.sources.platform import Platform
from exporter.sources.registry import PLATFORMS, build_source
from exporter.state.db import PostgresDatabase, StateUnavailable
from exporter.state.keeper import CHANGES, LeaseKeeper, SoleHolder
from exporter.state.leases import LeaseTable
from exporter.state.store import StateStore
from exporter.statuspage import render_status_page

log = logging.getLogger(__name__)

FLUSH_SECONDS = 10.0
# The polling thread allocates millions of short-lived containers and frees
# them by reference counting; at Python's default first-generation threshold
# (700) the cyclic collector ran ~150 times a second in a backfill, scanning
# each batch's young objects again and again: 9-14 % of the run for ~2,000
# objects of cyclic garbage (benchmarks/README.md). At 50,000 it runs a few
# times a minute.
GC_THRESHOLDS = (50_000, 20, 20)


@contextmanager
def tuned_gc() -> Iterator[None]:
    """For the exporter's process while it runs: what exists at start-up
    (modules, config) is frozen out of the collector's scans, and the
    collector runs far less often. Restored on exit (tests, benchmarks)."""
    saved = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()


class Exporter:
    def __init__(self, config: Config, redactor: Redactor, *, platforms: Mapping[str, Platform] = PLATFORMS) -> None:
        """`platforms`: the source types to build readers from (the registry,
        or a test's own platform beside it)."""
        self.config = config
        self.redactor = redactor
        self.store = open_store(config.state)
        shared = config.state.url is not None  # replicas share the state: each reads the sources it holds leases on
        self.book = MetricsBook(
            {} if shared else self.store.series(),
            max_agents=config.metrics.max_agents,
            max_tools=config.metrics.max_tools,
            shared=shared,
        )
        self.book.set_live("agent_exporter_build_info", (__version__,), 1.0)
        sender = make_sender(config.traces, config.service_name)
        if sender is None:
            log.warning("traces are off: set traces.endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) or traces.protocol: file")
        logs = make_sender(config.logs, config.service_name)  # None unless logs.enabled
        self.stop_event = threading.Event()
        recorder = Recorder(self.store, self.book)  # the one commit path, and its lock
        enabled = [shard for s in config.sources if s.enabled for shard in expand(s)]
        self.intervals = {s.name: s.interval for s in enabled}
        self.keeper = self._keeper(recorder) if shared else None
        leases = self.keeper or SoleHolder()
        self.drain = OutboxDrain(sender, recorder, logs=logs, sources=leases.held) if sender or logs else None
        self.pipeline = Pipeline(
            config=config, recorder=recorder, drain=self.drain, stop=self.stop_event, leases=leases
        )
        self.sources = [build_source(s, stop=self.stop_event, platforms=platforms) for s in enabled]
        self.jobs = [SourceJob(source, self.pipeline, self.intervals[source.name]) for source in self.sources]
        precreate_series(self.pipeline, [] if shared else self.sources)  # shared: per source when its lease is taken
        if not shared:  # every source's lease, implicitly: the same series as a replica's
            self._show_leases(len(self.sources), dict.fromkeys(CHANGES, 0))
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ActivityCollector(self.book))
        self.server: ExporterServer | None = None
        self.scheduler: Scheduler | None = None

    def _keeper(self, recorder: Recorder) -> LeaseKeeper:
        """The leases of a shared state: a source's series shown from its
        stored totals once its lease is taken, and polled at once; dropped
        when the lease goes."""

        def gain(name: str) -> None:
            recorder.adopt(name)
            recorder.show(source_zeros(self.pipeline, name))

        def held(name: str) -> None:
            if self.scheduler is not None:
                self.scheduler.run_now(name)

        url = self.config.state.url or ""
        keeper = LeaseKeeper(
            LeaseTable(PostgresDatabase(url, url_without_password(url))),  # its own connection: see LeaseTable
            self.intervals,
            on_gain=gain,
            on_held=held,
            on_loss=recorder.forget,
            on_change=self._show_leases,
        )
        self._show_leases(0, dict.fromkeys(CHANGES, 0))
        log.info(
            "replica %s: sharing %d source(s) with the replicas on %s",
            keeper.replica,
            len(self.intervals),
            self.store.name,
        )
        return keeper

    def _show_leases(self, count: int, changes: Mapping[str, int]) -> None:
        self.book.set_live("agent_exporter_leases_held", (), float(count))
        for change, n in changes.items():
            self.book.set_live("agent_exporter_lease_changes_total", (change,), float(n))

    def _unready(self) -> str | None:
        error = self.keeper.error if self.keeper else None
        return self.redactor.redact(f"state database unreachable: {error}") if error else None

    def serve(self) -> ExporterServer:
        self.server = ExporterServer(
            self.config.listen_host, self.config.listen_port, self.registry, self.status, render_status_page
        )
        self.server.unready = self._unready
        self.server.start()
        self.server.ready.set()
        return self.server

    def start(self) -> None:
        """`run`: serve HTTP, drain the outbox, poll every source on schedule."""
        if self.server is None:
            self.serve()
        if self.drain:
            self.drain.start()
        self.scheduler = Scheduler(self.jobs, self.intervals)
        self.scheduler.start()
        if self.keeper:
            self.keeper.start()
        log.info(
            "exporter started: %d source(s), metrics on %s:%d",
            len(self.jobs),
            self.config.listen_host,
            self.server.port if self.server else 0,
        )

    def once(self) -> bool:
        """`once`: poll every source with the drain delivering alongside (as
        in `run`: a backfill larger than the outbox waits for the backend
        instead of overflowing it), then deliver the rest for as long as the
        backend keeps taking spans; report success. The sources are polled
        side by side, as their jobs run in `run`: one slow platform does not
        hold the others up."""
        jobs = self.jobs
        if self.keeper:  # every source no running replica holds, renewed while it runs
            self.keeper.greedy = True
            self.keeper.tick()
            self.keeper.start()
            jobs = [job for job in self.jobs if self.keeper.holds(job.source.name)]
            for job in self.jobs:
                if job not in jobs:
                    log.warning("not polled: another replica holds its lease", extra={"source": job.source.name})
        if self.drain:
            self.drain.start()
        with ThreadPoolExecutor(max_workers=max(1, len(jobs)), thread_name_prefix="once") as pool:
            results = list(pool.map(lambda job: job.poll(), jobs))
        results += [False] * (len(self.jobs) - len(jobs))
        if self.drain:
            self.drain.end_thread()
            self.drain.flush(time.monotonic() + FLUSH_SECONDS * 3, patience=FLUSH_SECONDS * 3)
        return all(results) and (self.drain is None or not self.drain.waiting())

    def shutdown(self) -> None:
        """Finish the current transaction, flush the outbox (<= 10 s), close."""
        self.stop_event.set()
        if self.scheduler:
            self.scheduler.shutdown()
        if self.drain:
            self.drain.stop(flush_deadline=time.monotonic() + FLUSH_SECONDS)
        if self.keeper:
            self.keeper.stop()  # hands the leases back: other replicas take over at once
        if self.server:
            self.server.stop()
        for source in self.sources:
            source.close()
        self.store.close()

    def status(self) -> dict[str, object]:
        """What /status shows, as JSON and as the page (which renders this
        and nothing else): every value passes the redactor or is a number,
        a time or a name."""
        now = time.time()
        out: dict[str, object] = {
            "version": __version__,
            "generated_at": _iso(now),
            "outbox_max_spans": self.config.traces.outbox_max_spans,
            "traces": self.config.traces.protocol if self.config.traces.enabled else "off",
            "spans_exported": self._outcomes("agent_exporter_spans_exported_total"),
            "logs": self.config.logs.protocol if self.config.logs.enabled else "off",
            "log_records_exported": (
                self._outcomes("agent_exporter_log_records_exported_total") if self.config.logs.enabled else {}
            ),
            "recent_runs": [
                {**run.to_json(), "trace_url": self.config.status.trace_url.replace("{trace_id}", run.trace_id)}
                for run in self.pipeline.recent.latest()
            ],
        }
        if self.keeper:  # which replica holds which lease (and whether the database answers)
            out["replicas"] = self.keeper.status()
        try:
            out["sources"] = {job.source.name: self._source_status(job, now) for job in self.jobs}
            out["outbox_spans"] = self.store.outbox_spans()
        except StateUnavailable as err:
            out["state"] = str(err)
        status = self.redactor.redact_data(out)  # belt and braces: names and ids come from the platforms
        assert isinstance(status, dict)
        return status

    def _source_status(self, job: SourceJob, now: float) -> dict[str, object]:
        name = job.source.name
        st = job.status
        requests, limited = st.requests.totals()
        backfill = self.pipeline.backfill.view(name)
        caught_up = self.pipeline.caught_up.get(name)
        entry: dict[str, object] = {
            "platform": job.source.platform,
            "up": st.up,
            "polls": st.polls,
            "last_outcome": st.last_outcome,
            "last_poll_at": _iso(st.last_poll_at),
            "polling_since": _iso(st.polling_since),
            "last_success_at": _iso(st.last_success_at),
            "last_error": self.redactor.redact(st.last_error) if st.last_error else None,
            "skipped_ticks": st.skipped_ticks,
            "held_until": _iso(st.held_until),
            "open_runs": sum(self.store.open_run_counts(name).values()),
            "checkpoint": self.redactor.redact_data(_summary(self.store.checkpoint(name))),
            "data_lag_seconds": None if caught_up is None else round(max(0.0, now - caught_up.timestamp()), 1),
            "recent_requests": {"window_seconds": REQUEST_WINDOW, "requests": requests, "rate_limited": limited},
            "backfill_remaining_seconds": round(self.pipeline.backfill.remaining(name), 1),
            "backfill": None if backfill is None else backfill.to_json(),
        }
        if self.keeper:
            entry["lease_held"] = self.keeper.holds(name)
        return entry

    def _outcomes(self, counter: str) -> dict[str, int]:
        return {o: _count(self.book.value(counter, (o,))) for o in SPAN_OUTCOMES}


def _count(value: object) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def open_store(state: StateConfig) -> StateStore:
    """The state file, or the PostgreSQL database when state.url is set."""
    if state.url is None:
        return StateStore(state.path)
    return StateStore(PostgresDatabase(state.url, url_without_password(state.url)))


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat() if epoch is not None else None


def _summary(value: object, depth: int = 0) -> object:
    """A checkpoint for humans: large maps (dedup caches) shown as a count."""
    if isinstance(value, dict):
        if len(value) > 20 or depth > 3:
            return f"<{len(value)} entries>"
        return {k: _summary(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list) and len(value) > 20:
        return f"<{len(value)} items>"
    return value
