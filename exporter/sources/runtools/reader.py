"""runtools: how the organisation-wide activity feed is read.

Reading strategy: the platform does not document the order of events in a
page, so the feed is read in time windows [since, until) that do not move
under the reader (windows.py). Every page of a window is read, events are
de-duplicated by id, and the watermark moves to `until` only once the whole
window is read. Each window starts `lookback` before the watermark so events
published late are still seen. Runs are assembled (runs.py) from events
sharing `agentRunId`; a run is complete once its terminal event has arrived
and the window holding it has been read to its end (its tool-call events may
sit on any page of that window).

Backfills: a window whose `until` is at least `lookback` in the past when it
is read is *settled*: every event before `until` is published, so the next
window overlaps it by EDGE only (one second, for boundary inclusivity,
instead of `lookback`), and of the batch that completes it only the dedup
keys within EDGE of `until` are stored (nothing reads the other events
again). Pages are committed PAGES_PER_COMMIT at a time. Backfill windows
start at FIRST_SPAN, double while they take few pages and shrink (within
`max_window`) to about one committed batch, so most runs start, finish and
are exported within one batch, straight from memory. A run that crosses a
batch boundary is kept in the open-run table: its summary row, plus its
events appended batch by batch (never rewritten), read back once to build
it. Live polling (windows ending now) keeps the overlap and stores every
key.

Concurrent backfill (issue #15): with `concurrency` above 1, settled
windows are fetched several at once and consumed in order (backfill.py).
Live windows stay sequential. How far the feed is read (the checkpoint):
position.py.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import cast

from exporter.config import SourceConfig
from exporter.model import Batch, OpenRun, Run, RunStatus
from exporter.sources.base import CursorGuard, PlatformSource, PollContext, envelope, export_run, parse_each, run_key
from exporter.sources.runtools.api import (
    E_ID,
    E_RID,
    E_RTYPE,
    E_RUN,
    E_TYPE,
    PATH,
    PLATFORM,
    Page,
    counted_event,
    outcome,
    page,
    parse_event,
)
from exporter.sources.runtools.backfill import backfill
from exporter.sources.runtools.options import RuntoolsOptions
from exporter.sources.runtools.position import MIN_SPAN, Position, whole_ms
from exporter.sources.runtools.runs import build_run
from exporter.sources.windows import Window

FINALIZE_CHUNK = 500  # finished runs per committed batch at a window's end
# Pages read into one committed batch. A backfill commits (and rewrites the
# working state of runs spread over pages) a tenth as often; a crash re-reads
# at most this many pages, which de-duplication absorbs.
PAGES_PER_COMMIT = 10
# The first backfill window's span: small, because a window is exported only
# once read to its end, so a first window over the whole of `start_from`
# held every run of a dense history open (in the store, rewritten batch after
# batch) until the end. A sparse feed doubles it back to `max_window` in a
# few windows of one page each.
FIRST_SPAN = timedelta(seconds=60)
# Settled windows still overlap by this much: whether `since` and `until` are
# inclusive is undocumented, and an event exactly on the boundary must be
# read once, neither twice nor never.
EDGE = timedelta(seconds=1)


class RuntoolsSource(PlatformSource):
    PLATFORM = PLATFORM

    def configure(self, config: SourceConfig) -> None:
        opts = RuntoolsOptions.of(config.options)
        self._filters = dict(opts.filters)
        self.lookback = timedelta(seconds=opts.lookback)
        self._page_size = opts.page_size
        self._max_window = timedelta(seconds=opts.max_window)
        self._span = min(self._max_window, FIRST_SPAN)  # of the next backfill window; adapts to the feed's density
        self.growing = True  # the span grows: the windows read last were sparse, or none was read yet
        self.edge = min(self.lookback, EDGE)

    def auth(self, config: SourceConfig) -> dict[str, str]:
        return {"X-API-Key": config.secret or ""}

    def probe(self) -> str:
        body = self._client.get_json(PATH, {"limit": 1})
        events = envelope(self.name, body, "data", "events")
        return f"ok: GET {PATH} returned {len(events) if isinstance(events, list) else 0} event(s)"

    # -- polling -----------------------------------------------------------

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        position = Position.from_json(ctx.checkpoint, ctx.now - self.start_from)
        now = whole_ms(ctx.now)
        while (window := self.next_window(position, now)) is not None:
            if self.workers.size > 1 and not window.resume.get("complete") and self.settled(ctx, window.until):
                position = yield from backfill(self, ctx, window, position, now, PAGES_PER_COMMIT)
                continue
            if not window.resume.get("complete"):
                pages = yield from self.read_window(ctx, window, position, self.pages(window))
                self.adapt_span(pages)
            settled = self.settled(ctx, window.until)
            floor = window.until - self.edge if settled else position.floor
            position = Position(position.progress.finished(window), settled, floor)
            yield from self.finalize(ctx, window.until, position.to_json())

    def pages(
        self, window: Window, cursor: str | None = None, guard: CursorGuard | None = None
    ) -> Generator[Page, None, None]:
        """The window's pages from `cursor` (default: its resume cursor) to
        its end, each requested when the one before it has been consumed."""
        if cursor is None:
            resume = window.resume.get("cursor")
            cursor = resume if isinstance(resume, str) else None
        guard = guard or CursorGuard(self.name)
        since, until = window.query()
        while True:
            params: dict[str, object] = {
                **self._filters,
                "since": since,
                "until": until,
                "limit": self._page_size,
                "cursor": cursor,
            }
            if cursor is not None:
                guard.check(cursor)
            fetched = page(self.name, self._client.get_json(PATH, params))
            yield fetched
            cursor = fetched.next_cursor
            if cursor is None:
                return

    def next_window(self, position: Position, now: datetime) -> Window | None:
        """The part-read window, else the next one: from EDGE before the
        watermark after a settled window (else `lookback`), never before the
        floor, to `now` or at most the current span; in whole milliseconds."""
        overlap = self.edge if position.settled else self.lookback
        window = position.progress.next_window(now, overlap, self._span)
        if window is None or position.progress.window is not None:
            return window
        since = window.since if position.floor is None else max(window.since, position.floor)
        return Window(whole_ms(since), whole_ms(window.until))

    def settled(self, ctx: PollContext, until: datetime) -> bool:
        """Every event before `until` is published (late ones arrive within
        `lookback`): the next window need not read any of it again."""
        return until <= ctx.now - self.lookback

    def adapt_span(self, pages: int, span: timedelta | None = None) -> None:
        """Backfill windows sized to about one committed batch: a window read
        in one batch exports its finished runs straight from memory. `span`:
        that of the window that had `pages` (default: the current span)."""
        span = self._span if span is None else span
        self.growing = pages < PAGES_PER_COMMIT // 2
        if pages > PAGES_PER_COMMIT:
            span = max(MIN_SPAN, span * 0.8 * PAGES_PER_COMMIT / pages)
        elif pages < PAGES_PER_COMMIT // 2:
            span = span * 2
        self._span = min(self._max_window, span)

    def read_window(
        self, ctx: PollContext, window: Window, position: Position, chain: Iterator[Page]
    ) -> Generator[Batch, None, int]:
        """Read the window's `chain` of pages (from its cursor to its end);
        returns the pages read. `position`: the checkpoint's watermark and
        floor while it is read."""
        batch, pages, total = Batch(), 0, 0
        for events, cursor in chain:
            self._ingest(ctx, batch, events)
            pages, total = pages + 1, total + 1
            if cursor is None:
                self._end_window(ctx, batch, window.until)
            if pages == PAGES_PER_COMMIT or cursor is None:
                read = window.at(complete=True) if cursor is None else window.at(cursor=cursor)
                batch.checkpoint = position.reading(read).to_json()
                yield batch
                batch, pages = Batch(), 0
        return total

    def _end_window(self, ctx: PollContext, batch: Batch, until: datetime) -> None:
        """The batch that completes a window: its finished runs are exported
        from memory (no round trip through the open-run table), and, once
        the window is settled, its events' dedup keys are not stored: no
        later window reads those events again."""
        finished = [o for o in batch.open_upserts.values() if o.finished]
        stored = ctx.state.open_items_among(o.run_id for o in finished)  # from earlier batches of the window
        for open_run in finished:
            del batch.open_upserts[open_run.run_id]
            self._export(batch, replace(open_run, items=stored.get(open_run.run_id, ())))
        if self.settled(ctx, until):
            keep_from = (until - self.edge).timestamp()  # the next window re-reads these
            batch.seen_add = {k: at for k, at in batch.seen_add.items() if at >= keep_from or not k.startswith("ev:")}

    def _export(self, batch: Batch, open_run: OpenRun) -> None:
        run = self._build_run(open_run, None)
        export_run(batch, run, run.ended_at or run.started_at)
        batch.open_deletes.add(open_run.run_id)  # stored by an earlier batch, or not: deleting is safe

    def _ingest(self, ctx: PollContext, batch: Batch, items: object) -> None:
        """A page's new events: counted, and added to their runs' working
        state. The page's dedup keys and open runs are looked up in one query
        each (a query per event was the largest single cost of a backfill)."""
        parsed = [
            (f"ev:{ev[E_ID]}", ev, at)
            for ev, at in parse_each(self.name, items, lambda item: parse_event(self.name, item), batch, "event")
        ]
        seen = ctx.state.seen_among([key for key, _, _ in parsed])
        by_run: dict[str, list[list[object]]] = {}
        for key, ev, at in parsed:
            if key in seen or key in batch.seen_add:
                continue  # a re-read (overlap, repeated page): changes nothing
            batch.seen_add[key] = at.timestamp()
            batch.events.append(counted_event(ev, at))
            if run_id := cast(str | None, ev[E_RUN]):
                by_run.setdefault(run_id, []).append(ev)
        # Runs this batch already holds are open: only the others are looked up.
        others = {run_key(r): r for r in by_run if r not in batch.open_upserts}
        # Exported runs: a late event of one changes nothing.
        done = {others[key] for key in ctx.state.seen_among(others)}
        stored = ctx.state.open_runs_among(r for r in others.values() if r not in done)
        for run_id, events in by_run.items():
            if run_id not in done:
                self._add_to_run(ctx, batch, run_id, stored.get(run_id), events)

    def _add_to_run(
        self, ctx: PollContext, batch: Batch, run_id: str, stored: OpenRun | None, new: list[list[object]]
    ) -> None:
        """The run's new events join what this batch already holds of it; what
        earlier commits stored stays stored (the commit appends, never
        rewrites), and is read back only to build the finished run."""
        in_batch = batch.open_upserts.get(run_id)
        current = in_batch or stored
        agent = current.agent if current else "unknown"
        finished = bool(current and current.finished)
        for ev in new:
            if ev[E_RTYPE] == "agent" and ev[E_RID]:
                agent = cast(str, ev[E_RID])
            finished = finished or outcome(cast(str, ev[E_TYPE])) is not None
        batch.open_upserts[run_id] = OpenRun(
            run_id=run_id,
            agent=agent,
            opened_at=current.opened_at if current else ctx.now.timestamp(),
            data=current.data if current else {},  # a run stored by an older exporter keeps its "events" there
            finished=finished,
            appended=(*in_batch.appended, *new) if in_batch else tuple(new),
        )

    def finalize(self, ctx: PollContext, until: datetime, checkpoint: dict[str, object]) -> Iterator[Batch]:
        """Emit every stored run whose terminal event has arrived, in chunks;
        the last chunk carries the window's `checkpoint`."""
        while True:
            ready = ctx.state.finished_open_runs(FINALIZE_CHUNK)
            batch = Batch()
            for open_run in ready:
                self._export(batch, open_run)
            last = len(ready) < FINALIZE_CHUNK
            if last:
                batch.checkpoint = checkpoint
                batch.caught_up_to = until
                batch.seen_prune_before = (until - 2 * self.lookback - timedelta(minutes=5)).timestamp()
            yield batch
            if last:
                return

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        return self._build_run(open_run, RunStatus.INCOMPLETE)

    def _build_run(self, open_run: OpenRun, forced: RunStatus | None) -> Run:
        stored = cast(list[list[object]], open_run.data.get("events", []))  # written by an older exporter
        every = (*stored, *cast(tuple[list[object], ...], open_run.items + open_run.appended))
        return build_run(self.name, self.base_url, open_run.run_id, open_run.agent, every, forced)
