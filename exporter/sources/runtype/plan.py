"""runtype: what a listing page reads ahead (issue #15).

Before a page's executions are handled (poll.py), the requests that handling
will make are planned in its order and sent on the source's worker threads:
for each execution not exported yet, the look-up of its sub-agent parent
when nothing known resolves it (`Lineage`'s request), then, for one built
as a run, what building it costs (`RuntypeSource.fetch_finished`: the
detail of a failed execution without error text, its tool calls). The poll
thread takes each result at the point where a sequential read would have
made the request, and makes the request itself when it was not planned; the
error a request ended in is raised there too.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from exporter.model import OpenRun
from exporter.sources.ahead import Ahead, Fetched, attempt
from exporter.sources.base import StateView, run_key
from exporter.sources.runtype.api import Execution
from exporter.sources.runtype.lineage import Lineage, top_key
from exporter.sources.runtype.runs import Held

if TYPE_CHECKING:
    from exporter.sources.runtype.reader import Finished, RuntypeSource

# What a page reads ahead: a run's cost by its position on the page, or a
# parent's look-up by (execution id, agent asked), with the execution it is for.
Key = int | tuple[str, str]
Job = tuple[Key, Execution]


class PageAhead:
    """The requests of one listing page, read ahead; taken by `finished`
    (building the page's i-th execution) and `parent` (a parent's look-up)."""

    def __init__(self, source: RuntypeSource, state: StateView, lineage: Lineage, parsed: list[Execution]) -> None:
        self._source = source
        plan = _plan(source, state, lineage, parsed)
        results = source.workers.map_ordered(partial(_prefetch, source), plan)
        self._ahead: Ahead[Key, Finished | Fetched[Execution | None]] = Ahead((key for key, _ in plan), results)

    def finished(self, i: int) -> Finished | None:
        """What building the page's i-th execution costs; None: not read ahead."""
        got = self._ahead.take(i)
        return None if got is None or isinstance(got, Fetched) else got

    def parent(self, exec_id: str, via_agent: str) -> Execution | None:
        """The execution as read ahead, else read now."""
        got = self._ahead.take((exec_id, via_agent))
        if isinstance(got, Fetched):
            return got.get()  # its error raised here, where the sequential read meets it
        return self._source.fetch(exec_id, via_agent)

    def close(self) -> None:
        self._ahead.close()


def _plan(source: RuntypeSource, state: StateView, lineage: Lineage, parsed: list[Execution]) -> list[Job]:
    """What `Poll._handle` will ask for, in its order: for each execution of
    the page, the look-up of its parent (when `Lineage` will make it), then,
    when it is built as a run, what building it costs (by position). Only
    this page's own runs are exported before their turn comes (its committed
    parts), so the seen keys read now still hold then: the runs' plan is
    exact. The parents' plan is too, but for a parent that an earlier
    execution's longer chain finds first (then its look-up is taken there),
    or that the checkpoint learns of otherwise in the meantime (a look-up for
    nothing)."""
    seen = state.seen_among({run_key(x.id) for x in parsed})
    unknown = _unknown_parents(state, lineage, parsed, seen)
    asked: set[str] = set()
    plan: list[Job] = []
    for i, x in enumerate(parsed):
        key = run_key(x.id)
        if key in seen:
            continue
        parent = unknown.get(x.id)
        if parent is not None and parent not in asked:
            asked.add(parent)  # looked up once: then it is known
            plan.append(((parent, x.agent_id), x))
        if x.is_open:
            continue
        seen.add(key)
        if source.costs_requests(x):
            plan.append((i, x))
    return plan


def _unknown_parents(state: StateView, lineage: Lineage, parsed: list[Execution], seen: set[str]) -> dict[str, str]:
    """The executions of the page (not exported yet) whose sub-agent chain
    `Lineage` will follow by a request, to the parent that request asks for:
    a parent nothing known resolves (see `Lineage._lookup`), of an execution
    not open with a root already."""
    children = {x.id: x.parent_id for x in parsed if x.parent_id is not None and run_key(x.id) not in seen}
    parents = {p for p in children.values() if p is not None and p not in lineage.parents and p not in lineage.subs}
    if not parents:
        return {}
    tops = state.seen_among(top_key(p) for p in parents)
    parents -= {p for p in parents if top_key(p) in tops}
    parents -= set(state.open_runs_among(parents))
    held = state.open_runs_among(c for c, p in children.items() if p in parents)
    return {c: p for c, p in children.items() if p in parents and not _has_root(held.get(c))}


def _has_root(current: OpenRun | None) -> bool:
    """An open run whose sub-agent root is known (`_handle` asks no chain)."""
    if current is None:
        return False
    try:
        return not Held.of(current).unresolved
    except Exception:  # `_handle` raises it in its turn; nothing planned for it
        return True


def _prefetch(source: RuntypeSource, job: Job) -> tuple[Key, Finished | Fetched[Execution | None]]:
    """(worker thread) One request planned by `_plan`."""
    key, x = job
    if isinstance(key, int):
        return key, source.fetch_finished(x, from_detail=False)
    exec_id, via_agent = key
    return key, attempt(lambda: source.fetch(exec_id, via_agent))
