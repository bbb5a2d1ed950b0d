"""runtype: one poll (`Poll`), the checkpoint it advances, batch by batch.

A poll refreshes the agents (agents.py), reads each active agent's listing
windows (the reading strategy: reader.py), re-reads the open executions its
listings did not show, and ends with a batch that prunes the seen keys and
sub-agent roots behind every agent's re-read window. Every decision (what is
seen, what is open, sub-agent roots, batches, checkpoints) is made here, on
the poll thread, in the order of a sequential read; the requests it needs
are read ahead on the source's workers: every agent's first listing page,
each page's requests (plan.py) and the re-reads of open executions.

Checkpoint:
    {"agents": {...}, "listed_at": iso?,    # each agent's progress (agents.py)
     "subs": {...}}                         # sub-agent roots (lineage.py)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from exporter.model import Batch, OpenRun, Rejected
from exporter.sources.ahead import Fetched, attempt
from exporter.sources.base import PollContext, count, export_run, parse_each, rejected, run_key
from exporter.sources.http import BadRecordError, NotFound
from exporter.sources.runtype.agents import Agents
from exporter.sources.runtype.api import AGENTS_PATH, Execution, executions_path, parse_agent, parse_execution
from exporter.sources.runtype.lineage import Lineage, top_key
from exporter.sources.runtype.plan import PageAhead
from exporter.sources.runtype.runs import Held, build_run
from exporter.sources.windows import Window, mean_watermark

if TYPE_CHECKING:
    from exporter.sources.runtype.reader import Finished, Page, RuntypeSource

log = logging.getLogger(__name__)

T = TypeVar("T")
Request = tuple[str, str, str | None]  # a listing window's from, to and the cursor it resumes at

SEEN_MARGIN = timedelta(minutes=10)  # dedup keys kept beyond the re-read window
EMIT_CHUNK = 20  # finished runs (or open executions re-read) per committed batch


@dataclass(frozen=True, slots=True)
class Reread:
    """An open execution re-read by id: its detail (None on 404) and, when
    it has finished, what building it costs."""

    detail: Fetched[dict[str, object] | None]
    finished: Finished | None = None


class Poll:
    """The working state of one poll: the checkpoint being advanced."""

    def __init__(self, source: RuntypeSource, ctx: PollContext) -> None:
        self.s = source
        self.ctx = ctx
        self.stamp = ctx.now.isoformat()
        self.agents = Agents(ctx.checkpoint, ctx.now - source.start_from)
        self.lineage = Lineage(source.name, ctx.checkpoint.get("subs"), ctx.state, self._fetch_parent)
        self._page: PageAhead | None = None  # what the page being read reads ahead

    def checkpoint(self) -> dict[str, object]:
        cp: dict[str, object] = {
            "agents": self.agents.entries_json(),
            "subs": self.lineage.subs_json(),
        }
        if self.agents.listed_at is not None:
            cp["listed_at"] = self.agents.listed_at.isoformat()
        return cp

    def _checkpoint_batch(self, batch: Batch | None = None) -> Batch:
        if batch is None:
            batch = Batch()
        batch.checkpoint = self.checkpoint()
        batch.read_to = mean_watermark(self.agents[a].progress for a in self.agents.active())
        return batch

    def run(self) -> Iterator[Batch]:
        yield from self._refresh_agents()
        # Every agent's first listing page is read ahead (an idle poll is one
        # page per agent); each agent's window is fixed at the start of the
        # poll (reading one agent never moves another's), so none is stale.
        plan = [(agent_id, self._first_request(agent_id)) for agent_id in self.agents.active()]
        with closing(self.s.workers.map_ordered(self._first_page, plan)) as firsts:
            for agent_id, request, first in firsts:
                yield from self._read_agent(agent_id, request, first)
        yield from self._recheck_open()
        yield self._finish()

    # -- agents ------------------------------------------------------------

    def _refresh_agents(self) -> Iterator[Batch]:
        """The agents to read: the configured ids, or GET /v1/agents at most
        every AGENT_REFRESH."""
        if self.s.configured_agents is not None:
            if self.agents.configure(self.s.configured_agents):
                yield self._checkpoint_batch()
            return
        if not self.agents.listing_due(self.ctx.now):
            return
        batch = Batch()
        listed: dict[str, str | None] = {}
        for items, _ in self.s.pages(AGENTS_PATH, {}):
            for agent_id, name in parse_each(self.s.name, items, lambda i: parse_agent(self.s.name, i), batch, "agent"):
                if self.s.in_shard(agent_id):
                    listed[agent_id] = name
        self.agents.listed(listed, self.ctx.now)
        yield self._checkpoint_batch(batch)

    # -- executions --------------------------------------------------------

    def _first_request(self, agent_id: str) -> Request | None:
        window = self.agents[agent_id].progress.next_window(self.ctx.now, self.s.lookback)
        return None if window is None else _request(window)

    def _first_page(self, item: tuple[str, Request | None]) -> tuple[str, Request | None, Fetched[Page] | None]:
        """(worker thread) The first listing page of an agent's next window."""
        agent_id, request = item
        if request is None:
            return agent_id, None, None
        since, until, start = request
        path = executions_path(agent_id)
        return agent_id, request, attempt(lambda: self.s.page(path, {"from": since, "to": until}, start))

    def _read_agent(
        self, agent_id: str, request: Request | None = None, first: Fetched[Page] | None = None
    ) -> Iterator[Batch]:
        try:
            yield from self._read_windows(agent_id, request, first)
        except NotFound:
            if self.s.configured_agents is not None:
                raise  # a configured agent that does not exist is a configuration error
            # Deleted since the agent list was read: set it aside like an
            # agent that left the list (the next listing decides).
            log.info(
                "agent not found (HTTP 404): not read until it is listed again",
                extra={"source": self.s.name, "record_id": agent_id},
            )
            self.agents.set_aside(agent_id, self.ctx.now)
            yield self._checkpoint_batch()

    def _read_windows(self, agent_id: str, request: Request | None, first: Fetched[Page] | None) -> Iterator[Batch]:
        """`first`: the first page of `request`, read ahead."""
        entry = self.agents[agent_id]
        path = executions_path(agent_id)
        while (window := entry.progress.next_window(self.ctx.now, self.s.lookback)) is not None:
            since, until, start = now = _request(window)
            ahead, first = (first if now == request else None), None
            for items, cursor in self.s.pages(path, {"from": since, "to": until}, start, ahead):
                if cursor is None:
                    entry.progress = entry.progress.finished(window)
                else:
                    entry.progress = entry.progress.reading(window.at(cursor=cursor))
                # The page's last batch carries the moved cursor/watermark.
                yield from self._ingest(agent_id, items)

    def _ingest(self, agent_id: str, items: object) -> Iterator[Batch]:
        """One listing page, in batches of at most EMIT_CHUNK finished runs
        (each may have cost requests: a failure later in the page keeps
        them); the last batch carries the checkpoint past the page."""
        batch = Batch()
        parsed = list(
            parse_each(self.s.name, items, lambda i: parse_execution(self.s.name, i, agent_id), batch, "execution")
        )
        # First learn every parent link on the page (a child is listed before
        # its parent: newest first), then handle each execution.
        for x in parsed:
            self.lineage.remember(x)
        self._page = page = PageAhead(self.s, self.ctx.state, self.lineage, parsed)
        try:
            for i, x in enumerate(parsed):
                self._handle(batch, x, from_detail=False, fetched=partial(page.finished, i))
                if len(batch.runs) >= EMIT_CHUNK:
                    yield batch
                    batch = Batch()
        finally:
            self._page = None
            page.close()
        yield self._checkpoint_batch(batch)

    def _fetch_parent(self, exec_id: str, via_agent: str) -> Execution | None:
        """(Lineage's fetch) The execution as read ahead for the page being
        read, else read now."""
        if self._page is not None:
            return self._page.parent(exec_id, via_agent)
        return self.s.fetch(exec_id, via_agent)

    def _handle(
        self,
        batch: Batch,
        x: Execution,
        *,
        from_detail: bool,
        current: OpenRun | None = None,
        fetched: Callable[[], Finished | None] | None = None,
    ) -> None:
        """`fetched`: what building `x` costs, read ahead (asked for only once
        `x` is known to be built, after its sub-agent root: the order of a
        sequential read); None or a mismatch: read here."""
        if run_key(x.id) in batch.seen_add or self.ctx.state.is_seen(run_key(x.id)):
            return  # exported already: a re-read changes nothing
        if current is None:
            current = batch.open_upserts.get(x.id) or self.ctx.state.open_run(x.id)
        held = Held.of(current) if current is not None else None
        created = x.created_at
        if held is not None and not held.unresolved:
            root, unresolved = held.root, False
        else:
            root, unresolved = self.lineage.root_of(batch, x)
        if x.parent_id is None:
            batch.seen_add[top_key(x.id)] = created.timestamp()
        elif not unresolved and root is not None:
            self.lineage.add_sub(x.id, root, created.timestamp())
        name = self.agents.name(x.agent_id) or (held.name if held else None)
        if x.is_open:
            batch.open_upserts[x.id] = OpenRun(
                run_id=x.id,
                agent=x.agent_id,
                opened_at=current.opened_at if current else self.ctx.now.timestamp(),
                data=Held(x, root, name, self.stamp, unresolved).to_data(),
            )
            return
        got = fetched() if fetched is not None else None
        if got is None or got.x.id != x.id:
            got = self.s.fetch_finished(x, from_detail=from_detail)
        if got.detail_error is not None:
            raise got.detail_error
        x = got.x
        tool_calls = self.s.parse_tool_calls(x.id, got.calls, batch) if got.calls is not None else ()
        run = build_run(
            self.s.name, self.s.base_url, x, root=root, name=name, tool_calls=tool_calls, unresolved=unresolved
        )
        for field_name, reason in x.problems:
            batch.rejected.append(
                Rejected(reason=reason, record_id=x.id, detail=f"{field_name} does not parse: run kept without it")
            )
        export_run(batch, run, created)
        batch.open_upserts.pop(x.id, None)
        batch.open_deletes.add(x.id)

    # -- open executions -----------------------------------------------------

    def _recheck_open(self) -> Iterator[Batch]:
        """Re-read by id every open execution this poll's listings did not show."""
        batch = Batch()
        pending = 0
        # Read ahead on the poll thread (the generator), up to `concurrency`
        # runs: handling one open run changes no other, so what is read of
        # the later ones still holds when their turn comes.
        todo = (
            (open_run, self.ctx.state.is_seen(run_key(open_run.run_id)))
            for open_run in self.ctx.state.open_runs()
            if open_run.data.get("checked") != self.stamp
        )
        with closing(self.s.workers.map_ordered(self._reread, todo)) as rereads:
            for open_run, seen, got in rereads:
                pending += 1
                self._recheck(batch, open_run, seen, got)
                if pending >= EMIT_CHUNK:
                    yield self._checkpoint_batch(batch)
                    batch, pending = Batch(), 0
        if pending:
            yield self._checkpoint_batch(batch)

    def _reread(self, item: tuple[OpenRun, bool]) -> tuple[OpenRun, bool, Reread | None]:
        """(worker thread) An open execution's detail and, once it has
        finished, its tool calls; nothing for one exported already."""
        open_run, seen = item
        if seen:
            return open_run, seen, None
        try:
            old = Held.of(open_run).x
        except Exception as err:  # the poll thread raises it itself
            return open_run, seen, Reread(Fetched(error=err))
        detail = attempt(lambda: self.s.detail(old.agent_id, old.id))
        finished = None
        if detail.error is None and detail.value is not None:
            try:
                x: Execution | None = parse_execution(self.s.name, detail.value, old.agent_id)
            except BadRecordError:
                x = None
            if x is not None and x.id == old.id and not x.is_open:
                finished = self.s.fetch_finished(x, from_detail=True)
        return open_run, seen, Reread(detail, finished)

    def _recheck(self, batch: Batch, open_run: OpenRun, seen: bool, got: Reread | None) -> None:
        """(poll thread) One open execution, with what `_reread` read of it."""
        old = Held.of(open_run).x
        if seen:
            batch.open_deletes.add(open_run.run_id)  # exported already: nothing to re-read
            return
        detail = got.detail.get() if got is not None else self.s.detail(old.agent_id, old.id)
        if detail is None:  # gone at the platform: give it up now
            log.info(
                "open execution not found (HTTP 404): exported as incomplete",
                extra={"source": self.s.name, "record_id": old.id},
            )
            export_run(batch, self.s.expire(open_run, self.ctx.now), old.created_at)
            batch.open_deletes.add(open_run.run_id)
            return
        try:
            x = parse_execution(self.s.name, detail, old.agent_id)
        except BadRecordError as err:
            batch.rejected.append(rejected(err))
            return
        if x.id == old.id:
            count(batch, "execution")
            finished = got.finished if got is not None else None
            self._handle(batch, x, from_detail=True, current=open_run, fetched=partial(_given, finished))

    def _finish(self) -> Batch:
        batch = Batch()
        watermarks = [self.agents[a].progress.watermark for a in self.agents.active()]
        if watermarks:
            horizon = min(watermarks) - self.s.lookback
            batch.seen_prune_before = (horizon - SEEN_MARGIN).timestamp()
            self.lineage.prune(horizon)
        batch.caught_up_to = self.ctx.now
        return self._checkpoint_batch(batch)


def _request(window: Window) -> Request:
    """What a listing window's next page is asked with: from, to, cursor."""
    since, until = window.query()
    resume = window.resume.get("cursor")
    return since, until, resume if isinstance(resume, str) else None


def _given(value: T) -> T:
    return value
