"""agent_activities: per-agent run lists and run detail,
GET /api/agents/{uid}/activities[/{run_uid}].

Reading strategy (docs/platforms.md, agent_activities): page numbers shift while new
runs arrive, so each configured agent is read in a window that does not move
under the reader: `completed_on_from=<watermark - lookback>` and
`completed_on_to=<now at the window's start>`, `sort=+completed_on`,
`has_completed=true`, pages 1.._meta.total_pages. A run that finishes later
has a later completed_on and lands after the pages already read. Runs are
de-duplicated by id (seen key `run:<id>`), each finished run is exported
once, with its detail (`result.step_history`, `result.timeline`, `error`,
`token_usage`) fetched when `fetch_detail` is on. The watermark moves to the
window's upper bound once every page of the window is read; each page is
committed with the next page number, so a restart resumes mid-window.

In-flight runs (`has_completed=false`) are tracked as open runs for the
agent_runs_in_progress gauge; they are exported when they appear in a later
completed window. The in-flight listing costs one more request, so it is
asked only when it can matter: when the completed window of this poll found
newly finished runs, when the agent has runs open, and otherwise every
`inflight_every` polls (default 5; 1 = every poll, 0 = never). An idle agent
therefore costs 1 + 1/inflight_every requests per poll.

A run's status may go backwards (docs/platforms.md, "What every reader
must survive"): a finished run is now and then shown in an earlier state (pending
or running, completed_on, token_usage and error null, result cut). Such an
answer is never exported and never loses the run:
- an item of the completed window shown unfinished (the server filtered it
  as completed, so it has ended) is kept open, marked for re-check: its real
  completed_on is behind the watermark once the window is committed, so no
  later window brings it back;
- a run the listing shows finished whose detail shows it unfinished is kept
  open, marked for re-check, and not exported with that partial detail;
- an open run that left the in-flight list is marked for re-check too,
  rather than waiting for a completed window that may be behind already.
A run marked for re-check is asked by id (the detail GET) once per later
poll, after the completed window (which may export it first), until the
detail shows it finished; it is then exported once, status and times from
the detail. Only marked runs cost a request; runs.max_open_age bounds the
wait (the scheduler expires the run as incomplete). A detail 404 on re-check
exports the run from its listing (detail_missing) when the listing showed it
finished, else stops the re-checks and leaves the run to expire. A run
already exported (seen key) is skipped wherever it shows up again.

Checkpoint: {"agents": {uid: {"watermark": iso, "inflight_wait": int,
"window": {"from": iso, "to": iso, "page": int, "per_page": int|null}}}};
"window" is present only while a window is part-read.

Open run data: {"listing": <listing attributes>, "recheck": reason}; the
reason (RECHECK_*) is present while the run is to be asked by id, absent for
a run tracked from the in-flight list, false once a re-check answered 404
for a run not known finished; an open run without the key but marked
finished (state written before re-checks existed) is re-checked too.
A run marked for re-check is stored with finished=true (it has ended at the
platform), so it does not count as in progress.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import cast

import httpx

from exporter.config import SourceConfig
from exporter.model import (
    ActivityEvent,
    AttrValue,
    Batch,
    OpenRun,
    Rejected,
    Run,
    RunStatus,
    Severity,
    Step,
    ToolCall,
    ToolStatus,
    format_time,
    parse_time,
)
from exporter.sources.base import CursorGuard, Fields, PlatformSource, PollContext, envelope, parse_each
from exporter.sources.http import BadRecordError, BadResponseError

log = logging.getLogger(__name__)

PLATFORM = "agent_activities"
LIST_PATH = "/api/agents/{agent}/activities"
DETAIL_PATH = "/api/agents/{agent}/activities/{run}"
DETAIL_FIELDS = "trigger_payload,result,error,token_usage"
INFLIGHT_EVERY = 5  # default of options["inflight_every"]
SEEN_MARGIN = timedelta(minutes=10)  # dedup keys are kept this long past the oldest re-read window

# Where the vendor's pages are silent, the readings this source follows, in one
# place (docs/platforms.md lists them): the status values, their normalised form.
RUN_STATUSES: Mapping[str, RunStatus] = {
    "pending": RunStatus.RUNNING,
    "running": RunStatus.RUNNING,
    "completed": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "stopped": RunStatus.CANCELLED,  # there is no timed-out state
}
TOOL_EVENT = "tool_called"  # a timeline entry with `tool` is a tool call
FAILED_EVENT = "run_failed"
EVENT_CATEGORY = "timeline"
# The bounded `status` label of a timeline event: its name's last word, when known.
EVENT_STATUSES = frozenset(
    {"defined", "started", "completed", "failed", "cancelled", "stopped", "called", "created", "updated"}
)
ERROR_OUTPUT_STATUSES = frozenset({"error", "failed", "failure"})
# Listing attributes kept as span attributes (ids, not content).
EXTRA_ATTRIBUTES = ("agent_version_uid", "workflow_id", "approach", "scratchpad_uid")
# Why an open run is asked by id (open run data "recheck").
RECHECK_LISTED_UNFINISHED = "listed_unfinished"  # in the completed window, shown unfinished
RECHECK_DETAIL_BEHIND = "detail_behind"  # listed finished, the detail showed an earlier state
RECHECK_LEFT_INFLIGHT = "left_inflight"  # no longer in the in-flight list
RECHECK_GONE = False  # the detail answered 404 for a run not known finished: wait for expiry


@dataclass(frozen=True, slots=True)
class Listed:
    """One item of a run listing, validated; `data` is its JSON form, kept in
    an open run's working state."""

    run_id: str
    status: RunStatus
    completed_on: datetime | None
    data: dict[str, object]

    @property
    def finished(self) -> bool:
        return self.completed_on is not None and self.status is not RunStatus.RUNNING


