"""agent_activities: the runs the reader keeps open, and why.

A run in flight is tracked open for the agent_runs_in_progress gauge. A run
that has ended but whose answer showed an earlier state (status gone
backwards) is never exported from that answer and never lost: it is kept
open, marked for re-check by id:
- an item of the completed window shown unfinished (the server filtered it
  as completed, so it has ended) is kept open, marked for re-check: its real
  completed_on is behind the watermark once the window is committed, so no
  later window brings it back;
- a run the listing shows finished whose detail shows it unfinished is kept
  open, marked for re-check, and not exported with that partial detail;
- an open run that left the in-flight list is marked for re-check too,
  rather than waiting for a completed window that may be behind already.

Open run data: {"listing": <listing attributes>, "recheck": reason}; the
reason (RECHECK_*) is present while the run is to be asked by id, absent for
a run tracked from the in-flight list, false once a re-check answered 404
for a run not known finished; an open run without the key but marked
finished (state written before re-checks existed) is re-checked too.
A run marked for re-check is stored with finished=true (it has ended at the
platform), so it does not count as in progress. A run exported is no
longer kept open (`export`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from exporter.model import Batch, OpenRun, Run
from exporter.sources.agent_activities.api import Listed
from exporter.sources.base import PollContext, export_run

# Why an open run is asked by id (open run data "recheck").
RECHECK_LISTED_UNFINISHED: Final = "listed_unfinished"  # in the completed window, shown unfinished
RECHECK_DETAIL_BEHIND: Final = "detail_behind"  # listed finished, the detail showed an earlier state
RECHECK_LEFT_INFLIGHT: Final = "left_inflight"  # no longer in the in-flight list
RECHECK_GONE: Final = False  # the detail answered 404 for a run not known finished: wait for expiry

Reason = str | Literal[False]


def needs_recheck(open_run: OpenRun) -> bool:
    """Marked for re-check by id; state from before re-checks existed: every
    run that left the in-flight list."""
    return bool(open_run.data.get("recheck", open_run.finished))


def listing_of(open_run: OpenRun) -> dict[str, object]:
    """The listing attributes an open run was kept with."""
    listing = open_run.data.get("listing")
    return listing if isinstance(listing, dict) else {}


def hold(ctx: PollContext, batch: Batch, uid: str, run_id: str, listing: dict[str, object], reason: str) -> None:
    """Keep a run that has ended but could not be exported open, marked
    for re-check by id on later polls (finished: not in progress)."""
    current = batch.open_upserts.get(run_id) or ctx.state.open_run(run_id)
    if current is not None and current.finished and current.data.get("recheck"):
        old = listing_of(current)
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


def marked(open_run: OpenRun, reason: Reason) -> OpenRun:
    """An open run, marked with why it is (or is no longer) asked by id."""
    return OpenRun(
        run_id=open_run.run_id,
        agent=open_run.agent,
        opened_at=open_run.opened_at,
        data={**open_run.data, "recheck": reason},
        finished=True,
    )


def track_open(ctx: PollContext, batch: Batch, uid: str, listed: Listed) -> None:
    """A run listed in flight: open, counted in progress."""
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


def export(batch: Batch, run: Run, completed_on: datetime) -> None:
    """A finished run exported with its events; its open run, if any, is
    no longer kept."""
    export_run(batch, run, completed_on)
    batch.events.extend(run.events)
    batch.open_deletes.add(run.run_id)
