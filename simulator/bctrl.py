"""bctrl: runtime runs and their activity timelines (docs/platforms.md, bctrl;
the vendor's "List Run Activity" page has the item schema).

    GET /v1/runs?cursor&limit&status&runtimeId&spaceId   (assumed listing, newest first)
        -> {"data": [{id, runtimeId, spaceId, runtimeKind, status, createdAt, startedAt, endedAt}], "nextCursor"}
    GET /v1/runs/{id}
    GET /v1/runs/{id}/activity?cursor&limit&categories&level
        -> {"items": [...], "nextCursor": str|null}

Activity items come oldest first. A run's start and end are `system` items; a
tool call is a `commandId` group: a first `action` item with status running
whose `type` names the command (also in `data.command` on every item of the
group), possibly debug items, and a last item with status succeeded|failed.
`level=summary` gives summary items only; no level (or `debug`) gives all.
`nextCursor: null` means no more items *yet*: the cursor is a position in the
run's fixed item sequence, so a reader that keeps its last cursor reads the
items appended later from there. Both lists clamp `limit` to 100.

Faults (faults.py): backwards shows a long-finished run of the runs list or
of GET /v1/runs/{id} as it was earlier (pending/running, endedAt null); the
activity timeline is a feed and never goes back. junk adds an item with no
usable id, about a made-up run, to a runs page or an activity page.
"""

from __future__ import annotations

import random
from collections import Counter

from simulator.bctrl_records import items_of, junk_item, junk_run, render_item, render_run
from simulator.cursors import decode_cursor, encode_cursor
from simulator.hostile import make_junk, rewind_detail, rewind_list
from simulator.specs import AgentSpec, RunSpec
from simulator.truth import EventKey, FinishedRuns, event_counts, run_record, tool_records
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

PLATFORM = "bctrl"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
CATEGORIES = frozenset(
    {"action", "agent", "browser", "network", "console", "captcha", "storage", "artifact", "recording", "system"}
)
LEVELS = frozenset({"summary", "debug"})
RUN_STATUSES = frozenset({"pending", "running", "succeeded", "failed", "cancelled", "timed_out"})


