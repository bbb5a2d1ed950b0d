"""agent_activities: per-agent run list and run detail (the vendor's "List
activities" and "Get activity" pages; docs/platforms.md, agent_activities).

    GET /api/agents/{agent_uid}/activities?status&started_on_from&...&sort&page&per_page&fields[agent-runs]
    GET /api/agents/{agent_uid}/activities/{run_uid}?fields[agent-runs]=trigger_payload,result,error,token_usage

Page-number pagination over the runs visible now (so pages shift as runs
arrive, as documented). `per_page` is capped at 50 and `_meta.per_page` says
so. Date filters must carry a timezone. Statuses pending | running |
completed | failed | cancelled | stopped; `token_usage`, `error` and
`completed_on` are null until the run ends; `token_usage` is an object of
counters for some runs and a single integer (the total) for others. Sorting
puts runs without the sorted-on time (not started, not completed) last.
No endpoint lists agents: `Simulator.agents("agent_activities")` names them.

Faults (faults.py): backwards shows a long-finished run of a list page or a
detail as it was earlier (pending/running, completed_on, token_usage and
error null, result cut to what was known then); junk adds to a list page a
run with no usable id.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from simulator.agent_activities_records import (
    junk_shape,
    normalised_status,
    raw_status,
    render_run,
    run_steps,
    token_usage_is_int,
    trigger_type,
)
from simulator.hostile import make_junk, rewind_detail, rewind_list
from simulator.specs import RunSpec
from simulator.timefmt import ceil_ms, floor_ms, parse_iso_us
from simulator.truth import FinishedRuns, run_record, tool_record
from simulator.wire import (
    BadRequest,
    JsonObject,
    JsonValue,
    Listing,
    NotFound,
    Request,
    Response,
    envelope_error,
    listing_key,
)
from simulator.world import Store

PLATFORM = "agent_activities"
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 50
STATUSES = frozenset({"pending", "running", "completed", "failed", "cancelled", "stopped"})
SORT_FIELDS = frozenset({"started_on", "completed_on", "created_on", "status"})
EXTRA_FIELDS = ("trigger_payload", "result", "error", "token_usage")
_DATE_FILTERS = ("started_on", "completed_on", "created_on")


@dataclass(frozen=True, slots=True)
class _Window:
    """An inclusive [low, high] bound in ms on one of the run's times."""

    low: int | None = None
    high: int | None = None

    def holds(self, ms: int | None) -> bool:
        if ms is None:
            return self.low is None and self.high is None
        return (self.low is None or ms >= self.low) and (self.high is None or ms <= self.high)


@dataclass(frozen=True, slots=True)
class _Query:
    statuses: frozenset[str] | None
    windows: dict[str, _Window]
    has_started: bool | None
    has_completed: bool | None
    sort_field: str
    descending: bool
    group_by_trigger: bool
    page: int
    per_page: int
    fields: frozenset[str]


def _fields(request: Request) -> frozenset[str]:
    raw = request.arg("fields[agent-runs]") or ""
    return frozenset(f.strip() for f in raw.split(",") if f.strip())


