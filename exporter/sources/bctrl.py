"""bctrl: browser/desktop runtime runs and their activity timelines.

Reading strategy (docs/platforms.md, bctrl):

1. Discover runs. With fixed run ids (`runs:` option) there is no listing:
   every configured id not exported yet is an open run. Otherwise
   `GET /v1/runs` (no bctrl page documents it: an assumed listing) is read newest first, page by
   page, until a page holds a run created before `watermark - lookback`;
   every run in that window not exported yet becomes (or updates) an open
   run holding the listing's status and times. The watermark then moves to
   the newest `createdAt` listed (platform time, never our clock).
2. Read each open run's activity, `GET /v1/runs/{id}/activity`, from the
   cursor stored in its open-run data. Items come oldest first; a null
   `nextCursor` means "nothing more yet", so the cursor last followed is
   kept and the next poll resumes from it (re-reading at most that one page,
   de-duplicated by item id against the items already held).
3. A run is exported once it is terminal and its timeline has been read to
   the current end: terminal when the listing says so, or when a
   category=system item carries a terminal status (the only signal with
   fixed run ids, and the one that ends runs older than the listing window).
   A 404 on the activity drops the open run with a warning (deleted or not
   visible) and remembers it as gone, so it is not asked for again.

Request pattern per poll: one listing request per page of the window (one
when idle) + one activity request per page of each open run (one per open
run when idle). Exported and gone runs are never requested again.

Checkpoint: {"watermark": iso} (listing mode only): runs created at or after
`watermark - lookback` have all been discovered. Each open run's working
state (listing info, activity cursor, items read so far) is in OpenRun.data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import cast

import httpx

from exporter.config import SourceConfig
from exporter.model import (
    ActivityEvent,
    Attributes,
    AttrValue,
    Batch,
    OpenRun,
    Rejected,
    Run,
    RunStatus,
    Severity,
    ToolCall,
    ToolStatus,
    parse_enum,
    parse_time,
)
from exporter.sources.base import CursorGuard, Fields, PlatformSource, PollContext, envelope, grouped
from exporter.sources.http import BadRecordError, BadResponseError

log = logging.getLogger(__name__)

PLATFORM = "bctrl"
RUNS_PATH = "/v1/runs"
ACTIVITY_PATH = "/v1/runs/{id}/activity"
PRUNE_MARGIN = timedelta(minutes=5)  # dedup keys kept this long behind the listing window
DATA_VERSION = 1

# -- Where the vendor's page is silent: the readings this source follows ----
# The documented enums of an activity item; anything else counts as "unknown".
CATEGORIES = frozenset(
    {"action", "agent", "browser", "network", "console", "captcha", "storage", "artifact", "recording", "system"}
)
LEVELS = frozenset({"summary", "debug"})
RUNTIME_KINDS = frozenset({"browser", "desktop", "spreadsheet"})
ITEM_STATUSES = frozenset({"pending", "running", "succeeded", "failed", "cancelled", "timed_out"})
NO_STATUS = "none"  # ActivityEvent.status of an item without `status`
# A run's own start and end are items of this category (Decisions, bctrl).
SYSTEM_CATEGORY = "system"
# Run status (listing `status`, or a system item's `status`) -> normalised;
# pending and running are not terminal.
RUN_OUTCOMES = {
    "succeeded": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "timed_out": RunStatus.TIMED_OUT,
}
ERROR_OUTCOMES = (RunStatus.FAILED, RunStatus.TIMED_OUT)
# A tool call is a commandId group: first item running, last succeeded|failed.
# cancelled / timed_out commands are not documented: counted as failed
# (timed_out) or unknown (cancelled).
TOOL_OUTCOMES = {
    "succeeded": ToolStatus.SUCCEEDED,
    "failed": ToolStatus.FAILED,
    "timed_out": ToolStatus.FAILED,
    "cancelled": ToolStatus.UNKNOWN,
}
# The tool name (the `tool` label): the group's first item's type, else its title.
TOOL_NAME_KEYS = ("type", "title")  # type is a bounded identifier; title is free text
# The agent (the `agent` label, gen_ai.agent.id) is the runtimeId.
UNKNOWN_AGENT = "unknown"

# Compact activity item as held in an open run's data (a JSON list).
(
    I_ID,
    I_TIME,
    I_CATEGORY,
    I_LEVEL,
    I_SEVERITY,
    I_STATUS,
    I_TITLE,
    I_TYPE,
    I_MESSAGE,
    I_COMMAND,
    I_CORRELATION,
    I_CONTEXT,
    I_PAGE,
    I_ARTIFACT,
) = range(14)
Item = list[object]


def _known(value: str | None, allowed: frozenset[str]) -> str:
    return value if value in allowed else "unknown"


def parse_item(source: str, obj: object) -> tuple[Item, str, str, str]:
    """One activity item -> (compact item, runId, runtimeId, runtimeKind).
    Raises BadRecordError: a required field missing (missing_field), of the
    wrong type (bad_type) or a bad `time` (bad_timestamp). Unknown enum
    values are kept as "unknown"."""
    f = Fields(source, obj)
    item_id = f.str("id")
    run_id = f.str("runId")
    runtime_id = f.str("runtimeId")
    runtime_kind = _known(f.str("runtimeKind").lower(), RUNTIME_KINDS)
    category = _known(f.str("category").lower(), CATEGORIES)
    level = _known(f.str("level").lower(), LEVELS)
    severity = parse_enum(Severity, f.str("severity"), Severity.UNKNOWN).value
    f.str("time")  # null or "" is a missing field, not a bad timestamp
    at = f.time("time")
    title = f.str("title")
    type_ = f.str("type")
    raw_status = f.opt_str("status")
    status = NO_STATUS if raw_status is None else _known(raw_status.lower(), ITEM_STATUSES)
    item: Item = [
        item_id,
        at.isoformat(),
        category,
        level,
        severity,
        status,
        title,
        type_,
        f.opt_str("message"),
        f.opt_str("commandId"),
        f.opt_str("correlationId"),
        f.opt_str("contextId"),
        f.opt_str("pageId"),
        f.opt_str("artifactId"),
    ]
    return item, run_id, runtime_id, runtime_kind


def parse_listed_run(source: str, obj: object) -> dict[str, object]:
    """One run of GET /v1/runs -> the listing info kept in open-run data."""
    f = Fields(source, obj)
    started, ended = f.opt_time("startedAt"), f.opt_time("endedAt")
    return {
        "id": f.str("id"),
        "status": f.str("status").lower(),
        "created": f.time("createdAt").isoformat(),
        "started": started.isoformat() if started else None,
        "ended": ended.isoformat() if ended else None,
        "runtime": f.opt_str("runtimeId"),
        "space": f.opt_str("spaceId"),
    }


def item_event(item: Item) -> ActivityEvent:
    """The item as an ActivityEvent: one count in agent_activity_events_total
    (category, severity, status) and a span event (type as its name)."""
    attrs: list[tuple[str, AttrValue]] = [
        ("agent_activity.event.id", cast(str, item[I_ID])),
        ("agent_activity.event.title", cast(str, item[I_TITLE])),
        ("agent_activity.event.category", cast(str, item[I_CATEGORY])),
        ("agent_activity.event.level", cast(str, item[I_LEVEL])),
        ("agent_activity.event.severity", cast(str, item[I_SEVERITY])),
        ("agent_activity.event.status", cast(str, item[I_STATUS])),
    ]
    for key, i in (
        ("agent_activity.event.command_id", I_COMMAND),
        ("agent_activity.event.correlation_id", I_CORRELATION),
        ("agent_activity.event.context_id", I_CONTEXT),
        ("agent_activity.event.page_id", I_PAGE),
        ("agent_activity.event.artifact_id", I_ARTIFACT),
    ):
        if item[i] is not None:
            attrs.append((key, cast(str, item[i])))
    return ActivityEvent(
        id=cast(str, item[I_ID]),
        name=cast(str, item[I_TYPE]),
        time=parse_time(item[I_TIME]),
        category=cast(str, item[I_CATEGORY]),
        severity=parse_enum(Severity, item[I_SEVERITY], Severity.UNKNOWN),
        status=cast(str, item[I_STATUS]),
        attributes=tuple(attrs),
    )


class BctrlSource(PlatformSource):
    PLATFORM = PLATFORM

    def __init__(
        self,
        config: SourceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        opts = config.options
        self._level = cast(str | None, opts.get("level"))
        categories = cast("tuple[str, ...] | list[str] | None", opts.get("categories"))
        self._categories = list(categories) if categories else None
        runs = cast("tuple[str, ...] | list[str] | None", opts.get("runs"))
        self._fixed_runs = list(runs) if runs is not None else None
        self._page_size = int(cast(int, opts.get("page_size", 100)))
        self._lookback = timedelta(seconds=float(cast(float, opts.get("lookback", 30.0))))
        self._start_from = timedelta(seconds=config.start_from)
        if self._fixed_runs is not None and self._categories and SYSTEM_CATEGORY not in self._categories:
            log.warning(
                "categories leave out 'system': with fixed run ids no run can be seen to end, "
                "each is exported as incomplete after runs.max_open_age",
                extra={"source": config.name},
            )
        auth = {"Authorization": f"Bearer {config.secret or ''}"}
        super().__init__(config, auth, transport=transport, stop=stop)

    def probe(self) -> str:
        if self._fixed_runs:
            path = ACTIVITY_PATH.format(id=self._fixed_runs[0])
            items = envelope(self.name, self._client.get_json(path, {"limit": 1}), "items")
            return f"ok: GET {path} returned {len(items) if isinstance(items, list) else 0} item(s)"
        runs = envelope(self.name, self._client.get_json(RUNS_PATH, {"limit": 1}), "data")
        return f"ok: GET {RUNS_PATH} returned {len(runs) if isinstance(runs, list) else 0} run(s)"

    # -- polling -----------------------------------------------------------

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        if self._fixed_runs is not None:
            yield from self._adopt_fixed_runs(ctx)
        else:
            yield from self._discover_runs(ctx)
        # Each run's activity is read from the state handed in, never read
        # back: its batches can be committed in groups.
        yield from grouped(batch for open_run in ctx.state.open_runs() for batch in self._read_activity(ctx, open_run))
        yield Batch(caught_up_to=ctx.now)

    def _adopt_fixed_runs(self, ctx: PollContext) -> Iterator[Batch]:
        batch = Batch()
        for run_id in self._fixed_runs or ():
            if _done(ctx, batch, run_id) or run_id in batch.open_upserts or ctx.state.open_run(run_id):
                continue
            batch.open_upserts[run_id] = OpenRun(
                run_id=run_id, agent=UNKNOWN_AGENT, opened_at=ctx.now.timestamp(), data=_new_data(None)
            )
        if batch.open_upserts:
            yield batch

    def _discover_runs(self, ctx: PollContext) -> Iterator[Batch]:
        """Read GET /v1/runs newest first down to `watermark - lookback`."""
        watermark = _time_or(ctx.checkpoint.get("watermark"), ctx.now - self._start_from)
        cutoff = watermark - self._lookback
        newest = watermark
        guard = CursorGuard(self.name)
        cursor: str | None = None
        while True:
            if cursor is not None:
                guard.check(cursor)
            body = self._client.get_json(RUNS_PATH, {"limit": self._page_size, "cursor": cursor})
            rows = envelope(self.name, body, "data")
            next_cursor = _cursor(self.name, envelope(self.name, body, "nextCursor"))
            if not isinstance(rows, list):
                raise BadResponseError(self.name, f"GET {RUNS_PATH}: 'data' is not a list")
            batch = Batch()
            reached_cutoff = False
            for row in rows:
                batch.records["run"] = batch.records.get("run", 0) + 1
                try:
                    listed = parse_listed_run(self.name, row)
                except BadRecordError as err:
                    _reject_once(ctx, batch, err, ctx.now.timestamp())
                    continue
                created = parse_time(listed["created"])
                newest = max(newest, created)
                if created < cutoff:
                    reached_cutoff = True  # newest first: the rest of the window is read
                self._note_listed_run(ctx, batch, listed, discover=created >= cutoff)
            last = next_cursor is None or reached_cutoff
            if last:
                batch.checkpoint = {"watermark": newest.isoformat()}
                batch.seen_prune_before = (newest - self._lookback - PRUNE_MARGIN).timestamp()
            yield batch
            if last:
                return
            cursor = next_cursor

    def _note_listed_run(self, ctx: PollContext, batch: Batch, listed: dict[str, object], *, discover: bool) -> None:
        """Open a newly listed run, or bring an open run's listing info up to
        date. Runs older than the window only update runs already open."""
        run_id = cast(str, listed.pop("id"))
        current = batch.open_upserts.get(run_id) or ctx.state.open_run(run_id)
        if current is None:
            if not discover or _done(ctx, batch, run_id):
                return
            data = _new_data(listed)
            batch.open_upserts[run_id] = OpenRun(
                run_id=run_id,
                agent=cast(str | None, listed["runtime"]) or UNKNOWN_AGENT,
                opened_at=ctx.now.timestamp(),
                data=data,
                finished=_listing_outcome(data) is not None,
            )
            return
        data = dict(current.data)
        before = cast(dict[str, object] | None, data.get("run")) or {}
        merged = {**before, **{k: v for k, v in listed.items() if v is not None}}
        if before.get("status") in RUN_OUTCOMES and merged["status"] not in RUN_OUTCOMES:
            merged["status"] = before["status"]  # a status going backwards: keep the terminal one
        if merged == before:
            return
        data["run"] = merged
        agent = current.agent
        if agent == UNKNOWN_AGENT and merged.get("runtime"):
            agent = cast(str, merged["runtime"])
        batch.open_upserts[run_id] = OpenRun(
            run_id=run_id,
            agent=agent,
            opened_at=current.opened_at,
            data=data,
            finished=current.finished or _listing_outcome(data) is not None,
        )

    def _read_activity(self, ctx: PollContext, open_run: OpenRun) -> Iterator[Batch]:
        """Follow one open run's activity from its stored cursor to the
        current end; export the run there if it is terminal."""
        run_id = open_run.run_id
        path = ACTIVITY_PATH.format(id=run_id)
        data = dict(open_run.data)
        agent = open_run.agent
        guard = CursorGuard(self.name)
        cursor = cast(str | None, data.get("cursor"))
        while True:
            if cursor is not None:
                guard.check(cursor)
            params: dict[str, object] = {"limit": self._page_size, "cursor": cursor, "level": self._level}
            if self._categories:
                params["categories"] = self._categories
            try:
                body = self._client.get_json(path, params)
            except BadResponseError as err:
                if err.status != 404:
                    raise
                yield self._drop_gone(ctx, open_run)
                return
            items = envelope(self.name, body, "items")
            next_cursor = _cursor(self.name, envelope(self.name, body, "nextCursor"))
            if not isinstance(items, list):
                raise BadResponseError(self.name, f"GET {path}: 'items' is not a list")
            batch = Batch()
            changed = self._ingest(batch, data, items)
            agent = _agent(agent, data)
            if next_cursor is not None and next_cursor != data.get("cursor"):
                data["cursor"] = next_cursor
                changed = True
            if next_cursor is None and (outcome := _outcome(data)) is not None:
                run = self._build_run(run_id, agent, data, outcome)
                batch.runs.append(run)
                batch.open_deletes.add(run_id)
                batch.seen_add[f"run:{run_id}"] = _key_time(data, run.started_at)
                yield batch
                return
            if changed:
                batch.open_upserts[run_id] = OpenRun(
                    run_id=run_id,
                    agent=agent,
                    opened_at=open_run.opened_at,
                    data=data,
                    finished=open_run.finished or _outcome(data) is not None,
                )
                yield batch
            if next_cursor is None:
                return  # nothing more yet: the next poll resumes from `cursor`
            data = dict(data)
            cursor = next_cursor

    def _ingest(self, batch: Batch, data: dict[str, object], raw: list[object]) -> bool:
        """Add the page's items not held yet to `data` (updated in place) and
        count each once in batch.events. Returns whether anything changed."""
        items = list(cast(list[Item], data.get("items") or []))
        bad = list(cast(list[str], data.get("bad") or []))
        known = {cast(str, i[I_ID]) for i in items} | set(bad)
        changed = False
        for obj in raw:
            raw_id = _raw_id(obj)
            if raw_id is not None and raw_id in known:
                continue  # a re-read (the last page again, a repeated page): changes nothing
            batch.records["activity"] = batch.records.get("activity", 0) + 1
            try:
                item, _, runtime_id, runtime_kind = parse_item(self.name, obj)
            except BadRecordError as err:
                batch.rejected.append(Rejected(reason=err.reason, record_id=err.record_id, detail=err.message))
                if raw_id is not None:
                    bad.append(raw_id)
                    known.add(raw_id)
                    changed = True
                continue
            known.add(cast(str, item[I_ID]))
            items.append(item)
            batch.events.append(item_event(item))
            data.setdefault("runtime", runtime_id)
            if data.get("kind") in (None, "unknown"):
                data["kind"] = runtime_kind
            changed = True
        if changed:
            data["items"], data["bad"] = items, bad
        return changed

    def _drop_gone(self, ctx: PollContext, open_run: OpenRun) -> Batch:
        log.warning(
            "run not found or not visible (HTTP 404 on its activity): dropped",
            extra={"source": self.name, "record_id": open_run.run_id},
        )
        batch = Batch()
        batch.open_deletes.add(open_run.run_id)
        batch.seen_add[f"gone:{open_run.run_id}"] = _key_time(open_run.data, ctx.now)
        return batch

    # -- runs ----------------------------------------------------------------

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        return self._build_run(
            open_run.run_id,
            open_run.agent,
            open_run.data,
            (RunStatus.INCOMPLETE, "incomplete"),
            # Last resort for a fixed run never seen to do anything: when
            # the exporter first asked for it (no platform time exists).
            fallback_start=datetime.fromtimestamp(open_run.opened_at, tz=timezone.utc),
        )

    def _build_run(
        self,
        run_id: str,
        agent: str,
        data: dict[str, object],
        outcome: tuple[RunStatus, str],
        fallback_start: datetime | None = None,
    ) -> Run:
        status, raw_status = outcome
        listed = cast(dict[str, object] | None, data.get("run")) or {}
        items = sorted(cast(list[Item], data.get("items") or []), key=lambda i: parse_time(i[I_TIME]))
        system = [i for i in items if i[I_CATEGORY] == SYSTEM_CATEGORY]
        first_time = parse_time(items[0][I_TIME]) if items else None
        started = (
            _opt_time(listed.get("started"))
            or (parse_time(system[0][I_TIME]) if system else None)
            or _opt_time(listed.get("created"))
            or first_time
            or fallback_start
        )
        assert started is not None, "an open run has listing info, items, or an opened_at"
        ended: datetime | None = None
        error_message = None
        if status is not RunStatus.INCOMPLETE:
            ended = (
                _opt_time(listed.get("ended"))
                or (parse_time(system[-1][I_TIME]) if system else None)
                or (parse_time(items[-1][I_TIME]) if items else None)
                or started
            )
        if status in ERROR_OUTCOMES:
            errors = [i for i in items if i[I_SEVERITY] == Severity.ERROR.value]
            if errors:
                error_message = cast(str | None, errors[-1][I_MESSAGE] or errors[-1][I_TITLE])
        groups: dict[str, list[Item]] = {}
        run_events: list[ActivityEvent] = []
        for item in items:
            command = cast(str | None, item[I_COMMAND])
            if command:
                groups.setdefault(command, []).append(item)
            else:
                run_events.append(item_event(item))
        attrs: list[tuple[str, AttrValue]] = [
            ("agent_activity.runtime.kind", cast(str | None, data.get("kind")) or "unknown"),
            ("agent_activity.runtime.id", cast(str | None, listed.get("runtime") or data.get("runtime")) or agent),
        ]
        if listed.get("space"):
            attrs.append(("agent_activity.space_id", cast(str, listed["space"])))
        return Run(
            source=self.name,
            platform=PLATFORM,
            base_url=self.base_url,
            run_id=run_id,
            agent_id=agent,
            agent_name=agent,
            status=status,
            raw_status=raw_status,
            started_at=started,
            ended_at=ended,
            error_type=status.value if status in ERROR_OUTCOMES else None,
            error_message=error_message,
            tool_calls=tuple(_tool_call(command, group) for command, group in groups.items()),
            events=tuple(run_events),
            attributes=tuple(attrs),
        )


# -- helpers -------------------------------------------------------------------


def _new_data(listed: dict[str, object] | None) -> dict[str, object]:
    return {"v": DATA_VERSION, "run": listed, "cursor": None, "items": [], "bad": []}


def _done(ctx: PollContext, batch: Batch, run_id: str) -> bool:
    """Exported already, or gone (404): never asked for again."""
    keys = (f"run:{run_id}", f"gone:{run_id}")
    return any(k in batch.seen_add or ctx.state.is_seen(k) for k in keys)


def _listing_outcome(data: dict[str, object]) -> tuple[RunStatus, str] | None:
    listed = cast(dict[str, object] | None, data.get("run")) or {}
    raw = listed.get("status")
    if isinstance(raw, str) and raw in RUN_OUTCOMES:
        return RUN_OUTCOMES[raw], raw
    return None


def _outcome(data: dict[str, object]) -> tuple[RunStatus, str] | None:
    """Terminal status of a run: the listing's, else the last system item
    with a terminal status; None while the run goes on."""
    listed = _listing_outcome(data)
    if listed is not None:
        return listed
    for item in reversed(cast(list[Item], data.get("items") or [])):
        raw = item[I_STATUS]
        if item[I_CATEGORY] == SYSTEM_CATEGORY and isinstance(raw, str) and raw in RUN_OUTCOMES:
            return RUN_OUTCOMES[raw], raw
    return None


def _agent(current: str, data: dict[str, object]) -> str:
    if current != UNKNOWN_AGENT:
        return current
    listed = cast(dict[str, object] | None, data.get("run")) or {}
    return cast(str | None, listed.get("runtime") or data.get("runtime")) or UNKNOWN_AGENT


def _tool_call(command_id: str, group: list[Item]) -> ToolCall:
    """A commandId group: its first item starts the call, its last item with
    a terminal status ends it, the items between are the call's events."""
    first = group[0]
    ends = [j for j in range(1, len(group)) if group[j][I_STATUS] in TOOL_OUTCOMES]
    if not ends and group[0][I_STATUS] in TOOL_OUTCOMES:
        ends = [0]  # a one-item group that is already over
    end = group[ends[-1]] if ends else None
    if end is not None:
        raw_status = cast(str, end[I_STATUS])
        status = TOOL_OUTCOMES[raw_status]
        middle = [g for j, g in enumerate(group) if j not in (0, ends[-1])]
    else:
        raw_status = cast(str, group[-1][I_STATUS])
        status = ToolStatus.RUNNING if raw_status in ("running", "pending") else ToolStatus.UNKNOWN
        middle = group[1:]
    name = next((cast(str, first[i]) for i in _TOOL_NAME_INDEXES if first[i]), "unknown")
    error = None
    if status is ToolStatus.FAILED and end is not None:
        error = cast(str | None, end[I_MESSAGE] or end[I_TITLE])
    attrs: Attributes = (("agent_activity.command.type", cast(str, first[I_TYPE])),)
    return ToolCall(
        id=command_id,
        name=name,
        started_at=parse_time(first[I_TIME]),
        ended_at=parse_time(end[I_TIME]) if end is not None else None,
        status=status,
        raw_status=raw_status,
        error_message=error,
        attributes=attrs,
        events=tuple(item_event(i) for i in middle),
    )


