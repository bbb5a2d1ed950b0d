"""runtype: agent executions, with sub-agents and tool calls. This module:
the source and its requests (listing pages, details, tool calls, parent
look-ups). One poll: poll.py; what a listing page reads ahead: plan.py; the
wire format: api.py; which agents, and how far each is read: agents.py;
Runs and open-run data: runs.py; sub-agent roots: lineage.py.

Reading strategy, per agent: the listing is read in windows
[from, to] = [watermark - lookback, now] that do not move under the reader
(both bounds are sent, so newest-first pages cannot shift), following every
cursor. Each page is committed with the window's next cursor (a page's
finished runs, which each may cost a tool-call request, in parts of
EMIT_CHUNK first: poll.py), so a restart resumes where it stopped; the
watermark moves to `to` only once the window is read to its end. Executions
are de-duplicated by id (`run:<id>` seen keys, kept for createdAt inside the
re-read window plus SEEN_MARGIN).

An execution still pending/running is kept as an open run. The watermark is
*not* held back for it: `from` filters on createdAt, so a long run would drag
every later window (and every idle poll) back to its creation. Instead each
open execution is re-read by id (the detail endpoint) on later polls, unless
this poll's listing already showed it, until it is terminal; a 404 there
gives the run up as incomplete.

Concurrency (exporter/sources/ahead.py): requests that do not depend on each
other run on the source's worker threads, `concurrency` at once, and are
handed back in order: the first listing page of every agent's next window,
the detail and tool-call reads of a page's newly finished executions, the
look-ups of the sub-agent parents a page names that nothing known yet
resolves (plan.py), and the re-reads of open executions. Only fetching and
pure parsing run there (the requests below); every decision (what is seen,
what is open, sub-agent roots, batches and checkpoints) stays on the poll
thread (poll.py), so a poll yields exactly the batches of a sequential read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.config import SourceConfig
from exporter.config.shards import in_shard
from exporter.model import Batch, OpenRun, Run, ToolCall
from exporter.sources.ahead import Fetched, attempt
from exporter.sources.base import CursorGuard, PlatformSource, PollContext, envelope, parse_each
from exporter.sources.http import BadRecordError, NotFound
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
    parse_execution,
    parse_tool_call,
    tool_calls_path,
)
from exporter.sources.runtype.options import RuntypeOptions
from exporter.sources.runtype.poll import Poll
from exporter.sources.runtype.runs import Held, expired_run

log = logging.getLogger(__name__)

Page = tuple[object, str | None]  # a list page's items (unchecked) and the cursor to follow

# Assumption: a newly terminal failed/timed_out execution whose list item has
# no `error` gets one detail request for it; other newly terminal executions
# are built from their list item (no detail request).
DETAIL_FOR_ERROR = ERROR_STATUSES


def needs_detail(x: Execution, from_detail: bool) -> bool:
    return not from_detail and x.status in DETAIL_FOR_ERROR and x.error is None


@dataclass(frozen=True, slots=True)
class ToolCallPages:
    """An execution's tool-call pages as read (unparsed), up to the first
    page that is not a list, and the error that ended the read, if any (a
    NotFound: the tool calls are gone)."""

    pages: tuple[object, ...]
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    """The requests a newly finished execution costs before it is built."""

    x: Execution  # as built: the fuller detail when one was read
    detail_error: Exception | None = None  # the error detail read failed: nothing after it was read
    calls: ToolCallPages | None = None  # None: tool calls not read (`tool_calls: false`)


class RuntypeSource(PlatformSource):
    PLATFORM = PLATFORM

    def configure(self, config: SourceConfig) -> None:
        opts = RuntypeOptions.of(config.options)
        self.configured_agents: tuple[str, ...] | None = None if opts.agents == "all" else tuple(opts.agents)
        self.in_shard: Callable[[str], bool] = lambda agent_id: in_shard(config, agent_id)  # listed agents it reads
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
        yield from Poll(self, ctx).run()

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        return expired_run(self.name, self.base_url, Held.of(open_run))

    # -- requests ----------------------------------------------------------

    # Every method here may run on a worker thread: HTTP and parsing only.

    def page(self, path: str, params: dict[str, object], cursor: str | None) -> Page:
        """One page of a cursor list: (items, next cursor)."""
        body = self._client.get_json(path, {**params, "limit": self._page_size, "cursor": cursor})
        return list_page(self.name, body)

    def pages(
        self, path: str, params: dict[str, object], cursor: str | None = None, first: Fetched[Page] | None = None
    ) -> Iterator[Page]:
        """Every page of a cursor list from `cursor` on: (items, next cursor).
        `first`: that first page, read ahead already. Each call has its own
        CursorGuard (never shared between threads)."""
        guard = CursorGuard(self.name)
        while True:
            if cursor:
                guard.check(cursor)
            if first is not None:
                items, cursor = first.get()
                first = None
            else:
                items, cursor = self.page(path, params, cursor)
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

    def tool_call_pages(self, agent_id: str, exec_id: str) -> ToolCallPages:
        """Every page of an execution's tool calls, unparsed (parse_tool_calls
        reads them on the poll thread)."""
        got: list[object] = []
        try:
            for items, _ in self.pages(tool_calls_path(agent_id, exec_id), {}):
                got.append(items)
                if not isinstance(items, list):
                    break  # parse_each fails on it, before the next page would be asked for
        except Exception as err:  # raised by parse_tool_calls in its place
            return ToolCallPages(tuple(got), err)
        return ToolCallPages(tuple(got))

    def costs_requests(self, x: Execution) -> bool:
        """Building `x` from its list item makes requests (`fetch_finished`)."""
        return self.tool_calls or needs_detail(x, False)

    def fetch_finished(self, x: Execution, *, from_detail: bool) -> Finished:
        """The detail (a failed execution without error text) and the tool
        calls of a newly finished execution."""
        if needs_detail(x, from_detail):
            detail = attempt(lambda: self.detail(x.agent_id, x.id))
            if detail.error is not None:
                return Finished(x, detail_error=detail.error)
            x = self._fuller(x, detail.value)
        return Finished(x, calls=self.tool_call_pages(x.agent_id, x.id) if self.tool_calls else None)

    def _fuller(self, x: Execution, detail: dict[str, object] | None) -> Execution:
        """The execution as its detail has it, when that parses and agrees."""
        if detail is None:
            return x
        try:
            fuller = parse_execution(self.name, detail, x.agent_id)
        except BadRecordError:
            return x
        return fuller if not fuller.is_open and fuller.id == x.id else x

    def parse_tool_calls(self, exec_id: str, got: ToolCallPages, batch: Batch) -> tuple[ToolCall, ...]:
        """(poll thread) The tool calls of pages read; the read's error raised
        after the pages before it are counted, as a sequential read does."""
        calls: dict[str, ToolCall] = {}
        for items in got.pages:
            for call in parse_each(self.name, items, lambda i: parse_tool_call(self.name, i), batch, "tool_call"):
                calls.setdefault(call.id, call)  # a repeated page changes nothing
        if isinstance(got.error, NotFound):
            log.info("tool calls of execution not found (HTTP 404)", extra={"source": self.name, "record_id": exec_id})
        elif got.error is not None:
            raise got.error
        return tuple(sorted(calls.values(), key=lambda c: (c.started_at, c.id)))

    def fetch(self, exec_id: str, via_agent: str) -> Execution | None:
        """An execution not read yet, by the cross-agent `executionId` filter."""
        try:
            body = self._client.get_json(executions_path(via_agent), {"executionId": exec_id, "limit": 1})
        except NotFound:
            return None
        return found_execution(self.name, body, exec_id)
