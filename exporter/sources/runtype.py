"""runtype: agent executions, with sub-agents and tool calls.

Endpoints (docs/platforms.md, runtype): `GET /v1/agents` (when `agents: all`),
`GET /v1/agents/{id}/executions` (newest first by createdAt; `from`/`to`
bound createdAt, inclusive; cursor-paginated), the execution detail
`GET /v1/agents/{id}/executions/{executionId}` and its tool calls
`GET /v1/agents/{id}/executions/{executionId}/tool-calls`.

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

Sub-agents: `parentExecutionId` names the parent's id. A sub-agent run gets
parent_run_id = that id and root_run_id = the top-level execution's id, found
by walking up the chain through (in order) what this poll has read, the
checkpoint's `subs` map (recent sub-agent executions -> root), `top:<id>`
seen keys (executions known to be top-level), open runs' data, and finally
`GET /v1/agents/{agent}/executions?executionId=<id>` (the documented
cross-agent drill-down). Trace and span ids are deterministic, so a child
exported before or after its parent lands in the same trace.

Checkpoint:
    {"agents": {"<agent id>": {"watermark": iso, "name": str?,
                               "window": {"from": iso, "to": iso, "cursor": str|null}?,
                               "missing_since": iso?}},  # no longer listed: not read
     "listed_at": iso?,                      # agents: all -- last GET /v1/agents
     "subs": {"<execution id>": ["<root id>", created_epoch]}}
"window" is present only while a window is part-read.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar, cast
from urllib.parse import quote

import httpx

from exporter.config import SourceConfig
from exporter.model import (
    AttrValue,
    Batch,
    OpenRun,
    Rejected,
    Run,
    RunStatus,
    ToolCall,
    ToolStatus,
    format_time,
    parse_time,
)
from exporter.sources.base import CursorGuard, Fields, PlatformSource, PollContext, envelope, parse_each
from exporter.sources.http import BadRecordError, BadResponseError

log = logging.getLogger(__name__)

T = TypeVar("T")

PLATFORM = "runtype"
AGENTS_PATH = "/v1/agents"

# -- Where the vendor's pages are silent: the readings this source follows --
RUN_STATUSES = {
    "completed": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "timed_out": RunStatus.TIMED_OUT,
}
OPEN_STATUSES = frozenset({"pending", "running"})
TOOL_STATUSES = {"running": ToolStatus.RUNNING, "completed": ToolStatus.SUCCEEDED, "failed": ToolStatus.FAILED}
# Assumption: a status no mapping knows counts as terminal (UNKNOWN) once the
# execution has a completedAt; without one it is re-read like a running one.
# Assumption: a newly terminal failed/timed_out execution whose list item has
# no `error` gets one detail request for it; other newly terminal executions
# are built from their list item (no detail request).
DETAIL_FOR_ERROR = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})
# Assumption: the detail's error text is `error` (string or {message}) or
# `errorMessage`; without either, a failed run's message is its stopReason.
# Choice: a totalCost/totalTokens/iterations that does not parse keeps the
# run without that field and counts one Rejected (bad_value / bad_type).

AGENT_REFRESH = timedelta(minutes=10)  # agents: all -- re-list at most this often
MISSING_KEEP = timedelta(days=1)  # agents: all -- an unlisted agent's watermark is kept this long
MAX_CHAIN = 16  # sub-agent levels followed up to the top-level run
SUBS_KEEP = timedelta(hours=1)  # sub-agent roots remembered in the checkpoint ...
SUBS_MAX = 2000  # ... at most this many (the newest): a miss costs one request
SEEN_MARGIN = timedelta(minutes=10)  # dedup keys kept beyond the re-read window
EMIT_CHUNK = 20  # finished runs (or open executions re-read) per committed batch
POLL_CACHE_MAX = 20_000  # execution -> parent ids remembered within one poll


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution as read (list item, detail or open-run state)."""

    id: str
    agent_id: str
    parent_id: str | None
    raw_status: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    surface: str | None = None
    stop_reason: str | None = None
    agent_source: str | None = None
    error: str | None = None
    iterations: int | None = None
    total_tokens: int | None = None
    cost: Decimal | None = None
    input: str | None = None  # content
    output: str | None = None
    # Optional fields that did not parse: (field, reason); the run is kept without them.
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> RunStatus:
        return RUN_STATUSES.get(self.raw_status.lower(), RunStatus.UNKNOWN)

    @property
    def is_open(self) -> bool:
        raw = self.raw_status.lower()
        if raw in OPEN_STATUSES:
            return True
        return raw not in RUN_STATUSES and self.completed_at is None

    def to_data(self) -> dict[str, object]:
        """JSON form for open-run state (content left out)."""
        return {
            "id": self.id,
            "agentId": self.agent_id,
            "parentExecutionId": self.parent_id,
            "status": self.raw_status,
            "createdAt": self.created_at.isoformat(),
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "completedAt": self.completed_at.isoformat() if self.completed_at else None,
            "surfaceType": self.surface,
            "stopReason": self.stop_reason,
            "agentSource": self.agent_source,
            "iterations": self.iterations,
            "totalTokens": self.total_tokens,
            "totalCost": str(self.cost) if self.cost is not None else None,
        }