def _parse_query(request: Request) -> _Query:
    statuses = None
    raw_status_arg = request.arg("status")
    if raw_status_arg:
        statuses = frozenset(s.strip() for s in raw_status_arg.split(",") if s.strip())
        unknown = statuses - STATUSES
        if unknown:
            raise BadRequest(f"unknown status {sorted(unknown)}; allowed: {sorted(STATUSES)}")
    windows: dict[str, _Window] = {}
    for name in _DATE_FILTERS:
        low = _bound(request, f"{name}_from")
        high = _bound(request, f"{name}_to")
        if low is not None or high is not None:
            # Inclusive bounds in µs -> whole ms of the run times they admit.
            windows[name] = _Window(
                ceil_ms(low) if low is not None else None, floor_ms(high) if high is not None else None
            )
    sort = request.arg("sort") or "-started_on"
    # An unencoded "+" in a query string arrives as a space.
    sort = sort.replace(" ", "+")
    descending = sort.startswith("-")
    sort_field = sort.lstrip("+-")
    if sort_field not in SORT_FIELDS:
        raise BadRequest(f"sort must be [+|-] one of {sorted(SORT_FIELDS)}, got {sort!r}")
    group_by = request.arg("group_by") or "none"
    if group_by not in ("none", "trigger"):
        raise BadRequest("group_by must be none or trigger")
    return _Query(
        statuses=statuses,
        windows=windows,
        has_started=request.bool_arg("has_started"),
        has_completed=request.bool_arg("has_completed"),
        sort_field=sort_field,
        descending=descending,
        group_by_trigger=group_by == "trigger",
        page=request.int_arg("page", 1),
        per_page=min(request.int_arg("per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE),
        fields=_fields(request),
    )


def _bound(request: Request, name: str) -> int | None:
    raw = request.arg(name)
    if not raw:
        return None
    try:
        return parse_iso_us(raw, require_tz=True)
    except ValueError as err:
        raise BadRequest(f"{name} must be an ISO 8601 datetime with a timezone, got {raw!r}") from err


class AgentActivitiesApi:
    platform = PLATFORM

    def __init__(self, store: Store) -> None:
        self._store = store
        self._finished = FinishedRuns(store, self._record)

    def error(self, status: int, code: str, message: str) -> Response:
        return envelope_error(status, code, message)

    def handle(self, request: Request, now_ms: int) -> Response:
        parts = request.path_parts()
        if len(parts) in (4, 5) and parts[:2] == ["api", "agents"] and parts[3] == "activities":
            agent = self._store.agent_index.get(parts[2])
            if agent is None:
                raise NotFound("Agent not found")
            if len(parts) == 4:
                return self._list(request, agent, now_ms)
            return self._detail(request, agent, parts[4], now_ms)
        raise NotFound(f"no route for {request.path}")

    def _detail(self, request: Request, agent: int, run_uid: str, now_ms: int) -> Response:
        seq = self._store.by_id.get(run_uid)
        run = self._store.runs[seq] if seq is not None else None
        if run is None or run.agent != agent or run.created_ms > now_ms:
            raise NotFound("Run not found")
        spec = self._store.agents[agent]
        fields = _fields(request)
        data = render_run(run, spec, now_ms, fields)
        response = Response.json(200, {"status": "success", "status_code": 200, "data": data})
        response.rewind = rewind_detail(
            response,
            run,
            now_ms,
            lambda r, at: render_run(r, spec, at, fields),
            lambda item: {"status": "success", "status_code": 200, "data": item},
        )
        return response

    def _list(self, request: Request, agent: int, now_ms: int) -> Response:
        query = _parse_query(request)
        store = self._store
        runs = store.runs
        matched = [runs[seq] for seq in self._candidates(query, agent, now_ms)]
        matched = [run for run in matched if _keep(run, query, now_ms)]
        matched = _sorted(matched, query, now_ms)
        total = len(matched)
        first = (query.page - 1) * query.per_page
        page = matched[first : first + query.per_page]
        spec = store.agents[agent]
        items: list[JsonValue] = [render_run(run, spec, now_ms, query.fields) for run in page]
        payload: JsonObject = {
            "status": "success",
            "status_code": 200,
            "data": {
                "items": items,
                "_meta": {
                    "page": query.page,
                    "per_page": query.per_page,
                    "total_pages": math.ceil(total / query.per_page),
                    "total_items": total,
                },
            },
        }
        key = listing_key(PLATFORM, request, skip=("page",))

        def junk(rng: random.Random) -> JsonObject:
            return make_junk(junk_shape(rng, spec, now_ms, query.fields), rng)

        response = Response.json(200, payload, Listing(key, ("data", "items"), junk=junk))
        response.rewind = rewind_list(response, page, now_ms, lambda r, at: render_run(r, spec, at, query.fields))
        return response

    def _candidates(self, query: _Query, agent: int, now_ms: int) -> list[int]:
        """Seqs that may match, narrowed by bisection where a date window or
        has_completed allows; _keep() then decides exactly."""
        store = self._store
        completed = query.windows.get("completed_on")
        if completed is not None:
            log = store.agent_ended[agent]
            lo = log.first_at_or_after(completed.low) if completed.low is not None else 0
            hi = log.first_after(completed.high) if completed.high is not None else len(log)
            return list(log.val[lo:hi])
        log = store.agent_created[agent]
        lo, hi = 0, len(log)
        created = query.windows.get("created_on")
        if created is not None:
            lo = max(lo, log.first_at_or_after(created.low) if created.low is not None else 0)
            hi = min(hi, log.first_after(created.high) if created.high is not None else hi)
        started = query.windows.get("started_on")
        if started is not None:
            # created <= started <= created + max delay
            if started.low is not None:
                lo = max(lo, log.first_at_or_after(started.low - store.max_delay_ms))
            if started.high is not None:
                hi = min(hi, log.first_after(started.high))
        if query.has_completed is False or (query.statuses and query.statuses <= {"pending", "running"}):
            # Runs still in flight were created within the longest run's time.
            lo = max(lo, log.first_at_or_after(now_ms - store.max_run_ms))
        return list(log.val[lo:hi]) if lo < hi else []

    def _record(self, run: RunSpec) -> JsonObject:
        raw = raw_status(run, run.end_ms)
        steps = run_steps(run)
        # A tool call is a tool_called entry; its id here is the number of the
        # step_history step it matches (the platform gives tool calls no id).
        numbers = {s.tool_index: n for n, s in enumerate(steps, start=1) if s.tool_index is not None}
        tool_calls: list[JsonValue] = [
            tool_record(str(numbers[i]), t.name, "failed" if t.failed else "unknown") for i, t in enumerate(run.tools)
        ]
        usage_int = token_usage_is_int(run)
        return run_record(
            run_id=run.run_id,
            agent=self._store.agents[run.agent].id,
            status=normalised_status(raw),
            raw_status=raw,
            started_ms=run.start_ms,
            ended_ms=run.end_ms,
            tool_calls=tool_calls,
            input_tokens=None if usage_int else run.input_tokens,
            output_tokens=None if usage_int else run.output_tokens,
            total_tokens=run.input_tokens + run.output_tokens,
        )

    def truth(self, now_ms: int) -> JsonObject:
        """Runs finished by now. This platform defines no activity events."""
        return {"runs": self._finished.records(), "events": None, "events_summary": None}


def _times(run: RunSpec, now_ms: int) -> dict[str, int | None]:
    return {
        "created_on": run.created_ms,
        "started_on": run.start_ms if run.start_ms <= now_ms else None,
        "completed_on": run.end_ms if run.ended_by(now_ms) else None,
    }


def _keep(run: RunSpec, query: _Query, now_ms: int) -> bool:
    if run.created_ms > now_ms:
        return False
    times = _times(run, now_ms)
    for name, window in query.windows.items():
        if not window.holds(times[name]):
            return False
    if query.has_started is not None and (times["started_on"] is not None) != query.has_started:
        return False
    if query.has_completed is not None and (times["completed_on"] is not None) != query.has_completed:
        return False
    return query.statuses is None or raw_status(run, now_ms) in query.statuses


def _sorted(runs: list[RunSpec], query: _Query, now_ms: int) -> list[RunSpec]:
    if query.sort_field == "status":
        present = sorted(runs, key=lambda r: (raw_status(r, now_ms), r.seq), reverse=query.descending)
        absent: list[RunSpec] = []
    else:
        keyed = [(_times(r, now_ms)[query.sort_field], r) for r in runs]
        present = [
            r
            for ms, r in sorted(
                ((ms, r) for ms, r in keyed if ms is not None), key=lambda p: (p[0], p[1].seq), reverse=query.descending
            )
        ]
        absent = [r for ms, r in keyed if ms is None]  # no such time yet: last, whatever the direction
    ordered = present + absent
    if query.group_by_trigger:
        ordered.sort(key=trigger_type)  # stable: keeps the requested order inside each group
    return ordered
