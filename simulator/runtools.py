"""runtools: the organisation-wide activity feed (docs/platforms.md, runtools).

    GET /v1/activity?since&until&limit&cursor&resource_type&agent_run_id&...
    GET /v1/{agents|threads|sandboxes|workspaces}/{id}/activity   (shortcuts)
    -> {"data": {"events": [...]}, "meta": {"hasMore", "nextCursor"}}

A run is the events sharing `agentRunId`: agent.run.started, agent.message.added,
tool.call.started + tool.call.completed|failed, agent.run.<outcome>; plus
events outside any run (sandbox.created, workspace.updated) without one.

Pages run newest first (the order is undocumented, and a reader must not rely
on it). `since` is inclusive and `until` exclusive on occurredAt. The cursor
holds the query and a position in the store's append-only feed (ordered by
occurredAt): the next page looks only below it, so events that arrive while a
reader pages never shift or repeat what it has not read yet; they are there
for its next poll. `limit` above 200 is an error.

Faults (faults.py): a page may get a junk event (no usable id, about a
made-up run). Events have no status to go back, so no backwards here.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator

from simulator.cursors import decode_cursor, encode_cursor
from simulator.hostile import make_junk
from simulator.runtools_events import (
    TERMINAL,
    Event,
    Skeleton,
    event_at,
    feed_times,
    junk_shape,
    render_event,
    skeleton,
    thread_id,
)
from simulator.specs import AgentSpec, RunSpec
from simulator.timefmt import ceil_ms, parse_iso_us
from simulator.truth import EventKey, FinishedRuns, event_counts, run_record, tool_records
from simulator.wire import BadRequest, JsonObject, JsonValue, Listing, NotFound, Request, Response, vendor_error
from simulator.world import MAX_FEED_PER_RUN, Store

PLATFORM = "runtools"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

RESOURCE_TYPES = frozenset(
    {"sandbox", "agent", "workspace", "thread", "tool", "installable_agent_install", "runmesh_device", "code_execution"}
)
SEVERITIES = frozenset({"info", "warning", "error"})

# Query filter -> the event attribute it matches. Filters on attributes the
# simulated events never carry (actor_user_id, ...) simply match nothing.
_FILTERS: tuple[str, ...] = (
    "resource_type",
    "resource_id",
    "event_type",
    "severity",
    "status",
    "thread_id",
    "agent_run_id",
    "sandbox_id",
    "workspace_id",
    "tool_slug",
    "actor_user_id",
    "installable_agent_install_id",
    "code_execution_id",
    "runmesh_node_id",
)
# Shortcut path -> the filter it applies ("agent" is this module's own scope:
# every event of that agent's runs).
_SHORTCUTS: dict[tuple[str, ...], str] = {
    ("agents",): "agent",
    ("threads",): "thread_id",
    ("sandboxes",): "sandbox_id",
    ("workspaces",): "workspace_id",
    ("runmesh", "devices"): "runmesh_node_id",
    ("installable-agents", "installs"): "installable_agent_install_id",
}


def _matches(event: Event, run: RunSpec, agent: AgentSpec, query: dict[str, str]) -> bool:
    for name, want in query.items():
        if name in ("since", "until"):
            continue
        if name == "agent":
            ok = event.in_run and agent.id == want
        elif name == "resource_type":
            ok = event.resource_type == want
        elif name == "resource_id":
            ok = event.resource_id == want
        elif name == "event_type":
            ok = event.event_type == want
        elif name == "severity":
            ok = event.severity == want
        elif name == "status":
            ok = event.status == want
        elif name == "thread_id":
            ok = event.in_run and thread_id(run) == want
        elif name == "agent_run_id":
            ok = event.in_run and run.run_id == want
        elif name == "sandbox_id":
            ok = event.sandbox_id == want
        elif name == "workspace_id":
            ok = event.workspace_id == want
        elif name == "tool_slug":
            ok = event.tool_slug == want
        else:
            ok = False
        if not ok:
            return False
    return True


class RuntoolsApi:
    platform = PLATFORM

    def __init__(self, store: Store) -> None:
        self._store = store
        self._finished = FinishedRuns(store, self._record)
        self._event_counts: Counter[EventKey] = Counter()
        self._counted = 0  # feed entries already in _event_counts

    def error(self, status: int, code: str, message: str) -> Response:
        return vendor_error(status, code, message)

    def handle(self, request: Request, now_ms: int) -> Response:
        parts = request.path_parts()
        if parts == ["v1", "activity"]:
            scope: dict[str, str] = {}
        elif len(parts) >= 4 and parts[0] == "v1" and parts[-1] == "activity" and tuple(parts[1:-2]) in _SHORTCUTS:
            scope = {_SHORTCUTS[tuple(parts[1:-2])]: parts[-2]}
        else:
            raise NotFound(f"no route for {request.path}")
        return self._activity(request, scope, now_ms)

    def _activity(self, request: Request, scope: dict[str, str], now_ms: int) -> Response:
        limit = request.int_arg("limit", DEFAULT_LIMIT)
        if limit > MAX_LIMIT:
            raise BadRequest(f"limit must be at most {MAX_LIMIT}, got {limit}")
        asked = dict(scope)
        for name in ("since", "until", *_FILTERS):
            value = request.arg(name)
            if value:
                asked[name] = value
        feed = self._store.feed
        assert feed is not None  # runtools stores always keep a feed
        cursor = request.arg("cursor")
        if cursor:
            query, position = _resume(cursor, asked, len(feed))
        else:
            query, position = asked, len(feed)
        _validate(query)
        lo = 0
        hi = len(feed)
        if "since" in query:
            lo = feed.first_at_or_after(ceil_ms(_parse_bound(query["since"], "since")))
        if "until" in query:
            hi = feed.first_at_or_after(ceil_ms(_parse_bound(query["until"], "until")))
        hi = min(hi, position)

        store = self._store
        cache: dict[int, Skeleton] = {}
        picked: list[JsonValue] = []
        last = -1
        last_ms = now_ms
        more = False
        for index in self._candidates(query, lo, hi, now_ms):
            ref = feed.val[index]
            seq, k = divmod(ref, MAX_FEED_PER_RUN)
            run = store.runs[seq]
            agent = store.agents[run.agent]
            entries = cache.get(seq)
            if entries is None:
                entries = cache[seq] = skeleton(run)
            event = event_at(run, agent, entries[k])
            if not _matches(event, run, agent, query):
                continue
            if len(picked) == limit:
                more = True
                break
            picked.append(render_event(event, run, k))
            last = index
            last_ms = event.ms
        next_cursor = encode_cursor({"p": last, "q": dict(query.items())}) if more else None
        payload: JsonObject = {
            "data": {"events": picked},
            "meta": {"hasMore": more, "nextCursor": next_cursor},
        }
        # The listing is the query, wherever it came from (parameters or cursor).
        key = f"{PLATFORM} {request.path.rstrip('/')} {json.dumps(query, sort_keys=True)}"

        def junk(rng: random.Random) -> JsonObject:
            return make_junk(junk_shape(rng, [a.id for a in store.agents], last_ms), rng)

        return Response.json(200, payload, Listing(key, ("data", "events"), ("meta", "nextCursor"), junk))

    def _candidates(self, query: dict[str, str], lo: int, hi: int, now_ms: int) -> Iterator[int]:
        """Feed positions to examine, newest first, within [lo, hi)."""
        feed = self._store.feed
        assert feed is not None
        run_id = query.get("agent_run_id")
        if run_id is None:
            yield from range(hi - 1, lo - 1, -1)
            return
        # One run: find its few events in the feed instead of scanning it.
        seq = self._store.by_id.get(run_id)
        if seq is None:
            return
        run = self._store.runs[seq]
        positions = []
        for k, ms in enumerate(feed_times(run, self._store.agents[run.agent])):
            if ms > now_ms:
                break
            i = feed.first_at_or_after(ms)
            ref = seq * MAX_FEED_PER_RUN + k
            while i < len(feed) and feed.ms[i] == ms and feed.val[i] != ref:
                i += 1
            if i < len(feed) and feed.val[i] == ref:
                positions.append(i)
        yield from (i for i in sorted(positions, reverse=True) if lo <= i < hi)

    def _record(self, run: RunSpec) -> JsonObject:
        return run_record(
            run_id=run.run_id,
            agent=self._store.agents[run.agent].id,
            status=run.outcome,
            raw_status=TERMINAL[run.outcome][0],
            started_ms=run.start_ms,
            ended_ms=run.end_ms,
            tool_calls=tool_records(run),
        )

    def truth(self, now_ms: int) -> JsonObject:
        """Runs finished by now; events counted by (resourceType, severity,
        status) over every event visible now, in a run or not."""
        store = self._store
        feed = store.feed
        assert feed is not None
        cache: dict[int, Skeleton] = {}
        for i in range(self._counted, len(feed)):
            seq, k = divmod(feed.val[i], MAX_FEED_PER_RUN)
            run = store.runs[seq]
            entries = cache.get(seq)
            if entries is None:
                if len(cache) > 4096:
                    cache.clear()  # bounded: the feed interleaves few runs at a time
                entries = cache[seq] = skeleton(run)
            event = event_at(run, store.agents[run.agent], entries[k])
            self._event_counts[(event.resource_type, event.severity, event.status)] += 1
        self._counted = len(feed)
        return {"runs": self._finished.records(), "events": event_counts(self._event_counts), "events_summary": None}


def _resume(cursor: str, asked: dict[str, str], feed_length: int) -> tuple[dict[str, str], int]:
    """The query and position a cursor carries. Filters repeated in the
    request must match the cursor's: a cursor belongs to one query."""
    state = decode_cursor(cursor)
    query = state.get("q")
    position = state.get("p")
    if not isinstance(query, dict) or not isinstance(position, int) or not 0 <= position <= feed_length:
        raise BadRequest("invalid cursor")
    for name, value in asked.items():
        if query.get(name) != value:
            raise BadRequest(f"cursor was issued for another query ({name} differs)")
    return {str(k): str(v) for k, v in query.items()}, position


def _parse_bound(value: str, name: str) -> int:
    try:
        return parse_iso_us(value, require_tz=False)
    except ValueError as err:
        raise BadRequest(f"{name} is not an ISO timestamp: {value!r}") from err


def _validate(query: dict[str, str]) -> None:
    if "resource_type" in query and query["resource_type"] not in RESOURCE_TYPES:
        raise BadRequest(f"resource_type must be one of {sorted(RESOURCE_TYPES)}")
    if "severity" in query and query["severity"] not in SEVERITIES:
        raise BadRequest(f"severity must be one of {sorted(SEVERITIES)}")
    for name in ("since", "until"):
        if name in query:
            _parse_bound(query[name], name)
