"""runtype: agent executions, with sub-agents and tool calls (the wire
format: api.py; which agents, and how far each is read: agents.py; Runs and
open-run data: runs.py; sub-agent roots: lineage.py).

Reading strategy, per agent: the listing is read in windows
[from, to] = [watermark - lookback, now] that do not move under the reader
(both bounds are sent, so newest-first pages cannot shift), following every
cursor. Each page is committed with the window's next cursor (a page's
finished runs, which each may cost a tool-call request, in parts of
EMIT_CHUNK first), so a restart resumes where it stopped; the watermark moves
to `to` only once the window is read to its end. Executions are
de-duplicated by id (`run:<id>` seen keys, kept for createdAt inside the
re-read window plus a margin).

An execution still pending/running is kept as an open run. The watermark is
*not* held back for it: `from` filters on createdAt, so a long run would drag
every later window (and every idle poll) back to its creation. Instead each
open execution is re-read by id (the detail endpoint) on later polls, unless
this poll's listing already showed it, until it is terminal; a 404 there
gives the run up as incomplete.

Checkpoint:
    {"agents": {...}, "listed_at": iso?,    # each agent's progress (agents.py)
     "subs": {...}}                         # sub-agent roots (lineage.py)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from exporter.config import SourceConfig
from exporter.model import Batch, OpenRun, Rejected, Run, ToolCall
from exporter.sources.base import (
    CursorGuard,
    PlatformSource,
    PollContext,
    count,
    envelope,
    export_run,
    parse_each,
    rejected,
    run_key,
)
from exporter.sources.http import BadRecordError, NotFound
from exporter.sources.runtype.agents import Agents
from exporter.sources.runtype.api import (
    AGENTS_PATH,
    ERROR_STATUSES,
    PLATFORM,
    Execution,
    detail_object,
    execution_path,
    executions_path,
    found_execution,
    list_page,
    parse_agent,
    parse_execution,
    parse_tool_call,
    tool_calls_path,
)
from exporter.sources.runtype.lineage import Lineage, top_key
from exporter.sources.runtype.options import RuntypeOptions
from exporter.sources.runtype.runs import Held, build_run, expired_run

log = logging.getLogger(__name__)

# Assumption: a newly terminal failed/timed_out execution whose list item has
# no `error` gets one detail request for it; other newly terminal executions
# are built from their list item (no detail request).
DETAIL_FOR_ERROR = ERROR_STATUSES

SEEN_MARGIN = timedelta(minutes=10)  # dedup keys kept beyond the re-read window
EMIT_CHUNK = 20  # finished runs (or open executions re-read) per committed batch


class RuntypeSource(PlatformSource):
    PLATFORM = PLATFORM

    def configure(self, config: SourceConfig) -> None:
        opts = RuntypeOptions.of(config.options)
        self.configured_agents: tuple[str, ...] | None = None if opts.agents == "all" else tuple(opts.agents)
        self.tool_calls = opts.tool_calls
        self._page_size = opts.page_size
        self.lookback = timedelta(seconds=opts.lookback)

    def probe(self) -> str:
        if self.configured_agents is None:
            body = self._client.get_json(AGENTS_PATH, {"limit": 1})
            items = envelope(self.name, body, "data")
            return f"ok: GET {AGENTS_PATH} returned {len(items) if isinstance(items, list) else 0} agent(s)"
        if not self.configured_agents:
            return "ok: no agents configured"
        path = executions_path(self.configured_agents[0])
        body = self._client.get_json(path, {"limit": 1})
        items = envelope(self.name, body, "data")
        return f"ok: GET {path} returned {len(items) if isinstance(items, list) else 0} execution(s)"

    # -- polling -----------------------------------------------------------

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        poll = _Poll(self, ctx)
        yield from poll.run()

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        return expired_run(self.name, self.base_url, Held.of(open_run))

    # -- requests ----------------------------------------------------------

    def pages(
        self, path: str, params: dict[str, object], cursor: str | None = None
    ) -> Iterator[tuple[object, str | None]]:
        """Every page of a cursor list from `cursor` on: (items, next cursor)."""
        guard = CursorGuard(self.name)
        while True:
            if cursor:
                guard.check(cursor)
            body = self._client.get_json(path, {**params, "limit": self._page_size, "cursor": cursor})
            items, cursor = list_page(self.name, body)
            yield items, cursor
            if cursor is None:
                return

    def detail(self, agent_id: str, exec_id: str) -> dict[str, object] | None:
        """An execution's detail object; None when the platform answers 404."""
        try:
            body = self._client.get_json(execution_path(agent_id, exec_id))
        except NotFound:
            return None
        return detail_object(self.name, body)

    def read_tool_calls(self, agent_id: str, exec_id: str, batch: Batch) -> tuple[ToolCall, ...]:
        calls: dict[str, ToolCall] = {}
        try:
            for items, _ in self.pages(tool_calls_path(agent_id, exec_id), {}):
                for call in parse_each(self.name, items, lambda i: parse_tool_call(self.name, i), batch, "tool_call"):
                    calls.setdefault(call.id, call)  # a repeated page changes nothing
        except NotFound:
            log.info("tool calls of execution not found (HTTP 404)", extra={"source": self.name, "record_id": exec_id})
        return tuple(sorted(calls.values(), key=lambda c: (c.started_at, c.id)))

    def fetch(self, exec_id: str, via_agent: str) -> Execution | None:
        """An execution not read yet, by the cross-agent `executionId` filter."""
        try:
            body = self._client.get_json(executions_path(via_agent), {"executionId": exec_id, "limit": 1})
        except NotFound:
            return None
        return found_execution(self.name, body, exec_id)