def parse_listed(source: str, item: object) -> Listed:
    """One `agent-runs` resource -> Listed; raises BadRecordError."""
    f = Fields(source, item)
    run_id = f.str("id")
    attrs = Fields(source, f.obj.get("attributes"), run_id)
    raw_status = attrs.opt_str("status") or "unknown"
    created = attrs.opt_time("created_on")
    started = attrs.opt_time("started_on")
    completed = attrs.opt_time("completed_on")
    if started is None and created is None:
        raise BadRecordError(source, "missing_field", run_id, "started_on")
    data: dict[str, object] = {
        "status": raw_status,
        "created_on": created.isoformat() if created else None,
        "started_on": started.isoformat() if started else None,
        "completed_on": completed.isoformat() if completed else None,
        "sandbox": attrs.opt_bool("sandbox"),
        "trigger_type": attrs.opt_str("trigger_type"),
    }
    for key in EXTRA_ATTRIBUTES:
        data[key] = attrs.opt_str(key)
    if "token_usage" in attrs.obj:  # only when asked for with fields[agent-runs]
        data["token_usage"] = attrs.obj["token_usage"]
    return Listed(run_id=run_id, status=run_status(raw_status), completed_on=completed, data=data)


def run_status(raw: str) -> RunStatus:
    return RUN_STATUSES.get(raw.lower(), RunStatus.UNKNOWN)


def _detail_behind(attributes: Mapping[str, object]) -> bool:
    """A detail showing its run unfinished (pending/running, or completed_on
    null) while it has ended: an earlier state, never exported. Fields the
    detail leaves out contradict nothing."""
    status = attributes.get("status")
    if isinstance(status, str) and run_status(status) is RunStatus.RUNNING:
        return True
    return "completed_on" in attributes and attributes["completed_on"] is None


def _needs_recheck(open_run: OpenRun) -> bool:
    """Marked for re-check by id; state from before re-checks existed: every
    run that left the in-flight list."""
    return bool(open_run.data.get("recheck", open_run.finished))


