"""agent_activities: the re-checks by id of runs held open (`held` says why
a run is marked).

A run marked for re-check is asked by id (the detail GET) once per later
poll, after the agent's completed window (which may export it first), until
the detail shows it finished; it is then exported once, status and times
from the detail. Only marked runs cost a request; runs.max_open_age bounds
the wait (the scheduler expires the run as incomplete). A detail 404 on
re-check exports the run from its listing (detail_missing) when the listing
showed it finished, else stops the re-checks and leaves the run to expire.
A run exported already (seen key) is not asked: its open run is deleted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Protocol

from exporter.model import Batch, OpenRun, Run, RunStatus
from exporter.sources.agent_activities import held
from exporter.sources.agent_activities.api import detail_behind, parse_listed, run_status
from exporter.sources.agent_activities.fetch import Detail, Fetch
from exporter.sources.base import PollContext, count, rejected, run_key
from exporter.sources.http import BadRecordError
from exporter.sources.windows import time_or


class BuildRun(Protocol):
    """The source's run building (`AgentActivitiesSource._build_run`)."""

    def __call__(
        self,
        uid: str,
        run_id: str,
        listing: Mapping[str, object],
        detail: Detail,
        batch: Batch | None,
        *,
        detail_missing: bool = False,
    ) -> Run: ...


@dataclass(frozen=True, slots=True)
class Rechecks:
    """The re-checks of one source (on the poll thread; the details are
    fetched on its workers)."""

    source: str
    fetch: Fetch
    with_detail: bool  # fetch_detail: the detail's fields asked, and built from
    build: BuildRun

    def read(self, ctx: PollContext, uid: str, run_ids: list[str], asked: set[str]) -> Iterator[Batch]:
        """Ask each of the agent's runs marked for re-check by id (`asked`:
        those whose detail this poll asked already): export it once its
        detail shows it finished, else leave it open for the next poll. One
        batch per run that changed, committed before the next request. The
        runs to ask are chosen first (each batch changes only its own run, so
        the choice is the one a sequential read makes), their details fetched
        together and handled in order."""
        todo: list[tuple[OpenRun, bool]] = []  # (open run, exported already)
        for run_id in run_ids:
            if run_id in asked:
                continue  # this poll's window asked its detail already
            open_run = ctx.state.open_run(run_id)
            if open_run is None or not held.needs_recheck(open_run):
                continue  # exported by this poll's window, or listed in flight again
            todo.append((open_run, ctx.state.is_seen(run_key(run_id))))
        ids = [open_run.run_id for open_run, exported in todo if not exported]
        with closing(self.fetch.details(uid, ids, with_fields=self.with_detail)) as details:
            for open_run, exported in todo:
                batch = Batch()
                if exported:
                    batch.open_deletes.add(open_run.run_id)  # exported already: nothing to wait for
                else:
                    self._settle(uid, open_run, batch, next(details))
                if batch.runs or batch.open_deletes or batch.open_upserts or batch.rejected or batch.records:
                    yield batch

    def _settle(self, uid: str, open_run: OpenRun, batch: Batch, attributes: Detail) -> None:
        """One re-check, with the detail's answer (None: 404)."""
        run_id = open_run.run_id
        listing = held.listing_of(open_run)
        if attributes is None:  # 404: the run was deleted
            completed = time_or(listing.get("completed_on"), None)
            if completed is not None and run_status(str(listing.get("status") or "unknown")) is not RunStatus.RUNNING:
                run = self.build(uid, run_id, listing, None, batch, detail_missing=True)
                held.export(batch, run, completed)
            else:  # never seen finished: nothing to export it from; max_open_age ends it
                batch.open_upserts[run_id] = held.marked(open_run, held.RECHECK_GONE)
            return
        count(batch, "run_detail")
        try:
            shown = parse_listed(self.source, {"id": run_id, "attributes": attributes})
        except BadRecordError as err:
            batch.rejected.append(rejected(err))
            return  # ask again next poll
        ended = shown.ended
        if ended is None or detail_behind(attributes):
            return  # still an earlier state (or really still running): ask again next poll
        # Status and times from the detail; what it leaves out from the listing.
        merged = {**listing, **{k: v for k, v in shown.data.items() if v is not None}}
        run = self.build(uid, run_id, merged, attributes if self.with_detail else None, batch)
        held.export(batch, run, ended)