class _Poll:
    """The working state of one poll: the checkpoint being advanced."""

    def __init__(self, source: RuntypeSource, ctx: PollContext) -> None:
        self.s = source
        self.ctx = ctx
        self.stamp = ctx.now.isoformat()
        self.agents = Agents(ctx.checkpoint, ctx.now - source.start_from)
        self.lineage = Lineage(source.name, ctx.checkpoint.get("subs"), ctx.state, source.fetch)

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
        return batch

    def run(self) -> Iterator[Batch]:
        yield from self._refresh_agents()
        for agent_id in self.agents.active():
            yield from self._read_agent(agent_id)
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
                listed[agent_id] = name
        self.agents.listed(listed, self.ctx.now)
        yield self._checkpoint_batch(batch)

    # -- executions --------------------------------------------------------

    def _read_agent(self, agent_id: str) -> Iterator[Batch]:
        try:
            yield from self._read_windows(agent_id)
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

    def _read_windows(self, agent_id: str) -> Iterator[Batch]:
        entry = self.agents[agent_id]
        path = executions_path(agent_id)
        while (window := entry.progress.next_window(self.ctx.now, self.s.lookback)) is not None:
            since, until = window.query()
            resume = window.resume.get("cursor")
            start = resume if isinstance(resume, str) else None
            for items, cursor in self.s.pages(path, {"from": since, "to": until}, start):
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
        for x in parsed:
            self._handle(batch, x, from_detail=False)
            if len(batch.runs) >= EMIT_CHUNK:
                yield batch
                batch = Batch()
        yield self._checkpoint_batch(batch)

    def _handle(self, batch: Batch, x: Execution, *, from_detail: bool, current: OpenRun | None = None) -> None:
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
        if not from_detail and x.status in DETAIL_FOR_ERROR and x.error is None:
            detail = self.s.detail(x.agent_id, x.id)
            if detail is not None:
                try:
                    fuller = parse_execution(self.s.name, detail, x.agent_id)
                except BadRecordError:
                    fuller = None
                if fuller is not None and not fuller.is_open and fuller.id == x.id:
                    x = fuller
        tool_calls = self.s.read_tool_calls(x.agent_id, x.id, batch) if self.s.tool_calls else ()
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
        for open_run in self.ctx.state.open_runs():
            if open_run.data.get("checked") == self.stamp:
                continue
            pending += 1
            old = Held.of(open_run).x
            if self.ctx.state.is_seen(run_key(open_run.run_id)):
                batch.open_deletes.add(open_run.run_id)  # exported already: nothing to re-read
            elif (detail := self.s.detail(old.agent_id, old.id)) is None:  # gone at the platform: give it up now
                log.info(
                    "open execution not found (HTTP 404): exported as incomplete",
                    extra={"source": self.s.name, "record_id": old.id},
                )
                export_run(batch, self.s.expire(open_run, self.ctx.now), old.created_at)
                batch.open_deletes.add(open_run.run_id)
            else:
                try:
                    x = parse_execution(self.s.name, detail, old.agent_id)
                except BadRecordError as err:
                    batch.rejected.append(rejected(err))
                    x = None
                if x is not None and x.id == old.id:
                    count(batch, "execution")
                    self._handle(batch, x, from_detail=True, current=open_run)
            if pending >= EMIT_CHUNK:
                yield self._checkpoint_batch(batch)
                batch, pending = Batch(), 0
        if pending:
            yield self._checkpoint_batch(batch)

    def _finish(self) -> Batch:
        batch = Batch()
        watermarks = [self.agents[a].progress.watermark for a in self.agents.active()]
        if watermarks:
            horizon = min(watermarks) - self.s.lookback
            batch.seen_prune_before = (horizon - SEEN_MARGIN).timestamp()
            self.lineage.prune(horizon)
        batch.caught_up_to = self.ctx.now
        return self._checkpoint_batch(batch)