class BctrlApi:
    platform = PLATFORM

    def __init__(self, store: Store) -> None:
        self._store = store
        # Items of finished runs are final: counted once, as each run finishes.
        self._all_done: Counter[EventKey] = Counter()
        self._summary_done: Counter[EventKey] = Counter()
        self._finished = FinishedRuns(store, self._record, self._count_finished)

    def error(self, status: int, code: str, message: str) -> Response:
        return vendor_error(status, code, message)

    def handle(self, request: Request, now_ms: int) -> Response:
        parts = request.path_parts()
        if parts == ["v1", "runs"]:
            return self._runs(request, now_ms)
        if len(parts) in (3, 4) and parts[:2] == ["v1", "runs"]:
            run = self._visible_run(parts[2], now_ms)
            agent = self._store.agents[run.agent]
            if len(parts) == 3:
                response = Response.json(200, render_run(run, agent, now_ms))
                response.rewind = rewind_detail(
                    response, run, now_ms, lambda r, at: render_run(r, agent, at), lambda item: item
                )
                return response
            if parts[3] == "activity":
                return self._activity(request, run, agent, now_ms)
        raise NotFound(f"no route for {request.path}")

    def _visible_run(self, run_id: str, now_ms: int) -> RunSpec:
        seq = self._store.by_id.get(run_id)
        if seq is None or self._store.runs[seq].created_ms > now_ms:
            raise NotFound("Run not found or not visible to actor")
        return self._store.runs[seq]

    def _runs(self, request: Request, now_ms: int) -> Response:
        store = self._store
        limit = min(request.int_arg("limit", DEFAULT_LIMIT), MAX_LIMIT)
        statuses = _csv(request, "status")
        if statuses - RUN_STATUSES:
            raise BadRequest(f"status must be among {sorted(RUN_STATUSES)}")
        runtimes = _csv(request, "runtimeId")
        spaces = _csv(request, "spaceId")
        log = store.created
        position = len(log)  # exclusive: this page looks below it, newest first
        cursor = request.arg("cursor")
        if cursor:
            state = decode_cursor(cursor)
            position_value = state.get("p")
            if not isinstance(position_value, int) or not 0 <= position_value <= len(log):
                raise BadRequest("invalid cursor")
            position = position_value
        floor = 0
        if statuses and statuses <= {"pending", "running"}:
            # Runs in flight were created within the longest run's time: no
            # need to walk the whole history to find them.
            floor = log.first_at_or_after(now_ms - store.max_run_ms)
        page: list[JsonValue] = []
        shown: list[RunSpec] = []
        last = -1
        more = False
        for index in range(position - 1, floor - 1, -1):
            run = store.runs[log.val[index]]
            agent = store.agents[run.agent]
            if statuses and run.status_at(now_ms) not in statuses:
                continue
            if (runtimes and agent.id not in runtimes) or (spaces and agent.space_id not in spaces):
                continue
            if len(page) == limit:
                more = True
                break
            page.append(render_run(run, agent, now_ms))
            shown.append(run)
            last = index
        payload: JsonObject = {"data": page, "nextCursor": encode_cursor({"p": last}) if more else None}
        key = listing_key(PLATFORM, request, skip=("cursor",))
        at_ms = shown[-1].created_ms if shown else now_ms

        def junk(rng: random.Random) -> JsonObject:
            return make_junk(junk_run(rng, store.agents, at_ms), rng)

        response = Response.json(200, payload, Listing(key, ("data",), ("nextCursor",), junk))
        response.rewind = rewind_list(response, shown, now_ms, lambda r, at: render_run(r, store.agents[r.agent], at))
        return response

    def _activity(self, request: Request, run: RunSpec, agent: AgentSpec, now_ms: int) -> Response:
        limit = min(request.int_arg("limit", DEFAULT_LIMIT), MAX_LIMIT)
        categories: set[str] = set()
        for value in request.args("categories") + request.args("categories[]"):
            categories.update(c.strip() for c in value.split(",") if c.strip())
        if categories - CATEGORIES:
            raise BadRequest(f"categories must be among {sorted(CATEGORIES)}")
        level = request.arg("level")
        if level and level not in LEVELS:
            raise BadRequest("level must be summary or debug")
        items = items_of(run, agent)
        start = 0
        cursor = request.arg("cursor")
        if cursor:
            state = decode_cursor(cursor)
            position = state.get("p")
            if state.get("r") != run.run_id or not isinstance(position, int) or not 0 <= position <= len(items):
                raise BadRequest("invalid cursor")
            start = position
        page: list[JsonValue] = []
        next_start: int | None = None
        at_ms = run.start_ms
        for k in range(start, len(items)):
            item = items[k]
            if item.ms > now_ms:
                break  # later items are not there yet
            if categories and item.category not in categories:
                continue
            if level == "summary" and item.level != "summary":
                continue
            if len(page) == limit:
                next_start = k
                break
            page.append(render_item(item, k, run, agent))
            at_ms = item.ms
        next_cursor = encode_cursor({"r": run.run_id, "p": next_start}) if next_start is not None else None
        payload: JsonObject = {"items": page, "nextCursor": next_cursor}
        key = listing_key(PLATFORM, request, skip=("cursor",))

        def junk(rng: random.Random) -> JsonObject:
            return make_junk(junk_item(rng, agent, at_ms), rng)

        return Response.json(200, payload, Listing(key, ("items",), ("nextCursor",), junk))

    def _record(self, run: RunSpec) -> JsonObject:
        return run_record(
            run_id=run.run_id,
            agent=self._store.agents[run.agent].id,
            status=run.outcome,
            raw_status=run.outcome,
            started_ms=run.start_ms,
            ended_ms=run.end_ms,
            tool_calls=tool_records(run),
        )

    def _count_finished(self, run: RunSpec) -> None:
        self._count(run, run.end_ms, self._all_done, self._summary_done)

    def _count(self, run: RunSpec, now_ms: int, every: Counter[EventKey], summary: Counter[EventKey]) -> None:
        for item in items_of(run, self._store.agents[run.agent]):
            if item.ms > now_ms:
                break
            key = (item.category, item.severity, item.status)
            every[key] += 1
            if item.level == "summary":
                summary[key] += 1

    def truth(self, now_ms: int) -> JsonObject:
        """Runs finished by now; activity items visible now counted by
        (category, severity, status), all levels and summary level apart."""
        runs = self._finished.records()
        every, summary = Counter(self._all_done), Counter(self._summary_done)
        # Runs still in flight were created within the longest run's time.
        log = self._store.created
        for i in range(log.first_at_or_after(now_ms - self._store.max_run_ms), len(log)):
            run = self._store.runs[log.val[i]]
            if not run.ended_by(now_ms):
                self._count(run, now_ms, every, summary)
        return {"runs": runs, "events": event_counts(every), "events_summary": event_counts(summary)}


def _csv(request: Request, name: str) -> set[str]:
    out: set[str] = set()
    for value in request.args(name):
        out.update(v.strip() for v in value.split(",") if v.strip())
    return out