class AgentActivitiesSource(PlatformSource):
    PLATFORM = PLATFORM

    def __init__(
        self,
        config: SourceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        opts = config.options
        self._agents = tuple(str(a) for a in cast(list[object], opts.get("agents") or ()))
        self._per_page = int(cast(int, opts.get("per_page", 50)))
        self._lookback = timedelta(seconds=float(cast(float, opts.get("lookback", 30.0))))
        self._fetch_detail = bool(opts.get("fetch_detail", True))
        self._inflight_every = int(cast(int, opts.get("inflight_every", INFLIGHT_EVERY)))
        self._start_from = timedelta(seconds=config.start_from)
        self._failing: set[str] = set()  # agents whose last read failed: log the change once
        header = str(opts.get("auth_header") or "Authorization")
        scheme = str(opts.get("auth_scheme", "Bearer") or "")
        token = config.secret or ""
        auth = {header: f"{scheme} {token}" if scheme else token}
        super().__init__(config, auth, transport=transport, stop=stop)

    def probe(self) -> str:
        if not self._agents:
            return "no agents configured"
        agent = self._agents[0]
        body = self._client.get_json(LIST_PATH.format(agent=agent), {"per_page": 1, "page": 1})
        envelope(self.name, body, "data", "items")
        meta = envelope(self.name, body, "data", "_meta")
        total = meta.get("total_items") if isinstance(meta, dict) else None
        return f"ok: agent {agent} lists {total if isinstance(total, int) else 'some'} run(s)"

    # -- polling -----------------------------------------------------------

    def poll(self, ctx: PollContext) -> Iterator[Batch]:
        saved = cast(Mapping[str, object], ctx.checkpoint.get("agents") or {})
        agents = {uid: dict(cast(Mapping[str, object], saved.get(uid) or {})) for uid in self._agents}
        open_counts: dict[str, int] = {}
        rechecks: dict[str, list[str]] = {}  # agent -> open runs to ask by id (bounded by the open runs)
        for open_run in ctx.state.open_runs():
            if not open_run.finished:
                open_counts[open_run.agent] = open_counts.get(open_run.agent, 0) + 1
            if _needs_recheck(open_run):
                rechecks.setdefault(open_run.agent, []).append(open_run.run_id)
        failures: list[BadResponseError] = []
        for uid in self._agents:
            try:
                yield from self._poll_agent(ctx, uid, agents, open_counts.get(uid, 0), rechecks.get(uid, []))
            except BadResponseError as err:
                # One agent's bad answer (unknown uid: 404, an HTML page, a
                # page loop) must not hold back the others; the poll still
                # fails at its end, and this agent's checkpoint stays.
                if uid not in self._failing:
                    log.warning("agent %s not read: %s", uid, err.message, extra={"source": self.name})
                    self._failing.add(uid)
                failures.append(err)
                continue
            if uid in self._failing:
                log.info("agent %s read again", uid, extra={"source": self.name})
                self._failing.discard(uid)
        final = Batch(checkpoint=_checkpoint(agents))
        watermarks = [_time_or(a.get("watermark"), None) for a in agents.values()]
        if watermarks and all(w is not None for w in watermarks):
            oldest = min(cast(list[datetime], watermarks))
            final.caught_up_to = oldest
            final.seen_prune_before = (oldest - self._lookback - SEEN_MARGIN).timestamp()
        yield final
        if failures:
            raise failures[0]

    def _poll_agent(
        self,
        ctx: PollContext,
        uid: str,
        agents: dict[str, dict[str, object]],
        open_count: int,
        recheck_ids: list[str],
    ) -> Iterator[Batch]:
        st = agents[uid]
        watermark = _time_or(st.get("watermark"), ctx.now - self._start_from) or ctx.now
        found = False
        asked: set[str] = set()  # runs whose detail this poll asked already (bounded by the window's runs)
        while True:
            window = cast(dict[str, object] | None, st.get("window"))
            if window is None:
                since = watermark - self._lookback
                window = {
                    "from": since.isoformat(),
                    "to": max(ctx.now, since).isoformat(),
                    "page": 1,
                    "per_page": None,
                }  # stored with the first page read, not before
            for batch, new in self._read_window(ctx, uid, st, window, agents, asked):
                found = found or new
                yield batch
            watermark = _time_or(st.get("watermark"), None) or ctx.now
            if watermark >= ctx.now:
                break  # else a window left part-read by an earlier poll: read on up to now
        # Runs marked for re-check before this poll and not settled by its window.
        yield from self._recheck(ctx, uid, recheck_ids, asked)
        wait = int(cast(int, st.get("inflight_wait", 0)))
        if self._inflight_every > 0 and (found or open_count > 0 or wait <= 0):
            yield from self._read_inflight(ctx, uid)
            st["inflight_wait"] = self._inflight_every - 1  # committed with the poll's last batch
        else:
            st["inflight_wait"] = max(0, wait - 1)

    def _read_window(
        self,
        ctx: PollContext,
        uid: str,
        st: dict[str, object],
        window: dict[str, object],
        agents: dict[str, dict[str, object]],
        asked: set[str],
    ) -> Iterator[tuple[Batch, bool]]:
        """Every page of one completed window; yields (batch, found new runs)."""
        guard = CursorGuard(self.name)
        page = int(cast(int, window.get("page") or 1))
        per_page = cast(int | None, window.get("per_page"))
        restarted = False
        while True:
            params: dict[str, object] = {
                "completed_on_from": format_time(parse_time(window["from"])),
                "completed_on_to": format_time(parse_time(window["to"])),
                "has_completed": "true",
                "sort": "+completed_on",
                "per_page": self._per_page,
                "page": page,
            }
            items, meta_page, meta_per_page, total_pages = self._fetch_page(uid, params)
            guard.check(str(meta_page))
            guard.check_page(items)
            if per_page is not None and meta_per_page != per_page and page > 1 and not restarted:
                # The server's page size changed since the resumed page was
                # committed: page numbers mean other runs now. Re-read the
                # window from its start (dedup makes that safe).
                page, per_page, restarted, guard = 1, meta_per_page, True, CursorGuard(self.name)
                continue
            per_page = meta_per_page
            batch = Batch()
            new = self._ingest_completed(ctx, uid, batch, items, asked)
            last = page >= total_pages or not _nonempty(items)
            if last:
                st["watermark"] = window["to"]
                st.pop("window", None)
            else:
                window = {**window, "page": page + 1, "per_page": per_page}
                st["window"] = window
            batch.checkpoint = _checkpoint(agents)
            yield batch, new
            if last:
                return
            page += 1

    def _fetch_page(self, uid: str, params: dict[str, object]) -> tuple[object, int, int, int]:
        """One listing page: (items, _meta.page, _meta.per_page, total pages).
        The server's page size is trusted, never the one asked for."""
        asked_page = int(cast(int, params["page"]))
        body = self._client.get_json(LIST_PATH.format(agent=uid), params)
        items = envelope(self.name, body, "data", "items")
        meta = envelope(self.name, body, "data", "_meta")
        if not isinstance(meta, dict):
            raise BadResponseError(self.name, "response 'data._meta' is not an object")
        page = _meta_int(meta, "page", asked_page)
        per_page = _meta_int(meta, "per_page", 0)
        total_pages = meta.get("total_pages")
        if not _is_count(total_pages):
            total_items = meta.get("total_items")
            if not _is_count(total_items) or per_page <= 0:
                raise BadResponseError(self.name, "response '_meta' gives neither total_pages nor total_items/per_page")
            total_pages = math.ceil(cast(int, total_items) / per_page)
        return items, page, per_page, cast(int, total_pages)

    def _ingest_completed(self, ctx: PollContext, uid: str, batch: Batch, items: object, asked: set[str]) -> bool:
        new = False
        for listed in parse_each(self.name, items, lambda item: parse_listed(self.name, item), batch, "run"):
            key = f"run:{listed.run_id}"
            if key in batch.seen_add or ctx.state.is_seen(key):
                continue  # exported already (overlap, repeated page, status going backwards)
            if not listed.finished:
                # The server filtered it as completed, yet it is shown unfinished
                # (status gone backwards): it has ended, and its completed_on is
                # behind the watermark once this window is committed. Ask by id.
                self._hold(ctx, batch, uid, listed.run_id, listed.data, RECHECK_LISTED_UNFINISHED)
                continue
            run = self._finished_run(uid, listed, batch, asked)
            if run is None:  # the detail shows an earlier state: not exported from it
                self._hold(ctx, batch, uid, listed.run_id, listed.data, RECHECK_DETAIL_BEHIND)
                continue
            new = True
            self._export(batch, run, cast(datetime, listed.completed_on))
        return new

    def _export(self, batch: Batch, run: Run, completed_on: datetime) -> None:
        batch.runs.append(run)
        batch.events.extend(run.events)
        batch.seen_add[f"run:{run.run_id}"] = completed_on.timestamp()
        batch.open_deletes.add(run.run_id)

    def _hold(
        self, ctx: PollContext, batch: Batch, uid: str, run_id: str, listing: dict[str, object], reason: str
    ) -> None:
        """Keep a run that has ended but could not be exported open, marked
        for re-check by id on later polls (finished: not in progress)."""
        current = batch.open_upserts.get(run_id) or ctx.state.open_run(run_id)
        if current is not None and current.finished and current.data.get("recheck"):
            old = cast(dict[str, object], current.data.get("listing") or {})
            if old.get("completed_on") and not listing.get("completed_on"):
                listing = old  # keep what the platform showed when it was right
        data: dict[str, object] = {"listing": listing, "recheck": reason}
        if current is not None and current.finished and current.data == data:
            return  # unchanged: no write
        batch.open_upserts[run_id] = OpenRun(
            run_id=run_id,
            agent=uid,
            opened_at=current.opened_at if current else ctx.now.timestamp(),
            data=data,
            finished=True,
        )

    def _recheck(self, ctx: PollContext, uid: str, run_ids: list[str], asked: set[str]) -> Iterator[Batch]:
        """Ask each run marked for re-check by id: export it once its detail
        shows it finished, else leave it open for the next poll. One batch per
        run that changed, committed before the next request."""
        for run_id in run_ids:
            if run_id in asked:
                continue  # this poll's window asked its detail already
            open_run = ctx.state.open_run(run_id)
            if open_run is None or not _needs_recheck(open_run):
                continue  # exported by this poll's window, or listed in flight again
            batch = Batch()
            if ctx.state.is_seen(f"run:{run_id}"):
                batch.open_deletes.add(run_id)  # exported already: nothing to wait for
            else:
                self._recheck_one(uid, open_run, batch)
            if batch.runs or batch.open_deletes or batch.open_upserts or batch.rejected or batch.records:
                yield batch

    def _recheck_one(self, uid: str, open_run: OpenRun, batch: Batch) -> None:
        run_id = open_run.run_id
        listing = cast(dict[str, object], open_run.data.get("listing") or {})
        attributes = self._get_detail(uid, run_id, with_fields=self._fetch_detail)
        if attributes is None:  # 404: the run was deleted
            completed = _time_or(listing.get("completed_on"), None)
            if completed is not None and run_status(str(listing.get("status") or "unknown")) is not RunStatus.RUNNING:
                run = self._build_run(uid, run_id, listing, None, batch, detail_missing=True)
                self._export(batch, run, completed)
            else:  # never seen finished: nothing to export it from; max_open_age ends it
                batch.open_upserts[run_id] = OpenRun(
                    run_id=run_id,
                    agent=open_run.agent,
                    opened_at=open_run.opened_at,
                    data={**open_run.data, "recheck": RECHECK_GONE},
                    finished=True,
                )
            return
        _count(batch, "run_detail")
        try:
            shown = parse_listed(self.name, {"id": run_id, "attributes": attributes})
        except BadRecordError as err:
            batch.rejected.append(Rejected(reason=err.reason, record_id=err.record_id, detail=err.message))
            return  # ask again next poll
        if not shown.finished or _detail_behind(attributes):
            return  # still an earlier state (or really still running): ask again next poll
        # Status and times from the detail; what it leaves out from the listing.
        merged = {**listing, **{k: v for k, v in shown.data.items() if v is not None}}
        run = self._build_run(uid, run_id, merged, attributes if self._fetch_detail else None, batch)
        self._export(batch, run, cast(datetime, shown.completed_on))

    def _read_inflight(self, ctx: PollContext, uid: str) -> Iterator[Batch]:
        """Runs still in flight become open runs; open runs of this agent no
        longer listed have ended: they stop counting as in progress and are
        marked for re-check by id (a completed window may export them first)."""
        guard = CursorGuard(self.name)
        listed_ids: set[str] = set()  # bounded by the agent's runs in flight
        page = 1
        while True:
            params: dict[str, object] = {
                "has_completed": "false",
                "sort": "+created_on",
                "per_page": self._per_page,
                "page": page,
            }
            items, meta_page, _, total_pages = self._fetch_page(uid, params)
            guard.check(str(meta_page))
            guard.check_page(items)
            batch = Batch()
            for listed in parse_each(
                self.name, items, lambda item: parse_listed(self.name, item), batch, "inflight_run"
            ):
                if listed.finished or ctx.state.is_seen(f"run:{listed.run_id}"):
                    continue  # ended meanwhile: the completed window has it
                listed_ids.add(listed.run_id)
                self._track_open(ctx, batch, uid, listed)
            yield batch
            if page >= total_pages or not _nonempty(items):
                break
            page += 1
        batch = Batch()
        for open_run in list(ctx.state.open_runs()):
            if open_run.agent == uid and not open_run.finished and open_run.run_id not in listed_ids:
                # Ended (or missed by a shifting page): ask it by id on the next
                # polls rather than wait for a completed window that may be
                # behind the watermark already.
                batch.open_upserts[open_run.run_id] = OpenRun(
                    run_id=open_run.run_id,
                    agent=uid,
                    opened_at=open_run.opened_at,
                    data={**open_run.data, "recheck": RECHECK_LEFT_INFLIGHT},
                    finished=True,
                )
        if batch.open_upserts:
            yield batch

    def _track_open(self, ctx: PollContext, batch: Batch, uid: str, listed: Listed) -> None:
        current = batch.open_upserts.get(listed.run_id) or ctx.state.open_run(listed.run_id)
        data: dict[str, object] = {"listing": listed.data}
        if current is not None and not current.finished and current.data == data:
            return  # unchanged: no write
        batch.open_upserts[listed.run_id] = OpenRun(
            run_id=listed.run_id,
            agent=uid,
            opened_at=current.opened_at if current else ctx.now.timestamp(),
            data=data,
            finished=False,
        )

    # -- building runs -------------------------------------------------------

    def _finished_run(self, uid: str, listed: Listed, batch: Batch, asked: set[str]) -> Run | None:
        """The run a finished listing item describes, with its detail; None
        when the detail contradicts the listing (shows the run unfinished)."""
        if not self._fetch_detail:
            return self._build_run(uid, listed.run_id, listed.data, None, batch)
        asked.add(listed.run_id)
        attributes = self._get_detail(uid, listed.run_id, with_fields=True)
        if attributes is None:
            return self._build_run(uid, listed.run_id, listed.data, None, batch, detail_missing=True)
        _count(batch, "run_detail")
        if _detail_behind(attributes):
            return None
        return self._build_run(uid, listed.run_id, listed.data, attributes, batch)

    def _get_detail(self, uid: str, run_id: str, *, with_fields: bool) -> dict[str, object] | None:
        """The detail's attributes; None when the run is not found (404)."""
        params: dict[str, object] = {"fields[agent-runs]": DETAIL_FIELDS} if with_fields else {}
        try:
            body = self._client.get_json(DETAIL_PATH.format(agent=uid, run=run_id), params)
        except BadResponseError as err:
            if err.status != 404 and "HTTP 404" not in err.message:
                raise  # only "run not found" means the run was deleted
            return None
        attributes = envelope(self.name, body, "data", "attributes")
        if not isinstance(attributes, dict):
            raise BadResponseError(self.name, "response 'data.attributes' is not an object")
        return cast(dict[str, object], attributes)

    def expire(self, open_run: OpenRun, now: datetime) -> Run:
        listing = dict(cast(dict[str, object], open_run.data.get("listing") or {}))
        if not listing.get("started_on") and not listing.get("created_on"):  # never, for parsed listings
            listing["created_on"] = datetime.fromtimestamp(open_run.opened_at, timezone.utc).isoformat()
        return self._build_run(open_run.agent, open_run.run_id, listing, None, None, forced=RunStatus.INCOMPLETE)

    def _build_run(
        self,
        uid: str,
        run_id: str,
        listing: Mapping[str, object],
        detail: dict[str, object] | None,
        batch: Batch | None,
        *,
        detail_missing: bool = False,
        forced: RunStatus | None = None,
    ) -> Run:
        """A Run from the listing attributes (status, times) and, when
        fetched, the detail's extra fields (result, error, token_usage)."""
        raw_status = str(listing.get("status") or "unknown")
        status = forced or run_status(raw_status)
        started = _time_or(listing.get("started_on"), None) or cast(datetime, _time_or(listing.get("created_on"), None))
        ended = None if forced else _time_or(listing.get("completed_on"), None)
        rejects: list[Rejected] = batch.rejected if batch is not None else []
        extra = dict(detail or {})
        if "token_usage" not in extra and "token_usage" in listing:
            extra["token_usage"] = listing["token_usage"]
        attrs: list[tuple[str, AttrValue]] = [
            (f"agent_activity.{key}", cast(str, listing[key])) for key in EXTRA_ATTRIBUTES if listing.get(key)
        ]
        if detail_missing:
            attrs.append(("agent_activity.detail_missing", True))
        tokens = _token_usage(extra.get("token_usage"), run_id, rejects)
        error_type, error_message = _error(extra.get("error"))
        calls: tuple[ToolCall, ...] = ()
        steps: tuple[Step, ...] = ()
        events: tuple[ActivityEvent, ...] = ()
        output = None
        result = extra.get("result")
        if isinstance(result, dict):
            calls, steps, events = _result_records(self.name, run_id, result, ended, rejects, batch)
            rest = {k: v for k, v in result.items() if k not in ("step_history", "timeline")}
            output = _content(rest) if rest else None
        elif result is not None:
            rejects.append(Rejected(reason="bad_type", record_id=run_id, detail="result is not an object"))
        return Run(
            source=self.name,
            platform=PLATFORM,
            base_url=self.base_url,
            run_id=run_id,
            agent_id=uid,
            agent_name=uid,  # the API gives no agent names
            status=status,
            raw_status="incomplete" if forced else raw_status,
            started_at=started,
            ended_at=ended,
            trigger_type=cast(str | None, listing.get("trigger_type")),
            error_type=error_type if status is RunStatus.FAILED else None,
            error_message=error_message,
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            total_tokens=tokens[2],
            sandbox=cast(bool | None, listing.get("sandbox")),
            input=_content(extra["trigger_payload"]) if extra.get("trigger_payload") is not None else None,
            output=output,
            tool_calls=calls,
            steps=steps,
            events=events,
            attributes=tuple(attrs),
        )


# -- detail parsing ---------------------------------------------------------


@dataclass(slots=True)
class _StepRec:
    key: str
    action: str
    input: object
    output: object


@dataclass(slots=True)
class _Entry:
    index: int
    event: str
    at: datetime
    tool: str | None


def _result_records(
    source: str,
    run_id: str,
    result: dict[str, object],
    run_end: datetime | None,
    rejects: list[Rejected],
    batch: Batch | None,
) -> tuple[tuple[ToolCall, ...], tuple[Step, ...], tuple[ActivityEvent, ...]]:
    """`result.timeline` -> tool calls (tool_called entries, matched in order
    to the steps with the same action) and span events (every other entry);
    steps no timeline entry names -> Steps without times."""
    steps = _parse_steps(source, run_id, result.get("step_history"), rejects, batch)
    entries = _parse_timeline(source, run_id, result.get("timeline"), rejects, batch)
    by_action: dict[str, deque[_StepRec]] = {}
    for rec in steps:
        by_action.setdefault(rec.action, deque()).append(rec)
    matched: set[str] = set()
    calls: list[ToolCall] = []
    events: list[ActivityEvent] = []
    for n, entry in enumerate(entries):
        if entry.event == TOOL_EVENT and entry.tool:
            queue = by_action.get(entry.tool)
            step = queue.popleft() if queue else None
            end = entries[n + 1].at if n + 1 < len(entries) else run_end
            if end is not None and end < entry.at:
                end = None
            calls.append(_tool_call(entry, step, end))
            if step is not None:
                matched.add(step.key)
            continue
        events.append(
            ActivityEvent(
                id=f"{run_id}:timeline:{entry.index}",
                name=entry.event,
                time=entry.at,
                category=EVENT_CATEGORY,
                severity=Severity.ERROR if entry.event == FAILED_EVENT else Severity.INFO,
                status=_event_status(entry.event),
                attributes=(("agent_activity.timeline.index", entry.index),),
            )
        )
    rest = tuple(_step(rec) for rec in steps if rec.key not in matched)
    return tuple(calls), rest, tuple(events)


def _parse_steps(
    source: str, run_id: str, value: object, rejects: list[Rejected], batch: Batch | None
) -> list[_StepRec]:
    if value is None:
        return []
    if not isinstance(value, list):
        rejects.append(Rejected(reason="bad_type", record_id=run_id, detail="step_history is not a list"))
        return []
    steps: list[_StepRec] = []
    keys: set[str] = set()
    for i, item in enumerate(value):
        _count(batch, "step")
        try:
            f = Fields(source, item, f"{run_id}:step:{i}")
            number = f.opt_int("step")
            action = f.opt_str("action") or "unknown"
        except BadRecordError as err:
            rejects.append(Rejected(reason=err.reason, record_id=err.record_id, detail=err.message))
            continue
        # The platform's step number is the closest thing to an id it gives.
        key = str(number) if number is not None else f"at-{i}"
        if key in keys:  # a repeated step number: keep span keys unique
            key = f"{key}-at-{i}"
        keys.add(key)
        steps.append(_StepRec(key=key, action=action, input=f.obj.get("input"), output=f.obj.get("output")))
    return steps


def _parse_timeline(
    source: str, run_id: str, value: object, rejects: list[Rejected], batch: Batch | None
) -> list[_Entry]:
    if value is None:
        return []
    if not isinstance(value, list):
        rejects.append(Rejected(reason="bad_type", record_id=run_id, detail="timeline is not a list"))
        return []
    entries: list[_Entry] = []
    for i, item in enumerate(value):
        _count(batch, "timeline_entry")
        try:
            f = Fields(source, item, f"{run_id}:timeline:{i}")
            entries.append(_Entry(index=i, event=f.str("event"), at=f.time("at"), tool=f.opt_str("tool")))
        except BadRecordError as err:
            rejects.append(Rejected(reason=err.reason, record_id=err.record_id, detail=err.message))
    entries.sort(key=lambda e: e.at)  # stable: equal times keep the platform's order
    return entries


def _tool_call(entry: _Entry, step: _StepRec | None, end: datetime | None) -> ToolCall:
    """Tool calls carry no status of their own on this platform (a timeline entry
    says only that a tool was called): unknown, or failed where the matching
    step's output is an error object."""
    attrs: list[tuple[str, AttrValue]] = [("agent_activity.timeline.index", entry.index)]
    if end is not None:
        attrs.append(("agent_activity.time_derived", True))  # end = the next timeline entry
    status, error = ToolStatus.UNKNOWN, None
    if step is not None:
        attrs.append(("agent_activity.step", step.key))
        attrs.extend(_sandbox_attributes(step.output))
        error = _output_error(step.output)
        if error is not None:
            status = ToolStatus.FAILED
    return ToolCall(
        id=step.key if step is not None else f"timeline-{entry.index}",
        name=cast(str, entry.tool),
        started_at=entry.at,
        ended_at=end,
        status=status,
        error_message=error or None,
        input=_content(step.input) if step is not None and step.input is not None else None,
        output=_content(step.output) if step is not None and step.output is not None else None,
        attributes=tuple(attrs),
    )


def _step(step: _StepRec) -> Step:
    failed = _output_error(step.output) is not None
    return Step(
        key=step.key,
        name=step.action,
        started_at=None,
        ended_at=None,
        status=ToolStatus.FAILED if failed else ToolStatus.UNKNOWN,
        input=_content(step.input) if step.input is not None else None,
        output=_content(step.output) if step.output is not None else None,
        attributes=tuple(_sandbox_attributes(step.output)),
    )


def _sandbox_attributes(output: object) -> list[tuple[str, AttrValue]]:
    """`{"sandbox": true, "would_<verb>": {...}}`: what a guarded tool would
    have done in a sandbox run; recorded as such, never as a real effect."""
    if not isinstance(output, dict) or output.get("sandbox") is not True:
        return []
    verbs = sorted(k[len("would_") :] for k in output if isinstance(k, str) and k.startswith("would_") and len(k) > 6)
    if not verbs:
        return [("agent_activity.sandbox", True)]
    return [("agent_activity.sandbox", True), ("agent_activity.sandbox.would", ",".join(verbs))]


def _output_error(output: object) -> str | None:
    """The error text when a step's output is plainly an error object
    (`{"error": ...}`, `{"status": "error"|"failed"}`, `{"is_error": true}`),
    else None ("" when it is an error without a message)."""
    if not isinstance(output, dict):
        return None
    err = output.get("error")
    if err not in (None, False, "", {}):
        if isinstance(err, str):
            return err
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return cast(str, err["message"])
        return ""
    status = output.get("status")
    if (isinstance(status, str) and status.lower() in ERROR_OUTPUT_STATUSES) or output.get("is_error") is True:
        message = output.get("message")
        return message if isinstance(message, str) else ""
    return None


def _event_status(event: str) -> str:
    word = event.rsplit("_", 1)[-1].lower()
    return word if word in EVENT_STATUSES else "unknown"


def _token_usage(value: object, run_id: str, rejects: list[Rejected]) -> tuple[int | None, int | None, int | None]:
    """`{input_tokens, output_tokens, total_tokens}` (keys optional) or one
    integer, the total: the vendor leaves the shape undocumented, so both are
    accepted. A bad value drops the tokens, not the run."""
    if value is None:
        return None, None, None
    if _is_count(value):
        return None, None, cast(int, value)
    if isinstance(value, dict):
        counts: list[int | None] = []
        for names in (
            ("input_tokens", "prompt_tokens"),
            ("output_tokens", "completion_tokens"),
            ("total_tokens", "total"),
        ):
            found = next((value[n] for n in names if value.get(n) is not None), None)
            if found is not None and not _is_count(found):
                break
            counts.append(cast(int | None, found))
        else:
            return counts[0], counts[1], counts[2]
    rejects.append(Rejected(reason="bad_value", record_id=run_id, detail="token_usage"))
    return None, None, None


def _error(value: object) -> tuple[str | None, str | None]:
    """(error type, message) from `error`: a string or an object with message."""
    if value is None or value == "" or value is False:
        return None, None
    if isinstance(value, str):
        return None, value
    if isinstance(value, dict):
        kind = next((value[k] for k in ("type", "code") if isinstance(value.get(k), str)), None)
        message = value.get("message")
        return cast(str | None, kind), message if isinstance(message, str) else _content(value)
    return None, _content(value)


# -- small helpers ------------------------------------------------------------


def _content(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _count(batch: Batch | None, kind: str) -> None:
    if batch is not None:
        batch.records[kind] = batch.records.get(kind, 0) + 1


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _meta_int(meta: dict[str, object], key: str, default: int) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _nonempty(items: object) -> bool:
    return isinstance(items, list) and bool(items)


def _time_or(value: object, default: datetime | None) -> datetime | None:
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            return default
    return default


def _checkpoint(agents: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"agents": {uid: dict(st) for uid, st in agents.items()}}
