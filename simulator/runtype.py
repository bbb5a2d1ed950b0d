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

import random
from collections.abc import Callable, Sequence

from simulator.hostile import make_junk, rewind_detail, rewind_list
from simulator.runtype_pages import Ids, Newest, finder, paginate
from simulator.runtype_records import (
    junk_execution,
    junk_tool_call,
    raw_status,
    render_agent,
    render_execution,
    render_tool_call,
    run_id_of,
    surface_type,
)
from simulator.specs import RunSpec
from simulator.timefmt import ceil_ms, floor_ms, parse_iso_us
from simulator.truth import FinishedRuns, run_record, tool_records
from simulator.wire import (
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
from simulator.world import Store

PLATFORM = "runtype"
STATUSES = frozenset({"pending", "running", "completed", "failed", "cancelled", "timed_out"})


class RuntypeApi:
    platform = PLATFORM

    def __init__(self, store: Store) -> None:
        self._store = store
        self._finished = FinishedRuns(store, self._record)

    def error(self, status: int, code: str, message: str) -> Response:
        return vendor_error(status, code, message)

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
            return Response.json(200, {"data": render_agent(self._store.agents[agent])})
        if parts[3] != "executions":
            raise NotFound(f"no route for {request.path}")
        if len(parts) == 4:
            return self._executions(request, agent, now_ms)
        run = self._own_execution(agent, parts[4], now_ms)
        if len(parts) == 5:
            response = Response.json(200, {"data": render_execution(self._store, run, now_ms, detail=True)})
            response.rewind = rewind_detail(
                response,
                run,
                now_ms,
                lambda r, at: render_execution(self._store, r, at, detail=True),
                lambda item: {"data": item},
            )
            return response
        if parts[5] != "tool-calls" or len(parts) > 7:
            raise NotFound(f"no route for {request.path}")
        tools = [t for t in run.tools if t.start_ms <= now_ms]
        agent_spec = self._store.agents[agent]
        if len(parts) == 7:
            for tool in tools:
                if tool.call_id == parts[6]:
                    return Response.json(200, {"data": render_tool_call(tool, agent_spec, now_ms)})
            raise NotFound("Tool call not found")
        call_ids = [t.call_id for t in tools]
        page = paginate(request, call_ids, finder(call_ids), None)
        data: list[JsonValue] = [render_tool_call(tools[i], agent_spec, now_ms) for i in page.indices]
        key = listing_key(PLATFORM, request, skip=("cursor",))
        at_ms = tools[page.indices[-1]].start_ms if page.indices else run.start_ms

        def junk(rng: random.Random) -> JsonObject:
            return make_junk(junk_tool_call(rng, agent_spec, at_ms), rng)

        listing = Listing(key, ("data",), ("pagination", "nextCursor"), junk)
        return Response.json(200, {"data": data, "pagination": page.pagination}, listing)

    def _agents(self, request: Request) -> Response:
        agents = self._store.agents
        agent_ids = [a.id for a in agents]
        page = paginate(request, agent_ids, finder(agent_ids), None)
        data: list[JsonValue] = [render_agent(agents[i]) for i in page.indices]
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
            locate = finder([r.run_id for r in chosen])
        else:
            log = store.agent_created[agent]
            lo = log.first_at_or_after(ceil_ms(low)) if low is not None else 0
            hi = max(lo, log.first_after(floor_ms(high)) if high is not None else len(log))
            seqs = Newest(log.val, lo, hi)

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
            return surface is None or surface_type(run) == surface

        filtered = bool(statuses or surface)
        page = paginate(request, Ids(store.runs, seqs), locate, keep if filtered else None)
        shown = [store.runs[seqs[i]] for i in page.indices]
        data: list[JsonValue] = [render_execution(self._store, run, now_ms, detail=False) for run in shown]
        key = listing_key(PLATFORM, request, skip=("cursor",))
        at_ms = shown[-1].created_ms if shown else now_ms

        def junk(rng: random.Random) -> JsonObject:
            return make_junk(junk_execution(rng, store.agents[agent], at_ms), rng)

        listing = Listing(key, ("data",), ("pagination", "nextCursor"), junk)
        response = Response.json(200, {"data": data, "pagination": page.pagination}, listing)
        response.rewind = rewind_list(
            response, shown, now_ms, lambda r, at: render_execution(self._store, r, at, detail=False)
        )
        return response

    def _record(self, run: RunSpec) -> JsonObject:
        return run_record(
            run_id=run.run_id,
            agent=self._store.agents[run.agent].id,
            status=run.outcome,
            raw_status=raw_status(run, run.end_ms),
            parent_run_id=run_id_of(self._store, run.parent),
            root_run_id=run_id_of(self._store, run.root),
            started_ms=run.start_ms,
            ended_ms=run.end_ms,
            tool_calls=tool_records(run),
            total_tokens=run.input_tokens + run.output_tokens,
            cost_usd=run.cost_micros / 1_000_000,
        )

    def truth(self, now_ms: int) -> JsonObject:
        """Executions (sub-agent ones included) finished by now. No activity events."""
        return {"runs": self._finished.records(), "events": None, "events_summary": None}


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