_TOOL_NAME_INDEXES = tuple({"title": I_TITLE, "type": I_TYPE}[k] for k in TOOL_NAME_KEYS)


def _raw_id(obj: object) -> str | None:
    """An item's id as Fields reads it, for de-duplication before parsing."""
    value = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return None
    return str(value)


def _reject_once(ctx: PollContext, batch: Batch, err: BadRecordError, at: float) -> None:
    """A listed run that does not parse: counted once, not on every re-read
    of the listing window."""
    key = f"bad:{err.record_id}"
    if err.record_id != "?" and (key in batch.seen_add or ctx.state.is_seen(key)):
        return
    batch.rejected.append(Rejected(reason=err.reason, record_id=err.record_id, detail=err.message))
    if err.record_id != "?":
        batch.seen_add[key] = at


def _key_time(data: dict[str, object], default: datetime) -> float:
    """Dedup keys of listed runs age with the run's createdAt, so pruning
    behind the listing window forgets only what it can no longer list."""
    listed = cast(dict[str, object] | None, data.get("run")) or {}
    created = _opt_time(listed.get("created"))
    return (created or default).timestamp()


def _cursor(source: str, value: object) -> str | None:
    """`nextCursor`: a string, or null (an empty string read as null)."""
    if isinstance(value, str):
        return value or None
    if value is None:
        return None
    raise BadResponseError(source, "'nextCursor' is neither a string nor null")


def _opt_time(value: object) -> datetime | None:
    return parse_time(value) if isinstance(value, str) else None


def _time_or(value: object, default: datetime) -> datetime:
    return parse_time(value) if isinstance(value, str) else default
