"""runtype: agents, their executions (with sub-agents) and tool calls
(docs/platforms.md, runtype; the vendor's "List agent executions" page).

    GET /v1/agents                                   -> {"data": [...], "pagination": {...}}
    GET /v1/agents/{id}
    GET /v1/agents/{id}/executions?limit&cursor&includeCount&status&surfaceType&from&to&parentExecutionId&executionId
    GET /v1/agents/{id}/executions/{executionId}     -> {"data": {...}}
    GET /v1/agents/{id}/executions/{executionId}/tool-calls[/{toolCallId}]

An agent's executions include the sub-agent executions it ran, newest first
by createdAt; `from`/`to` bound createdAt inclusively. `parentExecutionId`
lists that execution's sub-agent executions and `executionId` that one
execution, whichever agent ran them (the documented cross-agent drill-down).
`id == executionId`; `totalCost` (a decimal string) and `totalTokens` are the
execution's own and null until it ends. The cursor is the id of the first
item of the next page: it stays valid while newer executions arrive above
it. `limit` is clamped to 100.

Faults (faults.py): backwards shows a long-finished execution of a list page
or a detail as it was earlier (pending/running; completedAt, totalCost,
totalTokens, stopReason null). junk adds an execution or a tool call with
no usable id (about a made-up execution) to an executions or tool-calls
page; the agents list gets none.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Sequence
from decimal import Decimal

from exporter.simulator.hostile import JunkShape, junk_hex, make_junk, rewind_detail, rewind_list
from exporter.simulator.timefmt import ceil_ms, floor_ms, iso_ms_z, parse_iso_us
from exporter.simulator.truth import FinishedRuns, run_record, tool_records
from exporter.simulator.wire import (
    BadRequest,
    JsonObject,
    JsonValue,
    Listing,
    NotFound,
    Request,
    Response,
    listing_key,
    vendor_error,
)
from exporter.simulator.world import AgentSpec, RunSpec, Store, ToolSpec

PLATFORM = "runtype"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
STATUSES = frozenset({"pending", "running", "completed", "failed", "cancelled", "timed_out"})
_SURFACES = ("webhook", "web", "api", "slack", "schedule")
_SUBAGENT_SURFACE = "agent"
_STOP_REASONS = {"failed": "error", "cancelled": "cancelled", "timed_out": "timeout"}
_DESCRIPTIONS = {
    "web_search": "Search the web and return the top results",
    "query_db": "Run a read-only SQL query against the analytics warehouse",
    "http_request": "Call an HTTP API",
    "send_email": "Send an email on behalf of the workspace",
    "code_interpreter": "Run Python in a sandbox",
    "read_file": "Read a file from the knowledge base",
}


def raw_status(run: RunSpec, now_ms: int) -> str:
    status = run.status_at(now_ms)
    return "completed" if status == "succeeded" else status


def _cost(run: RunSpec) -> str:
    # A decimal string, as the platform sends it: "0.0123".
    return str(Decimal(run.cost_micros).scaleb(-6).normalize()) if run.cost_micros else "0"


def _surface(run: RunSpec) -> str:
    return _SUBAGENT_SURFACE if run.parent is not None else _SURFACES[run.flavor % len(_SURFACES)]


def _tool_status(tool: ToolSpec, now_ms: int) -> str:
    if now_ms < tool.end_ms:
        return "running"
    return "failed" if tool.failed else "completed"


class RuntypeApi:
    platform = PLATFORM

    def __init__(self, store: Store) -> None:
        self._store = store
        self._finished = FinishedRuns(store, self._record)

    def error(self, status: int, code: str, message: str) -> Response:
        return vendor_error(status, code, message)

    # -- rendering -------------------------------------------------------

    def _id(self, seq: int | None) -> str | None:
        return self._store.runs[seq].run_id if seq is not None else None

    def _execution(self, run: RunSpec, now_ms: int, *, detail: bool) -> JsonObject:
        ended = run.ended_by(now_ms)
        started = run.start_ms <= now_ms
        agent = self._store.agents[run.agent]
        stop_reason = None
        if ended:
            default = "max_iterations_reached" if run.flavor & 7 == 0 else "end_turn"
            stop_reason = _STOP_REASONS.get(run.outcome, default)
        out: JsonObject = {
            "id": run.run_id,
            "agentId": agent.id,
            "agentSource": "runtype-core",
            "executionId": run.run_id,
            "parentExecutionId": self._id(run.parent),
            "surfaceType": _surface(run),
            "status": raw_status(run, now_ms),
            "iterations": (sum(1 for t in run.tools if t.start_ms <= now_ms) + 1) if started else 0,
            "totalCost": _cost(run) if ended else None,
            "stopReason": stop_reason,
            "startedAt": iso_ms_z(run.start_ms) if started else None,
            "completedAt": iso_ms_z(run.end_ms) if ended else None,
            "createdAt": iso_ms_z(run.created_ms),
            "agentSpec": None,
            "totalTokens": run.input_tokens + run.output_tokens if ended else None,
            "inputMessages": None,
        }
        if detail:
            out["inputMessages"] = [
                {"role": "system", "content": f"You are {agent.name}."},
                {"role": "user", "content": "Summarise yesterday's failed payments and notify the owners."},
            ]
            out["finalOutput"] = "Done: 3 owners notified." if ended and run.outcome == "succeeded" else None
            out["errorMessage"] = (
                (f"{run.tools[-1].name} failed" if run.tools and run.tools[-1].failed else "Model returned an error")
                if ended and run.outcome == "failed"
                else None
            )
            out["model"] = agent.model
        return out

    def _tool_call(self, tool: ToolSpec, agent: AgentSpec, now_ms: int) -> JsonObject:
        status = _tool_status(tool, now_ms)
        return {
            "id": tool.call_id,
            "toolId": f"tool_{zlib.crc32(tool.name.encode()):08x}",
            "toolName": tool.name,
            "toolDescription": _DESCRIPTIONS.get(tool.name, tool.name),
            "model": agent.model,
            "status": status,
            "errorMessage": "Upstream returned HTTP 502" if status == "failed" else None,
            "executionTimeMs": tool.end_ms - tool.start_ms if status != "running" else None,
            "createdAt": iso_ms_z(tool.start_ms),
            "inputParameters": {"query": f"{tool.name} input"},
            "outputResult": {"ok": True, "items": 3} if status == "completed" else None,
        }

    # -- routing ---------------------------------------------------------

    def handle(self, request: Request, now_ms: int) -> Response:
        parts = request.path_parts()
        if parts[:2] != ["v1", "agents"]:
            raise NotFound(f"no route for {request.path}")
        if len(parts) == 2:
            return self._agents(request)
        agent = self._store.agent_index.get(parts[2])
        if agent is None:
            raise NotFound("Agent not found")
        if len(parts) == 3:
            return Response.json(200, {"data": self._agent(self._store.agents[agent])})
        if parts[3] != "executions":
            raise NotFound(f"no route for {request.path}")
        if len(parts) == 4:
            return self._executions(request, agent, now_ms)
        run = self._own_execution(agent, parts[4], now_ms)
        if len(parts) == 5:
            response = Response.json(200, {"data": self._execution(run, now_ms, detail=True)})
            response.rewind = rewind_detail(
                response, run, now_ms, lambda r, at: self._execution(r, at, detail=True), lambda item: {"data": item}
            )
            return response
        if parts[5] != "tool-calls" or len(parts) > 7:
            raise NotFound(f"no route for {request.path}")
        tools = [t for t in run.tools if t.start_ms <= now_ms]
        agent_spec = self._store.agents[agent]
        if len(parts) == 7:
            for tool in tools:
                if tool.call_id == parts[6]:
                    return Response.json(200, {"data": self._tool_call(tool, agent_spec, now_ms)})
            raise NotFound("Tool call not found")
        call_ids = [t.call_id for t in tools]
        page = _paginate(request, call_ids, _finder(call_ids), None)
        data: list[JsonValue] = [self._tool_call(tools[i], agent_spec, now_ms) for i in page.indices]
        key = listing_key(PLATFORM, request, skip=("cursor",))
        at_ms = tools[page.indices[-1]].start_ms if page.indices else run.start_ms

        def junk(rng: random.Random) -> JsonObject:
            return make_junk(_junk_tool_call(rng, agent_spec, at_ms), rng)

        listing = Listing(key, ("data",), ("pagination", "nextCursor"), junk)
        return Response.json(200, {"data": data, "pagination": page.pagination}, listing)

    def _agent(self, agent: AgentSpec) -> JsonObject:
        return {
            "id": agent.id,
            "name": agent.name,
            "description": f"{agent.name} agent",
            "status": "active",
            "model": agent.model,
            "createdAt": "2025-01-15T09:00:00.000Z",
        }

    def _agents(self, request: Request) -> Response:
        agents = self._store.agents
        agent_ids = [a.id for a in agents]
        page = _paginate(request, agent_ids, _finder(agent_ids), None)
        data: list[JsonValue] = [self._agent(agents[i]) for i in page.indices]
        key = listing_key(PLATFORM, request, skip=("cursor",))
        return Response.json(
            200, {"data": data, "pagination": page.pagination}, Listing(key, ("data",), ("pagination", "nextCursor"))
        )

    def _own_execution(self, agent: int, execution_id: str, now_ms: int) -> RunSpec:
        run = self._visible(execution_id, now_ms)
        if run is None or run.agent != agent:
            raise NotFound("Execution not found")
        return run

    def _visible(self, execution_id: str, now_ms: int) -> RunSpec | None:
        seq = self._store.by_id.get(execution_id)
        if seq is None or self._store.runs[seq].created_ms > now_ms:
            return None
        return self._store.runs[seq]

    def _executions(self, request: Request, agent: int, now_ms: int) -> Response:
        store = self._store
        statuses = {s.strip() for s in (request.arg("status") or "").split(",") if s.strip()}
        if statuses - STATUSES:
            raise BadRequest(f"status must be among {sorted(STATUSES)}")
        surface = request.arg("surfaceType")
        low = _bound(request, "from")
        high = _bound(request, "to")
        parent_id = request.arg("parentExecutionId")
        execution_id = request.arg("executionId")
        seqs: Sequence[int]
        locate: Callable[[str], int | None]
        if parent_id or execution_id:
            # Drill-down across agents: the few executions asked for, newest first.
            if parent_id:
                parent = self._visible(parent_id, now_ms)
                chosen = [store.runs[c] for c in parent.children] if parent else []
            else:
                one = self._visible(execution_id or "", now_ms)
                chosen = [one] if one else []
            chosen = [r for r in chosen if r.created_ms <= now_ms and _in_window(r, low, high)]
            chosen.sort(key=lambda r: (r.created_ms, r.seq), reverse=True)
            seqs = [r.seq for r in chosen]
            locate = _finder([r.run_id for r in chosen])
        else:
            log = store.agent_created[agent]
            lo = log.first_at_or_after(ceil_ms(low)) if low is not None else 0
            hi = max(lo, log.first_after(floor_ms(high)) if high is not None else len(log))
            seqs = _Newest(log.val, lo, hi)

            def locate(execution_id: str) -> int | None:
                # The cursor's execution by bisection on its createdAt: a page
                # deep in a long history costs no scan.
                seq = store.by_id.get(execution_id)
                if seq is None:
                    return None
                created = store.runs[seq].created_ms
                p = log.first_at_or_after(created)
                while p < len(log) and log.ms[p] == created and log.val[p] != seq:
                    p += 1
                if lo <= p < hi and log.val[p] == seq:
                    return hi - 1 - p
                return None

        def keep(i: int) -> bool:
            run = store.runs[seqs[i]]
            if statuses and raw_status(run, now_ms) not in statuses:
                return False
            return surface is None or _surface(run) == surface

        filtered = bool(statuses or surface)
        page = _paginate(request, _Ids(store.runs, seqs), locate, keep if filtered else None)
        shown = [store.runs[seqs[i]] for i in page.indices]
        data: list[JsonValue] = [self._execution(run, now_ms, detail=False) for run in shown]
        key = listing_key(PLATFORM, request, skip=("cursor",))
        at_ms = shown[-1].created_ms if shown else now_ms

        def junk(rng: random.Random) -> JsonObject:
            return make_junk(_junk_execution(rng, store.agents[agent], at_ms), rng)

        listing = Listing(key, ("data",), ("pagination", "nextCursor"), junk)
        response = Response.json(200, {"data": data, "pagination": page.pagination}, listing)
        response.rewind = rewind_list(response, shown, now_ms, lambda r, at: self._execution(r, at, detail=False))
        return response

    def _record(self, run: RunSpec) -> JsonObject:
        return run_record(
            run_id=run.run_id,
            agent=self._store.agents[run.agent].id,
            status=run.outcome,
            raw_status=raw_status(run, run.end_ms),
            parent_run_id=self._id(run.parent),
            root_run_id=self._id(run.root),
            started_ms=run.start_ms,
            ended_ms=run.end_ms,
            tool_calls=tool_records(run),
            total_tokens=run.input_tokens + run.output_tokens,
            cost_usd=run.cost_micros / 1_000_000,
        )

    def truth(self, now_ms: int) -> JsonObject:
        """Executions (sub-agent ones included) finished by now. No activity events."""
        return {"runs": self._finished.records(), "events": None, "events_summary": None}


def _junk_execution(rng: random.Random, agent: AgentSpec, at_ms: int) -> JunkShape:
    """A finished top-level execution that never existed, for the junk fault."""
    execution_id = "exec_" + junk_hex(rng, 16)
    started = at_ms + 500
    item: JsonObject = {
        "id": execution_id,
        "agentId": agent.id,
        "agentSource": "runtype-core",
        "executionId": execution_id,
        "parentExecutionId": None,
        "surfaceType": "api",
        "status": "completed",
        "iterations": 2,
        "totalCost": "0.0123",
        "stopReason": "end_turn",
        "startedAt": iso_ms_z(started),
        "completedAt": iso_ms_z(started + 2_000 + int(rng.random() * 5_000)),
        "createdAt": iso_ms_z(at_ms),
        "agentSpec": None,
        "totalTokens": 1500,
        "inputMessages": None,
    }
    return JunkShape(
        item,
        id_paths=(("id",), ("executionId",)),
        time_paths=(("startedAt",), ("completedAt",), ("createdAt",)),
        unknown_enums={("status",): "paused", ("surfaceType",): "carrier_pigeon"},
        wrong_types={
            ("totalCost",): ["0.0123"],
            ("totalTokens",): "many",
            ("iterations",): "three",
            ("parentExecutionId",): {"id": execution_id},
        },
        required=(("status",), ("createdAt",), ("agentId",)),
    )


def _junk_tool_call(rng: random.Random, agent: AgentSpec, at_ms: int) -> JunkShape:
    """A tool call that never happened, for the junk fault."""
    item: JsonObject = {
        "id": "tc_" + junk_hex(rng, 16),
        "toolId": f"tool_{zlib.crc32(b'web_search'):08x}",
        "toolName": "web_search",
        "toolDescription": _DESCRIPTIONS["web_search"],
        "model": agent.model,
        "status": "completed",
        "errorMessage": None,
        "executionTimeMs": 120,
        "createdAt": iso_ms_z(at_ms),
        "inputParameters": {"query": "web_search input"},
        "outputResult": {"ok": True, "items": 3},
    }
    return JunkShape(
        item,
        time_paths=(("createdAt",),),
        unknown_enums={("status",): "queued"},
        wrong_types={("executionTimeMs",): "fast", ("toolName",): 42, ("inputParameters",): "q"},
        required=(("toolName",), ("status",), ("createdAt",)),
    )


def _in_window(run: RunSpec, low_us: int | None, high_us: int | None) -> bool:
    us = run.created_ms * 1000
    return (low_us is None or us >= low_us) and (high_us is None or us <= high_us)


def _bound(request: Request, name: str) -> int | None:
    raw = request.arg(name)
    if not raw:
        return None
    try:
        return parse_iso_us(raw, require_tz=False)
    except ValueError as err:
        raise BadRequest(f"{name} is not an ISO timestamp: {raw!r}") from err


class _Newest(Sequence[int]):
    """log values [lo, hi) as a newest-first sequence, without copying."""

    def __init__(self, values: Sequence[int], lo: int, hi: int) -> None:
        self._values, self._lo, self._hi = values, lo, hi

    def __len__(self) -> int:
        return self._hi - self._lo

    def __getitem__(self, i: int) -> int:  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._values[self._hi - 1 - i]


class _Ids(Sequence[str]):
    """The execution ids of a sequence of seqs."""

    def __init__(self, runs: Sequence[RunSpec], seqs: Sequence[int]) -> None:
        self._runs, self._seqs = runs, seqs

    def __len__(self) -> int:
        return len(self._seqs)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return self._runs[self._seqs[i]].run_id


class _Page:
    def __init__(self, indices: list[int], pagination: JsonObject) -> None:
        self.indices = indices
        self.pagination = pagination


def _paginate(
    request: Request,
    ids: Sequence[str],
    locate: Callable[[str], int | None],
    keep: Callable[[int], bool] | None,
) -> _Page:
    """One page of `ids` (already in listing order) that `keep` accepts (None:
    all); the cursor is the id of the page's first item, found by `locate`.
    With a filter, counting what lies before the page walks it: O(position)."""
    limit = min(request.int_arg("limit", DEFAULT_LIMIT), MAX_LIMIT)
    include_count = (request.arg("includeCount") or "").lower() == "true"
    accept = keep or (lambda i: True)
    start = 0
    cursor = request.arg("cursor")
    if cursor:
        found = locate(cursor)
        if found is None:
            raise BadRequest("invalid cursor")
        start = found
    indices: list[int] = []
    next_index: int | None = None
    for i in range(start, len(ids)):
        if not accept(i):
            continue
        if len(indices) == limit:
            next_index = i
            break
        indices.append(i)
    # Items before this page: count them (cheap without a filter), and find
    # where the previous page would begin.
    if keep is None:
        offset = start
        prev_index: int | None = max(0, start - limit) if start > 0 else None
    else:
        above = [i for i in range(start) if accept(i)]
        offset = len(above)
        prev_index = above[-limit] if len(above) >= limit else (above[0] if above else None)
    total: int | None = None
    if include_count:
        total = len(ids) if keep is None else offset + sum(1 for i in range(start, len(ids)) if accept(i))
    pagination: JsonObject = {
        "nextCursor": ids[next_index] if next_index is not None else None,
        "prevCursor": ids[prev_index] if prev_index is not None else None,
        "hasMore": next_index is not None,
        "hasPrev": offset > 0,
        "limit": limit,
        "currentOffset": offset,
        "totalPages": math.ceil(total / limit) if total is not None else None,
        "currentPage": offset // limit + 1,
        "totalCount": total,
    }
    return _Page(indices, pagination)


def _finder(ids: list[str]) -> Callable[[str], int | None]:
    """locate() for a short list held in memory."""
    where = {value: i for i, value in enumerate(ids)}
    return where.get
