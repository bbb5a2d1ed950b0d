"""bctrl: browser/desktop runtime runs and their activity timelines.

Reading strategy (docs/platforms.md, bctrl):

1. Discover runs. With fixed run ids (`runs:` option) there is no listing:
   every configured id not exported yet is an open run. Otherwise
   `GET /v1/runs` (no bctrl page documents it: an assumed listing) is read newest first, page by
   page, until a page holds a run created before `watermark - lookback`;
   every run in that window not exported yet becomes (or updates) an open
   run holding the listing's status and times. The watermark then moves to
   the newest `createdAt` listed (platform time, never our clock).
2. Read each open run's activity, `GET /v1/runs/{id}/activity`, from the
   cursor stored in its open-run data. Items come oldest first; a null
   `nextCursor` means "nothing more yet", so the cursor last followed is
   kept and the next poll resumes from it (re-reading at most that one page,
   de-duplicated by item id against the items already held).
3. A run is exported once it is terminal and its timeline has been read to
   the current end: terminal when the listing says so, or when a
   category=system item carries a terminal status (the only signal with
   fixed run ids, and the one that ends runs older than the listing window).
   A 404 on the activity drops the open run with a warning (deleted or not
   visible) and remembers it as gone, so it is not asked for again.

Request pattern per poll: one listing request per page of the window (one
when idle) + one activity request per page of each open run (one per open
run when idle). Exported and gone runs are never requested again.

Concurrency: the activity reads of different open runs are independent, so
each open run's page chain (from its stored cursor to a null `nextCursor`,
guarded per run) is fetched on a worker thread (`Workers.map_ordered`, up to
`concurrency` runs at once). Workers only send requests and check the page
envelope; the chains are consumed on the poll thread in the order of
`open_runs()`, page by page, exactly as a sequential read would (ingest,
export, the 404 drop), and an error met while fetching a chain is raised
there, after the pages fetched before it: batches and checkpoints are those
of a sequential read. The listing stays sequential (each page's cursor comes
from the one before).

Checkpoint: {"watermark": iso} (listing mode only): runs created at or after
`watermark - lookback` have all been discovered. Each open run's working
state is in OpenRun.data: {"v": 1, "run": listing info (null for a fixed run
id), "cursor": the activity cursor last followed, "items": the compact items
read so far (api.py), "bad": ids of items that did not parse, and, once an
item is read, "runtime", "kind": its runtimeId, runtimeKind}. Runs are built
from it in runs.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import cast

from exporter.config import SourceConfig
from exporter.model import Batch, OpenRun, Run, RunStatus, parse_time
from exporter.sources.ahead import Fetched, attempt
from exporter.sources.base import (
    CursorGuard,
    PlatformSource,
    PollContext,
    count,
    envelope,
    export_run,
    grouped,
    rejected,
    run_key,
)
from exporter.sources.bctrl.api import (
    ACTIVITY_PATH,
    I_ID,
    PLATFORM,
    RUN_OUTCOMES,
    RUNS_PATH,
    SYSTEM_CATEGORY,
    UNKNOWN_AGENT,
    activity_page,
    parse_item,
    parse_listed_run,
    raw_id,
    runs_page,
)
from exporter.sources.bctrl.options import BctrlOptions
from exporter.sources.bctrl.runs import (
    Outcome,
    agent_of,
    build_run,
    held_items,
    item_event,
    listing,
    listing_outcome,
    outcome,
)
from exporter.sources.http import BadRecordError, NotFound
from exporter.sources.windows import time_or

log = logging.getLogger(__name__)

PRUNE_MARGIN = timedelta(minutes=5)  # dedup keys kept this long behind the listing window
DATA_VERSION = 1


class BctrlSource(PlatformSource):
    PLATFORM = PLATFORM

    def configure(self, config: SourceConfig) -> None:
        opts = BctrlOptions.of(config.options)
        self._level = opts.level
        self._categories = list(opts.categories) if opts.categories else None
        self._fixed_runs = list(opts.runs) if opts.runs is not None else None
        self._page_size = opts.page_size
        self._lookback = timedelta(seconds=opts.lookback)
        if self._fixed_runs is not None and self._categories and SYSTEM_CATEGORY not in self._categories:
            log.warning(
                "categories leave out 'system': with fixed run ids no run can be seen to end, "
                "each is exported as incomplete after runs.max_open_age",
                extra={"source": config.name},
            )

    def probe(self) -> str:
        if self._fixed_runs:
            path = ACTIVITY_PATH.format(id=self._fixed_runs[0])
            items = envelope(self.name, self._client.get_json(path, {"limit": 1}), "items")
            return f"ok: GET {path} returned {len(items) if isinstance(items, list) else 0} item(s)"
        runs = envelope(self.name, self._client.get_json(RUNS_PATH, {"limit": 1}), "data")
        return f"ok: GET {RUNS_PATH} returned {len(runs) if isinstance(runs, list) else 0} run(s)"

    # -- polling -----------------------------------------------------------

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        if self._fixed_runs is not None:
            yield from self._adopt_fixed_runs(ctx)
        else:
            yield from self._discover_runs(ctx)
        # Each run's activity is read from the state handed in, never read
        # back: its batches can be committed in groups. The open runs are read
        # here, on the poll thread; their page chains are fetched on workers
        # and consumed here in order.
        open_runs = ((o, cast(str | None, o.data.get("cursor"))) for o in ctx.state.open_runs())
        with closing(self.workers.map_ordered(self._fetch_activity, open_runs)) as chains:
            yield from grouped(batch for chain in chains for batch in self._read_activity(ctx, chain))
        yield Batch(caught_up_to=ctx.now)

    def _adopt_fixed_runs(self, ctx: PollContext) -> Iterator[Batch]:
        batch = Batch()
        for run_id in self._fixed_runs or ():
            if _done(ctx, batch, run_id) or run_id in batch.open_upserts or ctx.state.open_run(run_id):
                continue
            batch.open_upserts[run_id] = OpenRun(
                run_id=run_id, agent=UNKNOWN_AGENT, opened_at=ctx.now.timestamp(), data=_new_data(None)
            )
        if batch.open_upserts:
            yield batch

    def _discover_runs(self, ctx: PollContext) -> Iterator[Batch]:
        """Read GET /v1/runs newest first down to `watermark - lookback`."""
        watermark = time_or(ctx.checkpoint.get("watermark"), ctx.now - self.start_from)
        cutoff = watermark - self._lookback
        newest = watermark
        guard = CursorGuard(self.name)
        cursor: str | None = None
        while True:
            if cursor is not None:
                guard.check(cursor)
            body = self._client.get_json(RUNS_PATH, {"limit": self._page_size, "cursor": cursor})
            rows, next_cursor = runs_page(self.name, body)
            batch = Batch()
            reached_cutoff = False
            for row in rows:
                count(batch, "run")
                try:
                    listed = parse_listed_run(self.name, row)
                except BadRecordError as err:
                    _reject_once(ctx, batch, err, ctx.now.timestamp())
                    continue
                created = parse_time(listed["created"])
                newest = max(newest, created)
                if created < cutoff:
                    reached_cutoff = True  # newest first: the rest of the window is read
                self._note_listed_run(ctx, batch, listed, discover=created >= cutoff)
            last = next_cursor is None or reached_cutoff
            if last:
                batch.checkpoint = {"watermark": newest.isoformat()}
                batch.seen_prune_before = (newest - self._lookback - PRUNE_MARGIN).timestamp()
            yield batch
            if last:
                return
            cursor = next_cursor

    def _note_listed_run(self, ctx: PollContext, batch: Batch, listed: dict[str, object], *, discover: bool) -> None:
        """Open a newly listed run, or bring an open run's listing info up to
        date. Runs older than the window only update runs already open."""
        run_id = cast(str, listed.pop("id"))
        current = batch.open_upserts.get(run_id) or ctx.state.open_run(run_id)
        if current is None:
            if not discover or _done(ctx, batch, run_id):
                return
            data = _new_data(listed)
            batch.open_upserts[run_id] = OpenRun(
                run_id=run_id,
                agent=cast(str | None, listed["runtime"]) or UNKNOWN_AGENT,
                opened_at=ctx.now.timestamp(),
                data=data,
                finished=listing_outcome(data) is not None,
            )
            return
        data = dict(current.data)
        before = listing(data)
        merged = {**before, **{k: v for k, v in listed.items() if v is not None}}
        if before.get("status") in RUN_OUTCOMES and merged["status"] not in RUN_OUTCOMES:
            merged["status"] = before["status"]  # a status going backwards: keep the terminal one
        if merged == before:
            return
        data["run"] = merged
        agent = current.agent
        if agent == UNKNOWN_AGENT and merged.get("runtime"):
            agent = cast(str, merged["runtime"])
        batch.open_upserts[run_id] = OpenRun(
            run_id=run_id,
            agent=agent,
            opened_at=current.opened_at,
            data=data,
            finished=current.finished or listing_outcome(data) is not None,
        )

    def _fetch_activity(self, job: tuple[OpenRun, str | None]) -> _Chain:
        """On a worker thread: one open run's activity pages from `cursor` to
        the current end (a null `nextCursor`). Only requests and the page
        envelope: no state, nothing shared with another thread (its own
        CursorGuard). A 404 or an error ends the chain after the pages before
        it, and is acted on (or raised) by the poll thread in its place."""
        open_run, cursor = job
        pages: list[tuple[list[object], str | None]] = []
        end = attempt(lambda: self._follow(open_run.run_id, cursor, pages))
        return _Chain(open_run, pages, end)

    def _follow(self, run_id: str, cursor: str | None, pages: list[tuple[list[object], str | None]]) -> bool:
        """The activity pages from `cursor` on, appended to `pages`; True: a 404."""
        path = ACTIVITY_PATH.format(id=run_id)
        guard = CursorGuard(self.name)
        while True:
            if cursor is not None:
                guard.check(cursor)
            params: dict[str, object] = {"limit": self._page_size, "cursor": cursor, "level": self._level}
            if self._categories:
                params["categories"] = self._categories
            try:
                body = self._client.get_json(path, params)
            except NotFound:
                return True
            items, cursor = activity_page(self.name, path, body)
            pages.append((items, cursor))
            if cursor is None:
                return False

    def _read_activity(self, ctx: PollContext, chain: _Chain) -> Iterator[Batch]:
        """On the poll thread: one open run's fetched pages, in order, as a
        sequential read follows them from the stored cursor to the current
        end; export the run there if it is terminal."""
        open_run = chain.open_run
        run_id = open_run.run_id
        data = dict(open_run.data)
        agent = open_run.agent
        for items, next_cursor in chain.pages:
            batch = Batch()
            changed = self._ingest(batch, run_id, data, items)
            agent = agent_of(agent, data)
            if next_cursor is not None and next_cursor != data.get("cursor"):
                data["cursor"] = next_cursor
                changed = True
            if next_cursor is None and (result := outcome(data)) is not None:
                run = self._build_run(run_id, agent, data, result)
                export_run(batch, run, _key_time(data, run.started_at))
                batch.open_deletes.add(run_id)
                yield batch
                return
            if changed:
                batch.open_upserts[run_id] = OpenRun(
                    run_id=run_id,
                    agent=agent,
                    opened_at=open_run.opened_at,
                    data=data,
                    finished=open_run.finished or outcome(data) is not None,
                )
                yield batch
            if next_cursor is None:
                return  # nothing more yet: the next poll resumes from `cursor`
            data = dict(data)
        if chain.end.get():  # the error that ended the fetch raised here; True: 404
            yield self._drop_gone(ctx, open_run)

    def _ingest(self, batch: Batch, run_id: str, data: dict[str, object], raw: list[object]) -> bool:
        """Add the page's items not held yet to `data` (updated in place) and
        count each once in batch.events. Returns whether anything changed."""
        items = list(held_items(data))
        bad = list(cast(list[str], data.get("bad") or []))
        known = {cast(str, i[I_ID]) for i in items} | set(bad)
        changed = False
        for obj in raw:
            obj_id = raw_id(obj)
            if obj_id is not None and obj_id in known:
                continue  # a re-read (the last page again, a repeated page): changes nothing
            count(batch, "activity")
            try:
                item, _, runtime_id, runtime_kind = parse_item(self.name, obj)
            except BadRecordError as err:
                batch.rejected.append(rejected(err))
                if obj_id is not None:
                    bad.append(obj_id)
                    known.add(obj_id)
                    changed = True
                continue
            known.add(cast(str, item[I_ID]))
            items.append(item)
            batch.events.append(item_event(item, run_id))
            data.setdefault("runtime", runtime_id)
            if data.get("kind") in (None, "unknown"):
                data["kind"] = runtime_kind
            changed = True
        if changed:
            data["items"], data["bad"] = items, bad
        return changed

    def _drop_gone(self, ctx: PollContext, open_run: OpenRun) -> Batch:
        log.warning(
            "run not found or not visible (HTTP 404 on its activity): dropped",
            extra={"source": self.name, "record_id": open_run.run_id},
        )
        batch = Batch()
        batch.open_deletes.add(open_run.run_id)
        batch.seen_add[f"gone:{open_run.run_id}"] = _key_time(open_run.data, ctx.now).timestamp()
        return batch

    # -- runs ----------------------------------------------------------------

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        return self._build_run(
            open_run.run_id,
            open_run.agent,
            open_run.data,
            (RunStatus.INCOMPLETE, "incomplete"),
            # Last resort for a fixed run never seen to do anything: when
            # the exporter first asked for it (no platform time exists).
            fallback_start=datetime.fromtimestamp(open_run.opened_at, tz=timezone.utc),
        )

    def _build_run(
        self,
        run_id: str,
        agent: str,
        data: dict[str, object],
        result: Outcome,
        fallback_start: datetime | None = None,
    ) -> Run:
        return build_run(self.name, self.base_url, run_id, agent, data, result, fallback_start)


# -- helpers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Chain:
    """One open run's activity as a worker fetched it: its pages in order
    (items unparsed, next cursor), then how the fetch ended (`end`: a 404 or
    not, or the error). Built by one worker, then read by the poll thread."""

    open_run: OpenRun
    pages: list[tuple[list[object], str | None]]
    end: Fetched[bool]


def _new_data(listed: dict[str, object] | None) -> dict[str, object]:
    return {"v": DATA_VERSION, "run": listed, "cursor": None, "items": [], "bad": []}


def _done(ctx: PollContext, batch: Batch, run_id: str) -> bool:
    """Exported already, or gone (404): never asked for again."""
    keys = (run_key(run_id), f"gone:{run_id}")
    return any(k in batch.seen_add or ctx.state.is_seen(k) for k in keys)


def _reject_once(ctx: PollContext, batch: Batch, err: BadRecordError, at: float) -> None:
    """A listed run that does not parse: counted once, not on every re-read
    of the listing window."""
    key = f"bad:{err.record_id}"
    if err.record_id != "?" and (key in batch.seen_add or ctx.state.is_seen(key)):
        return
    batch.rejected.append(rejected(err))
    if err.record_id != "?":
        batch.seen_add[key] = at


def _key_time(data: dict[str, object], default: datetime) -> datetime:
    """Dedup keys of listed runs age with the run's createdAt, so pruning
    behind the listing window forgets only what it can no longer list."""
    return time_or(listing(data).get("created"), default)
