"""agent_activities: how runs are read, from per-agent run lists and run
detail (the wire format is in `api`, the requests and what is fetched ahead
on the workers in `fetch`, run building in `runs`, the open runs kept in
`held`, their re-checks by id in `recheck`, the checkpoint in `checkpoint`).

Reading strategy (docs/platforms.md, agent_activities): page numbers shift while new
runs arrive, so each configured agent is read in a window that does not move
under the reader: `completed_on_from=<watermark - lookback>` and
`completed_on_to=<now at the window's start>`, `sort=+completed_on`,
`has_completed=true`, pages 1.._meta.total_pages. A run that finishes later
has a later completed_on and lands after the pages already read. Runs are
de-duplicated by id (seen key `run:<id>`), each finished run is exported
once, with its detail (`result.step_history`, `result.timeline`, `error`,
`token_usage`) fetched when `fetch_detail` is on. The watermark moves to the
window's upper bound once every page of the window is read; each page is
committed with the next page number, so a restart resumes mid-window. Every
poll reads a window, even when the watermark is at now already: the lookback
is re-read for runs completed late.

In-flight runs (`has_completed=false`) are tracked as open runs for the
agent_runs_in_progress gauge; they are exported when they appear in a later
completed window. The in-flight listing costs one more request, so it is
asked only when it can matter: when the completed window of this poll found
newly finished runs, when the agent has runs open, and otherwise every
`inflight_every` polls (default 5; 1 = every poll, 0 = never). An idle agent
therefore costs 1 + 1/inflight_every requests per poll.

A run's status may go backwards (docs/platforms.md, "What every reader
must survive"): a finished run is now and then shown in an earlier state (pending
or running, completed_on, token_usage and error null, result cut). Such an
answer is never exported and never loses the run (`held` says how the run
is kept open and marked for re-check by id): an item of the completed window
shown unfinished, a run the listing shows finished whose detail shows it
unfinished, and an open run that left the in-flight list. A run marked for
re-check is asked by id once per later poll, after the agent's completed
window (which may export it first), until the detail shows it finished
(`recheck`). A run already exported (seen key) is skipped wherever it shows
up again.

Checkpoint (`checkpoint`): per agent, a `windows.Progress` (watermark, the
part-read window with its next page) and the in-flight listing's countdown.

Concurrency (`fetch`): requests whose page number or id is known before
their turn are fetched ahead on the source's workers; every decision, every
state read and the checkpoint stay here, on the poll thread, in the order of
a sequential read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import datetime, timedelta, timezone
from functools import cached_property

from exporter.config import SourceConfig
from exporter.model import Batch, OpenRun, Run, RunStatus
from exporter.sources.agent_activities import checkpoint, held
from exporter.sources.agent_activities.api import (
    LIST_PATH,
    PLATFORM,
    Listed,
    Page,
    detail_behind,
    listing_total,
    nonempty,
    parse_listed,
)
from exporter.sources.agent_activities.fetch import INFLIGHT, WINDOW, Detail, Fetch, FirstPages, Key, Request
from exporter.sources.agent_activities.options import AgentActivitiesOptions
from exporter.sources.agent_activities.recheck import Rechecks
from exporter.sources.agent_activities.runs import build_run
from exporter.sources.ahead import Fetched
from exporter.sources.base import (
    CursorGuard,
    PlatformSource,
    PollContext,
    count,
    parse_each,
    rejected,
    run_key,
)
from exporter.sources.http import BadRecordError, BadResponseError
from exporter.sources.windows import Window, mean_watermark

log = logging.getLogger(__name__)

SEEN_MARGIN = timedelta(minutes=10)  # dedup keys are kept this long past the oldest re-read window


class AgentActivitiesSource(PlatformSource):
    PLATFORM = PLATFORM

    def configure(self, config: SourceConfig) -> None:
        opts = AgentActivitiesOptions.of(config.options)
        self._agents = tuple(dict.fromkeys(opts.agents))  # unique (config checks it): one plan per agent
        self._per_page = opts.per_page
        self._lookback = timedelta(seconds=opts.lookback)
        self._fetch_detail = opts.fetch_detail
        self._inflight_every = opts.inflight_every
        self._failing: set[str] = set()  # agents whose last read failed: log the change once

    def auth(self, config: SourceConfig) -> dict[str, str]:
        opts = AgentActivitiesOptions.of(config.options)
        token = config.secret or ""
        return {opts.auth_header: f"{opts.auth_scheme} {token}" if opts.auth_scheme else token}

    def probe(self) -> str:
        if not self._agents:
            return "no agents configured"
        agent = self._agents[0]
        total = listing_total(
            self.name, self._client.get_json(LIST_PATH.format(agent=agent), {"per_page": 1, "page": 1})
        )
        return f"ok: agent {agent} lists {total if total is not None else 'some'} run(s)"

    @cached_property
    def _fetch(self) -> Fetch:
        return Fetch(self.name, self._client, self.workers, self._per_page)

    # -- polling -----------------------------------------------------------

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        agents = checkpoint.agents_from_json(ctx.checkpoint, self._agents, ctx.now - self.start_from)
        open_counts: dict[str, int] = {}
        rechecks: dict[str, list[str]] = {}  # agent -> open runs to ask by id (bounded by the open runs)
        for open_run in ctx.state.open_runs():
            if not open_run.finished:
                open_counts[open_run.agent] = open_counts.get(open_run.agent, 0) + 1
            if held.needs_recheck(open_run):
                rechecks.setdefault(open_run.agent, []).append(open_run.run_id)
        # Each agent's first window page (and in-flight listing, when it will
        # be asked whatever the window holds), fetched ahead across agents.
        plan: dict[Key, Request] = {}
        for uid in self._agents:
            plan[uid, WINDOW] = self._fetch.window_request(self._next_window(ctx, agents[uid]))
            if self._inflight_due(agents[uid], open_counts.get(uid, 0), found=False):
                plan[uid, INFLIGHT] = self._fetch.inflight_request()
        with closing(FirstPages(self._fetch, plan)) as ahead:
            yield from self._poll_agents(ctx, agents, open_counts, rechecks, ahead)

    def _poll_agents(
        self,
        ctx: PollContext,
        agents: dict[str, checkpoint.AgentProgress],
        open_counts: dict[str, int],
        rechecks: dict[str, list[str]],
        ahead: FirstPages,
    ) -> Iterator[Batch]:
        failures: list[BadResponseError] = []
        for uid in self._agents:
            try:
                yield from self._poll_agent(ctx, uid, agents, open_counts.get(uid, 0), rechecks.get(uid, []), ahead)
            except BadResponseError as err:
                ahead.drop(uid)  # its in-flight listing, if not sent yet, is not
                # One agent's bad answer (unknown uid: 404, an HTML page, a
                # page loop) must not hold back the others; the poll still
                # fails at its end, and this agent's checkpoint stays.
                if uid not in self._failing:
                    log.warning("agent %s not read: %s", uid, err.message, extra={"source": self.name})
                    self._failing.add(uid)
                failures.append(err)
                continue
            if uid in self._failing:
                log.info("agent %s read again", uid, extra={"source": self.name})
                self._failing.discard(uid)
        final = Batch(checkpoint=checkpoint.to_json(agents))
        if agents and all(agent.read for agent in agents.values()):
            oldest = min(agent.progress.watermark for agent in agents.values())
            final.caught_up_to = oldest
            final.seen_prune_before = (oldest - self._lookback - SEEN_MARGIN).timestamp()
        yield final
        if failures:
            raise failures[0]

    def _poll_agent(
        self,
        ctx: PollContext,
        uid: str,
        agents: dict[str, checkpoint.AgentProgress],
        open_count: int,
        recheck_ids: list[str],
        ahead: FirstPages,
    ) -> Iterator[Batch]:
        agent = agents[uid]
        found = False
        asked: set[str] = set()  # runs whose detail this poll asked already (bounded by the window's runs)
        first = ahead.take((uid, WINDOW))
        while True:
            window = self._next_window(ctx, agent)
            for batch, new in self._read_window(ctx, uid, window, agents, asked, first):
                found = found or new
                yield batch
            first = None
            if agent.progress.watermark >= ctx.now:
                break  # else a window left part-read by an earlier poll: read on up to now
        # Runs marked for re-check before this poll and not settled by its window.
        rechecks = Rechecks(self.name, self._fetch, self._fetch_detail, self._build_run)
        yield from rechecks.read(ctx, uid, recheck_ids, asked)
        if self._inflight_due(agent, open_count, found):
            yield from self._read_inflight(ctx, uid, ahead.take((uid, INFLIGHT)))  # None: not planned
            agent.inflight_wait = self._inflight_every - 1  # committed with the poll's last batch
        else:
            agent.inflight_wait = max(0, (agent.inflight_wait or 0) - 1)

    def _next_window(self, ctx: PollContext, agent: checkpoint.AgentProgress) -> Window:
        """The part-read window, else one from the watermark's lookback to
        now (also when the watermark is at now: the lookback is re-read)."""
        since = agent.progress.watermark - self._lookback
        return agent.progress.window or Window(since, max(ctx.now, since))

    def _inflight_due(self, agent: checkpoint.AgentProgress, open_count: int, found: bool) -> bool:
        """Whether the agent's in-flight listing is asked this poll (`found`:
        its window found newly finished runs)."""
        return self._inflight_every > 0 and (found or open_count > 0 or (agent.inflight_wait or 0) <= 0)

    def _read_window(
        self,
        ctx: PollContext,
        uid: str,
        window: Window,
        agents: dict[str, checkpoint.AgentProgress],
        asked: set[str],
        first: Page | None = None,
    ) -> Iterator[tuple[Batch, bool]]:
        """Every page of one completed window; yields (batch, found new runs).
        `first`: the answer to the window's first request, fetched ahead."""
        agent = agents[uid]
        params, page = self._fetch.window_request(window)
        per_page = checkpoint.resume_at(window)[1]
        restarted = False
        while True:
            guard = CursorGuard(self.name)  # one per pass: a restart starts afresh
            with closing(self._fetch.pages(uid, params, page, first)) as pages:
                first = None
                for listing in pages:
                    guard.check(str(listing.page))
                    guard.check_page(listing.items)
                    if per_page is not None and listing.per_page != per_page and page > 1 and not restarted:
                        # The server's page size changed since the resumed page was
                        # committed: page numbers mean other runs now. Re-read the
                        # window from its start (dedup makes that safe); pages
                        # fetched ahead of this one are dropped.
                        page, per_page, restarted = 1, listing.per_page, True
                        break
                    per_page = listing.per_page
                    batch = Batch()
                    new = self._ingest_completed(ctx, uid, batch, listing.items, asked)
                    last = page >= listing.total_pages or not nonempty(listing.items)
                    if last:
                        agent.progress, agent.read = agent.progress.finished(window), True
                    else:
                        window = checkpoint.at_page(window, page + 1, per_page)
                        agent.progress = agent.progress.reading(window)
                    batch.checkpoint = checkpoint.to_json(agents)
                    batch.read_to = mean_watermark(a.progress for a in agents.values())
                    yield batch, new
                    if last:
                        return
                    page += 1

    def _ingest_completed(self, ctx: PollContext, uid: str, batch: Batch, items: object, asked: set[str]) -> bool:
        """One page of the completed window into `batch`. The details of its
        newly finished runs are fetched together (a run's first appearance on
        the page), then every item is handled in order as a sequential read
        handles it."""
        if not isinstance(items, list):
            raise BadResponseError(self.name, "page items are not a list")
        parsed = [self._parse_listed(item) for item in items]
        listed_ok = [entry for entry in parsed if isinstance(entry, Listed)]
        seen = ctx.state.seen_among(run_key(listed.run_id) for listed in listed_ok)
        # The runs whose detail a sequential read asks, in order (first appearances).
        wanted: dict[str, None] = {}
        if self._fetch_detail:
            for listed in listed_ok:
                if listed.ended is not None and run_key(listed.run_id) not in seen:
                    wanted.setdefault(listed.run_id)
        with closing(self._fetch.details_ahead(uid, list(wanted))) as details:
            new = False
            for entry in parsed:
                count(batch, "run")
                if isinstance(entry, BadRecordError):
                    batch.rejected.append(rejected(entry))
                    continue
                listed = entry
                key = run_key(listed.run_id)
                if key in batch.seen_add or key in seen:
                    continue  # exported already (overlap, repeated page, status going backwards)
                ended = listed.ended
                if ended is None:
                    # The server filtered it as completed, yet it is shown unfinished
                    # (status gone backwards): it has ended, and its completed_on is
                    # behind the watermark once this window is committed. Ask by id.
                    held.hold(ctx, batch, uid, listed.run_id, listed.data, held.RECHECK_LISTED_UNFINISHED)
                    continue
                run = self._finished_run(uid, listed, batch, asked, details.take(listed.run_id))
                if run is None:  # the detail shows an earlier state: not exported from it
                    held.hold(ctx, batch, uid, listed.run_id, listed.data, held.RECHECK_DETAIL_BEHIND)
                    continue
                new = True
                held.export(batch, run, ended)
        return new

    def _parse_listed(self, item: object) -> Listed | BadRecordError:
        try:
            return parse_listed(self.name, item)
        except BadRecordError as err:
            return err

    def _read_inflight(self, ctx: PollContext, uid: str, first: Page | None = None) -> Iterator[Batch]:
        """Runs still in flight become open runs; open runs of this agent no
        longer listed have ended: they stop counting as in progress and are
        marked for re-check by id (a completed window may export them first).
        `first`: page 1, fetched ahead (its handling reads the state as it is
        now, after the agent's window)."""
        guard = CursorGuard(self.name)
        listed_ids: set[str] = set()  # bounded by the agent's runs in flight
        params, page = self._fetch.inflight_request()
        with closing(self._fetch.pages(uid, params, page, first)) as pages:
            for listing in pages:
                guard.check(str(listing.page))
                guard.check_page(listing.items)
                batch = Batch()
                for listed in parse_each(
                    self.name, listing.items, lambda item: parse_listed(self.name, item), batch, "inflight_run"
                ):
                    if listed.finished or ctx.state.is_seen(run_key(listed.run_id)):
                        continue  # ended meanwhile: the completed window has it
                    listed_ids.add(listed.run_id)
                    held.track_open(ctx, batch, uid, listed)
                yield batch
                if page >= listing.total_pages or not nonempty(listing.items):
                    break
                page += 1
        batch = Batch()
        for open_run in list(ctx.state.open_runs()):
            if open_run.agent == uid and not open_run.finished and open_run.run_id not in listed_ids:
                # Ended (or missed by a shifting page): ask it by id on the next
                # polls rather than wait for a completed window that may be
                # behind the watermark already.
                batch.open_upserts[open_run.run_id] = held.marked(open_run, held.RECHECK_LEFT_INFLIGHT)
        if batch.open_upserts:
            yield batch

    # -- building runs -------------------------------------------------------

    def _finished_run(
        self, uid: str, listed: Listed, batch: Batch, asked: set[str], ahead: Fetched[Detail] | None
    ) -> Run | None:
        """The run a finished listing item describes, with its detail (`ahead`:
        fetched ahead; None: not fetched ahead, asked now, as for a run
        appearing twice on one page, the first time shown behind); None when
        the detail contradicts the listing (shows the run unfinished)."""
        if not self._fetch_detail:
            return self._build_run(uid, listed.run_id, listed.data, None, batch)
        asked.add(listed.run_id)
        attributes = self._fetch.detail(uid, listed.run_id, with_fields=True) if ahead is None else ahead.get()
        if attributes is None:
            return self._build_run(uid, listed.run_id, listed.data, None, batch, detail_missing=True)
        count(batch, "run_detail")
        if detail_behind(attributes):
            return None
        return self._build_run(uid, listed.run_id, listed.data, attributes, batch)

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        listing = dict(held.listing_of(open_run))
        if not listing.get("started_on") and not listing.get("created_on"):  # never, for parsed listings
            listing["created_on"] = datetime.fromtimestamp(open_run.opened_at, timezone.utc).isoformat()
        return self._build_run(open_run.agent, open_run.run_id, listing, None, None, forced=RunStatus.INCOMPLETE)

    def _build_run(
        self,
        uid: str,
        run_id: str,
        listing: Mapping[str, object],
        detail: dict[str, object] | None,
        batch: Batch | None,
        *,
        detail_missing: bool = False,
        forced: RunStatus | None = None,
    ) -> Run:
        """`runs.build_run` for this source (one method: benchmarks/phases.py times it)."""
        return build_run(
            self.name, self.base_url, uid, run_id, listing, detail, batch, detail_missing=detail_missing, forced=forced
        )
