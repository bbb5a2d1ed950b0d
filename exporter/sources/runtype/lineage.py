"""runtype sub-agents: the top-level execution (root) of each execution.

`parentExecutionId` names the parent's id. A sub-agent run gets
parent_run_id = that id and root_run_id = the top-level execution's id, found
by walking up the chain through (in order) what this poll has read, the
checkpoint's `subs` map (recent sub-agent executions -> root), `top:<id>`
seen keys (executions known to be top-level), open runs' data, and finally
`GET /v1/agents/{agent}/executions?executionId=<id>` (the documented
cross-agent drill-down). Trace and span ids are deterministic, so a child
exported before or after its parent lands in the same trace.

Checkpoint part: "subs": {"<execution id>": ["<root id>", created_epoch]}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from exporter.model import Batch
from exporter.sources.base import StateView
from exporter.sources.runtype.api import Execution
from exporter.sources.runtype.runs import Held

log = logging.getLogger(__name__)

MAX_CHAIN = 16  # sub-agent levels followed up to the top-level run
SUBS_KEEP = timedelta(hours=1)  # sub-agent roots remembered in the checkpoint ...
SUBS_MAX = 2000  # ... at most this many (the newest): a miss costs one request
POLL_CACHE_MAX = 20_000  # execution -> parent ids remembered within one poll

# An execution id -> what is known of its ancestry.
Ancestry = tuple[str | None, str | None, str | None]  # (root if known, else parent id if known, agent id)


def top_key(exec_id: str) -> str:
    """The seen key of an execution known to be top-level."""
    return f"top:{exec_id}"


class Lineage:
    """The roots known to one poll: the checkpoint's `subs` map and a
    bounded cache of execution -> parent ids read in this poll. `fetch`
    reads an execution not seen yet (by id, via an agent's listing)."""

    def __init__(
        self, source: str, subs: object, state: StateView, fetch: Callable[[str, str], Execution | None]
    ) -> None:
        self._source = source
        self._state = state
        self._fetch = fetch
        self.subs: dict[str, tuple[str, float]] = _subs_from_json(subs)
        self.parents: dict[str, str | None] = {}  # this poll: execution id -> parent id (None: top-level)

    def subs_json(self) -> dict[str, object]:
        return {exec_id: [root, created] for exec_id, (root, created) in self.subs.items()}

    def remember(self, x: Execution) -> None:
        if len(self.parents) >= POLL_CACHE_MAX:
            self.parents.clear()
        self.parents[x.id] = x.parent_id

    def add_sub(self, exec_id: str, root: str, created: float) -> None:
        self.subs[exec_id] = (root, created)
        if len(self.subs) > SUBS_MAX + SUBS_MAX // 4:  # trimmed now and then, not on every add
            self._trim_subs(None)

    def prune(self, horizon: datetime) -> None:
        """Forget roots of executions created SUBS_KEEP before `horizon` (the
        oldest time a listing re-reads)."""
        self._trim_subs((horizon - SUBS_KEEP).timestamp())

    def _trim_subs(self, keep_after: float | None) -> None:
        """Keep the newest SUBS_MAX entries created after `keep_after`."""
        subs = [(k, v) for k, v in self.subs.items() if keep_after is None or v[1] >= keep_after]
        subs.sort(key=lambda kv: kv[1][1], reverse=True)
        self.subs = dict(subs[:SUBS_MAX])

    def root_of(self, batch: Batch, x: Execution) -> tuple[str | None, bool]:
        """(root id, unresolved) of an execution; (None, False) when top-level.
        Unresolved: the chain could not be followed to its top; the highest
        known ancestor stands in for the root."""
        if x.parent_id is None:
            return None, False
        cur, via_agent = x.parent_id, x.agent_id
        visited = {x.id}
        for _ in range(MAX_CHAIN):
            if cur in visited:
                break  # a cycle: the platform's data is inconsistent
            visited.add(cur)
            known, parent, agent = self._lookup(batch, cur, via_agent)
            if known is not None:
                for ancestor in visited - {x.id, known}:  # sub-agent ancestors share the root
                    self.add_sub(ancestor, known, x.created_at.timestamp())
                return known, False
            if parent is None:  # not found anywhere
                break
            cur, via_agent = parent, agent or via_agent
        log.info(
            "could not follow a sub-agent chain to its top-level run", extra={"source": self._source, "record_id": x.id}
        )
        return cur, True

    def _lookup(self, batch: Batch, exec_id: str, via_agent: str) -> Ancestry:
        if exec_id in self.parents:
            parent = self.parents[exec_id]
            if parent is None:
                return exec_id, None, None
            sub = self.subs.get(exec_id)
            return (sub[0], None, None) if sub else (None, parent, None)
        sub = self.subs.get(exec_id)
        if sub:
            return sub[0], None, None
        if top_key(exec_id) in batch.seen_add or self._state.is_seen(top_key(exec_id)):
            return exec_id, None, None
        open_run = batch.open_upserts.get(exec_id) or self._state.open_run(exec_id)
        if open_run is not None:
            held = Held.of(open_run)
            if held.x.parent_id is None:
                return exec_id, None, None
            if held.root and not held.unresolved:
                return held.root, None, None
            return None, held.x.parent_id, held.x.agent_id
        fetched = self._fetch(exec_id, via_agent)
        if fetched is None:
            return None, None, None
        self.remember(fetched)
        if fetched.parent_id is None:
            batch.seen_add[top_key(fetched.id)] = fetched.created_at.timestamp()
            return exec_id, None, None
        return None, fetched.parent_id, fetched.agent_id


def _subs_from_json(data: object) -> dict[str, tuple[str, float]]:
    """The checkpoint's `subs`; an entry not of the stored shape is dropped
    (a miss costs one request)."""
    if not isinstance(data, Mapping):
        return {}
    subs: dict[str, tuple[str, float]] = {}
    for exec_id, entry in data.items():
        if isinstance(entry, list) and len(entry) == 2:
            root, created = entry
            if isinstance(root, str) and isinstance(created, (int, float)) and not isinstance(created, bool):
                subs[exec_id] = (root, created)
    return subs
