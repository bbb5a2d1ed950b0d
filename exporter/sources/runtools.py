"""runtools: the organisation-wide activity feed, GET /v1/activity.

Reading strategy: the platform does not document the order of events in a
page, so the feed is read in time windows [since, until) that do not move
under the reader. Every page of a window is read, events are de-duplicated
by id, and the watermark moves to `until` only once the whole window is
read. Each window starts `lookback` before the watermark so events
published late are still seen. Runs are assembled from events sharing
`agentRunId`; a run is complete once its terminal event has arrived and the
window holding it has been read to its end (its tool-call events may sit on
any page of that window).

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

Checkpoint: {"watermark": iso, "settled": bool, "floor": iso, "window":
{"since", "until", "cursor", "complete"}}; "floor" (the last settled
window's end less EDGE: no later window starts before it) once a window has
settled; "window" only while a window is part-read, so a restart resumes
from the last committed batch of pages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import cast

import httpx

from exporter.config import SourceConfig
from exporter.model import (
    ActivityEvent,
    Batch,
    OpenRun,
    Run,
    RunStatus,
    Severity,
    ToolCall,
    ToolStatus,
    format_time,
    parse_enum,
    parse_time,
)
from exporter.sources.base import CursorGuard, Fields, PlatformSource, PollContext, envelope, parse_each

log = logging.getLogger(__name__)

PLATFORM = "runtools"
PATH = "/v1/activity"
FINALIZE_CHUNK = 500  # finished runs per committed batch at a window's end
# Pages read into one committed batch. A backfill commits (and rewrites the
# working state of runs spread over pages) a tenth as often; a crash re-reads
# at most this many pages, which de-duplication absorbs.
PAGES_PER_COMMIT = 10
MIN_SPAN = timedelta(seconds=10)  # narrowest backfill window
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

# How events make runs, where the vendor's page is silent (docs/platforms.md): in one place.
RUN_STARTED = "agent.run.started"
RUN_OUTCOMES = {
    "completed": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "timed_out": RunStatus.TIMED_OUT,
}
TOOL_PREFIX = "tool.call."
TOOL_OUTCOMES = {"completed": ToolStatus.SUCCEEDED, "failed": ToolStatus.FAILED, "started": ToolStatus.RUNNING}
EVENT_STATUSES = frozenset(
    {
        "started",
        "completed",
        "failed",
        "cancelled",
        "timed_out",
        "added",
        "created",
        "updated",
        "deleted",
        "removed",
        "running",
        "succeeded",
        "stopped",
        "pending",
    }
)
RESOURCE_TYPES = frozenset(
    {"sandbox", "agent", "workspace", "thread", "tool", "installable_agent_install", "runmesh_device", "code_execution"}
)

# Compact event as kept in an open run's working state (JSON list).
E_ID, E_TYPE, E_AT, E_SEV, E_STATUS, E_RTYPE, E_RID, E_TOOL, E_TITLE, E_SUMMARY, E_THREAD, E_RUN = range(12)


OPTIONAL_FIELDS = (
    "severity",
    "status",
    "resourceType",
    "resourceId",
    "toolSlug",
    "title",
    "summary",
    "threadId",
    "agentRunId",
)  # in E_SEV .. E_RUN order


def parse_event(source: str, item: object) -> tuple[list[object], datetime]:
    """One feed event -> (compact list, its time); raises BadRecordError."""
    f = Fields(source, item)
    event_id = f.str("id")
    occurred = f.time("occurredAt")
    return [event_id, f.opt_str("eventType") or "unknown", occurred.isoformat(), *f.opt_strs(OPTIONAL_FIELDS)], occurred


def counted_event(ev: list[object], at: datetime) -> ActivityEvent:
    rtype = cast(str | None, ev[E_RTYPE])
    status = cast(str | None, ev[E_STATUS])
    return ActivityEvent(
        id=cast(str, ev[E_ID]),
        name=cast(str, ev[E_TYPE]),
        time=at,
        category=rtype if rtype in RESOURCE_TYPES else "unknown",
        severity=parse_enum(Severity, ev[E_SEV], Severity.UNKNOWN),
        status=status if status in EVENT_STATUSES else "unknown",
    )


class RuntoolsSource(PlatformSource):
    PLATFORM = PLATFORM

    def __init__(
        self,
        config: SourceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        opts = config.options
        self._filters = {str(k): str(v) for k, v in cast(dict[str, object], opts.get("filters") or {}).items()}
        self._lookback = timedelta(seconds=float(cast(float, opts.get("lookback", 30.0))))
        self._page_size = int(cast(int, opts.get("page_size", 200)))
        self._max_window = timedelta(seconds=float(cast(float, opts.get("max_window", 3600.0))))
        self._span = min(self._max_window, FIRST_SPAN)  # of the next backfill window; adapts to the feed's density
        self._edge = min(self._lookback, EDGE)
        self._start_from = timedelta(seconds=config.start_from)
        auth = {"X-API-Key": config.secret or ""}
        super().__init__(config, auth, transport=transport, stop=stop)

    def probe(self) -> str:
        body = self._client.get_json(PATH, {"limit": 1})
        events = envelope(self.name, body, "data", "events")
        return f"ok: GET {PATH} returned {len(events) if isinstance(events, list) else 0} event(s)"

    # -- polling -----------------------------------------------------------

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        checkpoint = dict(ctx.checkpoint)
        watermark = _time_or(checkpoint.get("watermark"), ctx.now - self._start_from)
        settled = checkpoint.get("settled") is True
        # No window starts before the floor: the last settled window kept the
        # keys of its final EDGE only, so reading further back (a window
        # narrower than `lookback`, not settled, overlapping by `lookback`)
        # would count its other events again.
        floor = cast(str | None, checkpoint.get("floor"))
        window = cast(dict[str, object] | None, checkpoint.get("window"))
        while True:
            if window is None:
                since = watermark - (self._edge if settled else self._lookback)
                since = _whole_ms(max(since, parse_time(floor)) if floor else since)
                until = _whole_ms(min(ctx.now, watermark + self._span))
                window = {"since": since.isoformat(), "until": until.isoformat(), "cursor": None, "complete": False}
            if not window.get("complete"):
                pages = yield from self._read_window(ctx, window, _mark(watermark, floor))
                self._adapt_span(pages)
            until = parse_time(window["until"])
            settled = self._settled(ctx, until)
            floor = (until - self._edge).isoformat() if settled else floor
            yield from self._finalize(ctx, until, {**_mark(until, floor), "settled": settled})
            watermark, window = until, None
            if until >= _whole_ms(ctx.now):
                return

    def _settled(self, ctx: PollContext, until: datetime) -> bool:
        """Every event before `until` is published (late ones arrive within
        `lookback`): the next window need not read any of it again."""
        return until <= ctx.now - self._lookback

    def _adapt_span(self, pages: int) -> None:
        """Backfill windows sized to about one committed batch: a window read
        in one batch exports its finished runs straight from memory."""
        if pages > PAGES_PER_COMMIT:
            self._span = min(self._max_window, max(MIN_SPAN, self._span * 0.8 * PAGES_PER_COMMIT / pages))
        elif pages < PAGES_PER_COMMIT // 2:
            self._span = min(self._max_window, self._span * 2)

    def _read_window(
        self, ctx: PollContext, window: dict[str, object], mark: dict[str, object]
    ) -> Generator[Batch, None, int]:
        """Read the window from its cursor to its end; returns the pages read.
        `mark`: the checkpoint's watermark and floor while the window is read."""
        guard = CursorGuard(self.name)
        cursor = cast(str | None, window.get("cursor"))
        batch, pages, total = Batch(), 0, 0
        while True:
            params: dict[str, object] = {
                **self._filters,
                "since": format_time(parse_time(window["since"])),
                "until": format_time(parse_time(window["until"])),
                "limit": self._page_size,
                "cursor": cursor,
            }
            if cursor is not None:
                guard.check(cursor)
            body = self._client.get_json(PATH, params)
            events = envelope(self.name, body, "data", "events")
            meta = envelope(self.name, body, "meta")
            has_more = isinstance(meta, dict) and bool(meta.get("hasMore"))
            next_cursor = meta.get("nextCursor") if isinstance(meta, dict) else None
            if has_more and not (isinstance(next_cursor, str) and next_cursor):
                has_more = False  # hasMore without a cursor: nothing more can be asked for
            self._ingest(ctx, batch, events)
            pages, total = pages + 1, total + 1
            cursor = cast(str, next_cursor) if has_more else None
            window = {**window, "cursor": cursor, "complete": not has_more}
            if not has_more:
                self._end_window(ctx, batch, parse_time(window["until"]))
            if pages == PAGES_PER_COMMIT or not has_more:
                batch.checkpoint = {**mark, "window": window}
                yield batch
                batch, pages = Batch(), 0
            if not has_more:
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
        if self._settled(ctx, until):
            keep_from = (until - self._edge).timestamp()  # the next window re-reads these
            batch.seen_add = {k: at for k, at in batch.seen_add.items() if at >= keep_from or not k.startswith("ev:")}

    def _export(self, batch: Batch, open_run: OpenRun) -> None:
        run = self._build_run(open_run, None)
        batch.runs.append(run)
        batch.open_deletes.add(open_run.run_id)  # stored by an earlier batch, or not: deleting is safe
        batch.seen_add[f"run:{open_run.run_id}"] = (run.ended_at or run.started_at).timestamp()

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
        others = {f"run:{r}": r for r in by_run if r not in batch.open_upserts}
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
            finished = finished or _outcome(cast(str, ev[E_TYPE])) is not None
        batch.open_upserts[run_id] = OpenRun(
            run_id=run_id,
            agent=agent,
            opened_at=current.opened_at if current else ctx.now.timestamp(),
            data=current.data if current else {},  # a run stored by an older exporter keeps its "events" there
            finished=finished,
            appended=(*in_batch.appended, *new) if in_batch else tuple(new),
        )

    def _finalize(self, ctx: PollContext, until: datetime, checkpoint: dict[str, object]) -> Iterator[Batch]:
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
                batch.seen_prune_before = (until - 2 * self._lookback - timedelta(minutes=5)).timestamp()
            yield batch
            if last:
                return

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        return self._build_run(open_run, RunStatus.INCOMPLETE)

    def _build_run(self, open_run: OpenRun, forced: RunStatus | None) -> Run:
        stored = cast(list[list[object]], open_run.data.get("events", []))  # written by an older exporter
        every = (*stored, *cast(tuple[list[object], ...], open_run.items + open_run.appended))
        timed = sorted(((parse_time(e[E_AT]), e) for e in every), key=lambda pair: pair[0])
        start = end = None
        status, raw_status = RunStatus.RUNNING, "running"
        error_message = None
        thread = None
        span_events: list[ActivityEvent] = []
        tools: dict[str, dict[str, object]] = {}
        for at, ev in timed:
            etype = cast(str, ev[E_TYPE])
            thread = thread or cast(str | None, ev[E_THREAD])
            if etype == RUN_STARTED:
                start = at
            elif (outcome := _outcome(etype)) is not None:
                end, status, raw_status = at, outcome, etype.rsplit(".", 1)[1]
                if outcome in (RunStatus.FAILED, RunStatus.TIMED_OUT):
                    error_message = cast(str | None, ev[E_SUMMARY] or ev[E_TITLE])
            elif etype.startswith(TOOL_PREFIX) and ev[E_RID]:
                _add_tool_event(tools, ev, etype, at)
                continue
            span_events.append(_span_event(ev, at))
        start = start or timed[0][0]
        if forced is not None:
            status, raw_status, end = forced, "incomplete", None
        return Run(
            source=self.name,
            platform=PLATFORM,
            base_url=self.base_url,
            run_id=open_run.run_id,
            agent_id=open_run.agent,
            agent_name=open_run.agent,
            status=status,
            raw_status=raw_status,
            started_at=start,
            ended_at=end,
            conversation_id=thread,
            error_type=status.value if status in (RunStatus.FAILED, RunStatus.TIMED_OUT) else None,
            error_message=error_message,
            tool_calls=tuple(_tool_call(call_id, t) for call_id, t in tools.items()),
            events=tuple(span_events),
        )