def parse_execution(source: str, item: object, default_agent: str | None = None) -> Execution:
    """One execution object -> Execution; raises BadRecordError for what the
    run cannot do without (id, status, times). Bad optional numbers are kept
    out of the run and listed in `problems`."""
    f = Fields(source, item)
    exec_id = f.str("id")
    agent = f.opt_str("agentId") or default_agent
    if agent is None:
        raise BadRecordError(source, "missing_field", exec_id, "agentId")
    problems: list[tuple[str, str]] = []

    def lenient(key: str, read: Callable[[str], T]) -> T | None:
        try:
            return read(key)
        except BadRecordError as err:
            problems.append((key, err.reason))
            return None

    return Execution(
        id=exec_id,
        agent_id=agent,
        parent_id=f.opt_str("parentExecutionId"),
        raw_status=f.str("status"),
        created_at=f.time("createdAt"),
        started_at=f.opt_time("startedAt"),
        completed_at=f.opt_time("completedAt"),
        surface=f.opt_str("surfaceType"),
        stop_reason=f.opt_str("stopReason"),
        agent_source=f.opt_str("agentSource"),
        error=_error_text(f.obj.get("error")) or _error_text(f.obj.get("errorMessage")),
        iterations=lenient("iterations", f.opt_int),
        total_tokens=lenient("totalTokens", f.opt_int),
        cost=lenient("totalCost", f.opt_decimal),
        input=_json_text(f.obj.get("inputMessages")),
        output=_json_text(f.obj.get("finalOutput")),
        problems=tuple(problems),
    )


def parse_tool_call(source: str, item: object) -> ToolCall:
    """One tool call -> ToolCall. The end is derived: createdAt + executionTimeMs."""
    f = Fields(source, item)
    call_id = f.str("id")
    start = f.time("createdAt")
    ms = f.obj.get("executionTimeMs")
    end: datetime | None = None
    attrs: list[tuple[str, AttrValue]] = []
    if ms is not None:
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0 or ms != ms:
            raise BadRecordError(source, "bad_value", call_id, "executionTimeMs")
        end = start + timedelta(milliseconds=float(ms))
        attrs.append(("agent_activity.time_derived", True))
    raw_status = f.opt_str("status")
    for key, name in (("toolId", "agent_activity.tool.id"), ("model", "gen_ai.request.model")):
        value = f.opt_str(key)
        if value is not None:
            attrs.append((name, value))
    return ToolCall(
        id=call_id,
        name=f.opt_str("toolName") or "unknown",
        started_at=start,
        ended_at=end,
        status=TOOL_STATUSES.get((raw_status or "").lower(), ToolStatus.UNKNOWN),
        raw_status=raw_status,
        error_message=f.opt_str("errorMessage"),
        input=_json_text(f.obj.get("inputParameters")),
        output=_json_text(f.obj.get("outputResult")),
        attributes=tuple(attrs),
    )


def parse_agent(source: str, item: object) -> tuple[str, str | None]:
    f = Fields(source, item)
    return f.str("id"), f.opt_str("name")