def _outcome(event_type: str) -> RunStatus | None:
    if event_type.startswith("agent.run."):
        return RUN_OUTCOMES.get(event_type[len("agent.run.") :])
    return None


SPAN_EVENT_ATTRIBUTES = (
    ("agent_activity.event.id", E_ID),
    ("agent_activity.event.severity", E_SEV),
    ("agent_activity.event.status", E_STATUS),
    ("agent_activity.event.resource_type", E_RTYPE),
    ("agent_activity.event.resource_id", E_RID),
    ("agent_activity.event.title", E_TITLE),
)


def _span_event(ev: list[object], at: datetime) -> ActivityEvent:
    attrs = tuple([(name, cast(str, ev[i])) for name, i in SPAN_EVENT_ATTRIBUTES if ev[i] is not None])
    return ActivityEvent(id=cast(str, ev[E_ID]), name=cast(str, ev[E_TYPE]), time=at, attributes=attrs)


def _add_tool_event(tools: dict[str, dict[str, object]], ev: list[object], etype: str, at: datetime) -> None:
    call = tools.setdefault(cast(str, ev[E_RID]), {"name": ev[E_TOOL], "start": None, "end": None, "status": None})
    call["name"] = call["name"] or ev[E_TOOL]
    phase = etype[len(TOOL_PREFIX) :]
    status = TOOL_OUTCOMES.get(phase, ToolStatus.UNKNOWN)
    if status is ToolStatus.RUNNING:
        call["start"] = at
        return
    call["end"], call["status"] = at, status
    if status is ToolStatus.FAILED:
        call["error"] = ev[E_SUMMARY] or ev[E_TITLE]


def _tool_call(call_id: str, t: dict[str, object]) -> ToolCall:
    start = cast(datetime | None, t["start"]) or cast(datetime, t["end"])
    return ToolCall(
        id=call_id,
        name=cast(str | None, t["name"]) or "unknown",
        started_at=start,
        ended_at=cast(datetime | None, t["end"]),
        status=cast(ToolStatus | None, t["status"]) or ToolStatus.UNKNOWN,
        error_message=cast(str | None, t.get("error")),
    )


def _whole_ms(at: datetime) -> datetime:
    """A window bound as the platform receives it (milliseconds): kept keys,
    floors and the next window's start then all agree with what was read."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _mark(watermark: datetime, floor: str | None) -> dict[str, object]:
    return {"watermark": watermark.isoformat(), **({"floor": floor} if floor else {})}


def _time_or(value: object, default: datetime) -> datetime:
    return parse_time(value) if isinstance(value, str) else default