def _exec_from_data(data: dict[str, object]) -> Execution:
    """An open run's execution, as kept by Execution.to_data()."""
    return parse_execution("state", data)


class RuntypeSource(PlatformSource):
    PLATFORM = PLATFORM

    def __init__(
        self,
        config: SourceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        opts = config.options
        agents = opts.get("agents", "all")
        self._agents: tuple[str, ...] | None = None if agents == "all" else tuple(cast(list[str], agents))
        self._tool_calls = bool(opts.get("tool_calls", True))
        self._page_size = int(cast(int, opts.get("page_size", 100)))
        self._lookback = timedelta(seconds=float(cast(float, opts.get("lookback", 30.0))))
        self._start_from = timedelta(seconds=config.start_from)
        auth = {"Authorization": f"Bearer {config.secret or ''}"}
        super().__init__(config, auth, transport=transport, stop=stop)

    def probe(self) -> str:
        if self._agents is None:
            body = self._client.get_json(AGENTS_PATH, {"limit": 1})
            items = envelope(self.name, body, "data")
            return f"ok: GET {AGENTS_PATH} returned {len(items) if isinstance(items, list) else 0} agent(s)"
        if not self._agents:
            return "ok: no agents configured"
        path = _executions_path(self._agents[0])
        body = self._client.get_json(path, {"limit": 1})
        items = envelope(self.name, body, "data")
        return f"ok: GET {path} returned {len(items) if isinstance(items, list) else 0} execution(s)"

    # -- polling -----------------------------------------------------------

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        poll = _Poll(self, ctx)
        yield from poll.run()

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        data = open_run.data
        x = _exec_from_data(cast(dict[str, object], data["x"]))
        return self._build_run(
            x,
            root=cast(str | None, data.get("root")),
            name=cast(str | None, data.get("name")),
            tool_calls=(),
            unresolved=bool(data.get("unresolved")),
            forced=RunStatus.INCOMPLETE,
        )

    # -- requests ----------------------------------------------------------

    def _pages(
        self, path: str, params: dict[str, object], cursor: str | None = None
    ) -> Iterator[tuple[object, str | None]]:
        """Every page of a cursor list from `cursor` on: (items, next cursor)."""
        guard = CursorGuard(self.name)
        while True:
            if cursor:
                guard.check(cursor)
            body = self._client.get_json(path, {**params, "limit": self._page_size, "cursor": cursor})
            items = envelope(self.name, body, "data")
            cursor = _next_cursor(envelope(self.name, body, "pagination"))
            yield items, cursor
            if cursor is None:
                return

    def _detail(self, agent_id: str, exec_id: str) -> object | None:
        """An execution's detail object; None when the platform answers 404."""
        try:
            body = self._client.get_json(_execution_path(agent_id, exec_id))
        except BadResponseError as err:
            if _is_404(err):
                return None
            raise
        data = envelope(self.name, body, "data")
        if not isinstance(data, dict):
            raise BadResponseError(self.name, "execution detail 'data' is not an object")
        return data

    def _read_tool_calls(self, agent_id: str, exec_id: str, batch: Batch) -> tuple[ToolCall, ...]:
        calls: dict[str, ToolCall] = {}
        path = _execution_path(agent_id, exec_id) + "/tool-calls"
        try:
            for items, _ in self._pages(path, {}):
                for call in parse_each(self.name, items, lambda i: parse_tool_call(self.name, i), batch, "tool_call"):
                    calls.setdefault(call.id, call)  # a repeated page changes nothing
        except BadResponseError as err:
            if not _is_404(err):
                raise
            log.info("tool calls of execution not found (HTTP 404)", extra={"source": self.name, "record_id": exec_id})
        return tuple(sorted(calls.values(), key=lambda c: (c.started_at, c.id)))

    # -- records -----------------------------------------------------------

    def _build_run(
        self,
        x: Execution,
        *,
        root: str | None,
        name: str | None,
        tool_calls: tuple[ToolCall, ...],
        unresolved: bool = False,
        forced: RunStatus | None = None,
    ) -> Run:
        status = forced or x.status
        started = x.started_at or x.created_at
        ended: datetime | None = None
        attrs: list[tuple[str, AttrValue]] = []
        if forced is None:
            ended = x.completed_at
            if ended is None:  # terminal without completedAt: the last time we know
                ended = max([started, *(c.ended_at or c.started_at for c in tool_calls)])
                attrs.append(("agent_activity.end_time_derived", True))
        error_message = x.error
        if status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            error_message = x.error or x.stop_reason
        if x.agent_source:
            attrs.append(("agent_activity.agent_source", x.agent_source))
        if unresolved:
            attrs.append(("agent_activity.root_unresolved", True))
        return Run(
            source=self.name,
            platform=PLATFORM,
            base_url=self.base_url,
            run_id=x.id,
            agent_id=x.agent_id,
            agent_name=name or x.agent_id,
            status=status,
            raw_status=x.raw_status,
            started_at=started,
            ended_at=ended,
            root_run_id=root if x.parent_id else None,
            parent_run_id=x.parent_id,
            trigger_type=x.surface,
            error_type=status.value if status in (RunStatus.FAILED, RunStatus.TIMED_OUT) else None,
            error_message=error_message,
            finish_reasons=(x.stop_reason,) if x.stop_reason else (),
            total_tokens=x.total_tokens,
            cost_usd=x.cost,
            iterations=x.iterations,
            input=x.input,
            output=x.output,
            tool_calls=tool_calls,
            attributes=tuple(attrs),
        )


class _Poll:
    """The working state of one poll: the checkpoint being advanced and a
    bounded cache of execution -> parent ids read in this poll."""

    def __init__(self, source: RuntypeSource, ctx: PollContext) -> None:
        self.s = source
        self.ctx = ctx
        self.stamp = ctx.now.isoformat()
        cp = json.loads(json.dumps(dict(ctx.checkpoint)))  # a private deep copy
        self.agents: dict[str, dict[str, object]] = cast(dict[str, dict[str, object]], cp.get("agents") or {})
        self.listed_at = cast(str | None, cp.get("listed_at"))
        self.subs: dict[str, list[object]] = cast(dict[str, list[object]], cp.get("subs") or {})
        self.parents: dict[str, str | None] = {}  # this poll: execution id -> parent id (None: top-level)

    def checkpoint(self) -> dict[str, object]:
        cp: dict[str, object] = {"agents": json.loads(json.dumps(self.agents)), "subs": dict(self.subs)}
        if self.listed_at is not None:
            cp["listed_at"] = self.listed_at
        return cp

    def run(self) -> Iterator[Batch]:
        yield from self._refresh_agents()
        for agent_id in self._active():
            yield from self._read_agent(agent_id)
        yield from self._recheck_open()
        yield self._finish()

    # -- agents ------------------------------------------------------------

    def _refresh_agents(self) -> Iterator[Batch]:
        """The agents to read: the configured ids, or GET /v1/agents at most
        every AGENT_REFRESH. An agent that drops out of the list keeps its
        watermark for MISSING_KEEP (a passing glitch of the list must not
        make it re-read, and re-export, `start_from` of history)."""
        now = self.ctx.now
        if self.s._agents is not None:
            if set(self.s._agents) == set(self.agents) and self.listed_at is None:
                return
            start = (now - self.s._start_from).isoformat()
            self.agents = {a: self.agents.get(a) or {"watermark": start} for a in self.s._agents}
            for entry in self.agents.values():
                entry.pop("missing_since", None)  # configured: always read
            self.listed_at = None
            batch = Batch()
            batch.checkpoint = self.checkpoint()
            yield batch
            return
        if self.listed_at is not None and now - parse_time(self.listed_at) < AGENT_REFRESH:
            return
        batch = Batch()
        listed: dict[str, str | None] = {}
        for items, _ in self.s._pages(AGENTS_PATH, {}):
            for agent_id, name in parse_each(self.s.name, items, lambda i: parse_agent(self.s.name, i), batch, "agent"):
                listed[agent_id] = name
        # A new agent has nothing older than the previous listing (it did not
        # exist then); on the first listing, read `start_from` back.
        start = self.listed_at or (now - self.s._start_from).isoformat()
        agents: dict[str, dict[str, object]] = {}
        for agent_id, entry in self.agents.items():
            if agent_id not in listed:
                since = cast(str, entry.setdefault("missing_since", now.isoformat()))
                if now - parse_time(since) < MISSING_KEEP:
                    agents[agent_id] = entry
        for agent_id, name in listed.items():
            entry = self.agents.get(agent_id) or {"watermark": start}
            entry.pop("missing_since", None)
            if name:
                entry["name"] = name
            agents[agent_id] = entry
        self.agents = agents
        self.listed_at = now.isoformat()
        batch.checkpoint = self.checkpoint()
        yield batch

    def _active(self) -> list[str]:
        return sorted(a for a, e in self.agents.items() if "missing_since" not in e)

    def _name(self, agent_id: str) -> str | None:
        entry = self.agents.get(agent_id)
        return cast(str | None, entry.get("name")) if entry else None

    # -- executions --------------------------------------------------------

    def _read_agent(self, agent_id: str) -> Iterator[Batch]:
        try:
            yield from self._read_windows(agent_id)
        except BadResponseError as err:
            if self.s._agents is not None or not _is_404(err):
                raise  # a configured agent that does not exist is a configuration error
            # Deleted since the agent list was read: set it aside like an
            # agent that left the list (the next listing decides).
            log.info(
                "agent not found (HTTP 404): not read until it is listed again",
                extra={"source": self.s.name, "record_id": agent_id},
            )
            self.agents[agent_id]["missing_since"] = self.ctx.now.isoformat()
            self.listed_at = (self.ctx.now - AGENT_REFRESH).isoformat()  # re-list on the next poll
            batch = Batch()
            batch.checkpoint = self.checkpoint()
            yield batch

    def _read_windows(self, agent_id: str) -> Iterator[Batch]:
        entry = self.agents[agent_id]
        now = self.ctx.now
        while True:
            window = cast(dict[str, object] | None, entry.get("window"))
            if window is None:
                watermark = parse_time(entry["watermark"])
                if watermark >= now:
                    return
                window = {"from": (watermark - self.s._lookback).isoformat(), "to": now.isoformat(), "cursor": None}
            params: dict[str, object] = {
                "from": format_time(parse_time(window["from"])),
                "to": format_time(parse_time(window["to"])),
            }
            path = _executions_path(agent_id)
            for items, cursor in self.s._pages(path, params, cast(str | None, window.get("cursor"))):
                if cursor is None:
                    entry.pop("window", None)
                    entry["watermark"] = window["to"]
                else:
                    entry["window"] = {**window, "cursor": cursor}
                # The page's last batch carries the moved cursor/watermark.
                yield from self._ingest(agent_id, items)
            if parse_time(window["to"]) >= now:
                return

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
            self._remember(x)
        for x in parsed:
            self._handle(batch, x, from_detail=False)
            if len(batch.runs) >= EMIT_CHUNK:
                yield batch
                batch = Batch()
        batch.checkpoint = self.checkpoint()
        yield batch

    def _remember(self, x: Execution) -> None:
        if len(self.parents) >= POLL_CACHE_MAX:
            self.parents.clear()
        self.parents[x.id] = x.parent_id

    def _handle(self, batch: Batch, x: Execution, *, from_detail: bool, current: OpenRun | None = None) -> None:
        key = f"run:{x.id}"
        if key in batch.seen_add or self.ctx.state.is_seen(key):
            return  # exported already: a re-read changes nothing
        if current is None:
            current = batch.open_upserts.get(x.id) or self.ctx.state.open_run(x.id)
        created = x.created_at.timestamp()
        if current is not None and "root" in current.data and not current.data.get("unresolved"):
            root, unresolved = cast(str | None, current.data["root"]), False
        else:
            root, unresolved = self._root_of(batch, x)
        if x.parent_id is None:
            batch.seen_add[f"top:{x.id}"] = created
        elif not unresolved and root is not None:
            self._add_sub(x.id, root, created)
        name = self._name(x.agent_id) or (cast(str | None, current.data.get("name")) if current else None)
        if x.is_open:
            data: dict[str, object] = {"x": x.to_data(), "root": root, "name": name, "checked": self.stamp}
            if unresolved:
                data["unresolved"] = True
            batch.open_upserts[x.id] = OpenRun(
                run_id=x.id,
                agent=x.agent_id,
                opened_at=current.opened_at if current else self.ctx.now.timestamp(),
                data=data,
            )
            return
        if not from_detail and x.status in DETAIL_FOR_ERROR and x.error is None:
            detail = self.s._detail(x.agent_id, x.id)
            if detail is not None:
                try:
                    fuller = parse_execution(self.s.name, detail, x.agent_id)
                except BadRecordError:
                    fuller = None
                if fuller is not None and not fuller.is_open:
                    x = fuller
        tool_calls = self.s._read_tool_calls(x.agent_id, x.id, batch) if self.s._tool_calls else ()
        run = self.s._build_run(x, root=root, name=name, tool_calls=tool_calls, unresolved=unresolved)
        for field_name, reason in x.problems:
            batch.rejected.append(
                Rejected(reason=reason, record_id=x.id, detail=f"{field_name} does not parse: run kept without it")
            )
        batch.runs.append(run)
        batch.seen_add[key] = created
        batch.open_upserts.pop(x.id, None)
        batch.open_deletes.add(x.id)

    # -- sub-agents --------------------------------------------------------

    def _add_sub(self, exec_id: str, root: str, created: float) -> None:
        self.subs[exec_id] = [root, created]
        if len(self.subs) > SUBS_MAX + SUBS_MAX // 4:  # trimmed now and then, not on every add
            self._trim_subs(None)

    def _trim_subs(self, keep_after: float | None) -> None:
        """Keep the newest SUBS_MAX entries created after `keep_after`."""
        subs = [(k, v) for k, v in self.subs.items() if keep_after is None or cast(float, v[1]) >= keep_after]
        subs.sort(key=lambda kv: cast(float, kv[1][1]), reverse=True)
        self.subs = dict(subs[:SUBS_MAX])

    def _root_of(self, batch: Batch, x: Execution) -> tuple[str | None, bool]:
        """(root id, unresolved) of an execution; (None, False) when top-level.
        Unresolved: the chain could not be followed to its top; the highest
        known ancestor stands in for the root."""
        if x.parent_id is None:
            return None, False
        cur, via_agent = x.parent_id, x.agent_id
        visited = {x.id}
        for _ in range(MAX_CHAIN):
            if cur in visited:
                break  # a cycle: the platform's data is inconsistent
            visited.add(cur)
            known, parent, agent = self._lookup(batch, cur, via_agent)
            if known is not None:
                for ancestor in visited - {x.id, known}:  # sub-agent ancestors share the root
                    self._add_sub(ancestor, known, x.created_at.timestamp())
                return known, False
            if parent is None:  # not found anywhere
                break
            cur, via_agent = parent, agent or via_agent
        log.info(
            "could not follow a sub-agent chain to its top-level run", extra={"source": self.s.name, "record_id": x.id}
        )
        return cur, True

    def _lookup(self, batch: Batch, exec_id: str, via_agent: str) -> tuple[str | None, str | None, str | None]:
        """(root if known, else parent id if known, agent id) for an ancestor."""
        if exec_id in self.parents:
            parent = self.parents[exec_id]
            if parent is None:
                return exec_id, None, None
            sub = self.subs.get(exec_id)
            return (cast(str, sub[0]), None, None) if sub else (None, parent, None)
        sub = self.subs.get(exec_id)
        if sub:
            return cast(str, sub[0]), None, None
        if f"top:{exec_id}" in batch.seen_add or self.ctx.state.is_seen(f"top:{exec_id}"):
            return exec_id, None, None
        open_run = batch.open_upserts.get(exec_id) or self.ctx.state.open_run(exec_id)
        if open_run is not None:
            x = cast(dict[str, object], open_run.data["x"])
            if x.get("parentExecutionId") is None:
                return exec_id, None, None
            if open_run.data.get("root") and not open_run.data.get("unresolved"):
                return cast(str, open_run.data["root"]), None, None
            return None, cast(str, x["parentExecutionId"]), cast(str, x.get("agentId"))
        fetched = self._fetch(exec_id, via_agent)
        if fetched is None:
            return None, None, None
        self._remember(fetched)
        if fetched.parent_id is None:
            batch.seen_add[f"top:{fetched.id}"] = fetched.created_at.timestamp()
            return exec_id, None, None
        return None, fetched.parent_id, fetched.agent_id

    def _fetch(self, exec_id: str, via_agent: str) -> Execution | None:
        """An execution not read yet, by the cross-agent `executionId` filter."""
        try:
            body = self.s._client.get_json(_executions_path(via_agent), {"executionId": exec_id, "limit": 1})
        except BadResponseError as err:
            if _is_404(err):
                return None
            raise
        items = envelope(self.s.name, body, "data")
        if not isinstance(items, list):
            raise BadResponseError(self.s.name, "page items are not a list")
        for item in items:
            if isinstance(item, dict) and item.get("id") == exec_id:
                try:
                    return parse_execution(self.s.name, item, None)
                except BadRecordError:
                    return None
        return None

    # -- open executions -----------------------------------------------------

    def _recheck_open(self) -> Iterator[Batch]:
        """Re-read by id every open execution this poll's listings did not show."""
        batch = Batch()
        pending = 0
        for open_run in self.ctx.state.open_runs():
            if open_run.data.get("checked") == self.stamp:
                continue
            pending += 1
            old = _exec_from_data(cast(dict[str, object], open_run.data["x"]))
            if self.ctx.state.is_seen(f"run:{open_run.run_id}"):
                batch.open_deletes.add(open_run.run_id)  # exported already: nothing to re-read
            elif (detail := self.s._detail(old.agent_id, old.id)) is None:  # gone at the platform: give it up now
                log.info(
                    "open execution not found (HTTP 404): exported as incomplete",
                    extra={"source": self.s.name, "record_id": old.id},
                )
                batch.runs.append(self.s.expire(open_run, self.ctx.now))
                batch.open_deletes.add(open_run.run_id)
                batch.seen_add[f"run:{open_run.run_id}"] = old.created_at.timestamp()
            else:
                try:
                    x = parse_execution(self.s.name, detail, old.agent_id)
                except BadRecordError as err:
                    batch.rejected.append(Rejected(reason=err.reason, record_id=err.record_id, detail=err.message))
                    x = None
                if x is not None and x.id == old.id:
                    batch.records["execution"] = batch.records.get("execution", 0) + 1
                    self._handle(batch, x, from_detail=True, current=open_run)
            if pending >= EMIT_CHUNK:
                batch.checkpoint = self.checkpoint()
                yield batch
                batch, pending = Batch(), 0
        if pending:
            batch.checkpoint = self.checkpoint()
            yield batch

    def _finish(self) -> Batch:
        batch = Batch()
        now = self.ctx.now
        watermarks = [parse_time(self.agents[a]["watermark"]) for a in self._active()]
        if watermarks:
            horizon = min(watermarks) - self.s._lookback
            batch.seen_prune_before = (horizon - SEEN_MARGIN).timestamp()
            self._trim_subs((horizon - SUBS_KEEP).timestamp())
        batch.checkpoint = self.checkpoint()
        batch.caught_up_to = now
        return batch


def _executions_path(agent_id: str) -> str:
    return f"/v1/agents/{quote(agent_id, safe='')}/executions"


def _execution_path(agent_id: str, exec_id: str) -> str:
    return f"{_executions_path(agent_id)}/{quote(exec_id, safe='')}"


def _next_cursor(pagination: object) -> str | None:
    """The cursor to follow, or None at the end of the list."""
    if not isinstance(pagination, dict):
        return None
    cursor = pagination.get("nextCursor")
    if not isinstance(cursor, str) or not cursor:
        return None
    if "hasMore" in pagination and not pagination["hasMore"]:
        return None
    return cursor


def _is_404(err: BadResponseError) -> bool:
    return "HTTP 404" in err.message


def _json_text(value: object) -> str | None:
    """Content as text: strings as they are, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _error_text(value: object) -> str | None:
    """The detail's `error` / `errorMessage`: a string, or an object with a
    message (the shape is undocumented)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("message", "error", "code"):
            if isinstance(value.get(key), str) and value[key]:
                return cast(str, value[key])
    return _json_text(value)
