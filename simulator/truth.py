"""What the simulator generated, in the normalised terms the exporter reports,
so tests can compare the exporter's output with it (GET /_truth).

Shape (every platform the same):

    {"now": "2026-...Z",
     "platforms": {
       "<platform>": {
         "agents": ["<agent label>", ...],
         "requests": <API requests served>,
         "rate_limited": <of those, answered 429 by the rate limit (limits.py)>,
         "runs": [<run record>, ...],          # only runs finished by "now", in the order they ended
         "events": [{"key": [category, severity, status], "count": n}, ...] | null,
         "events_summary": [...] | null        # bctrl: level=summary items only
       }}}

A run record is built by `run_record` below. Each platform module decides
what its own fields mean (its reading of docs/platforms.md, in one place). A
finished run never changes, so `FinishedRuns` builds each record once, and a
truth costs what finished since the last one (plus writing it out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from simulator.specs import RunSpec
from simulator.timefmt import iso_ms_z
from simulator.wire import JsonObject, JsonValue
from simulator.world import Store

EventKey = tuple[str, str, str | None]  # (category, severity, status)


def tool_record(call_id: str, name: str, status: str) -> JsonObject:
    """status: succeeded | failed | unknown."""
    return {"id": call_id, "name": name, "status": status}


def tool_records(run: RunSpec) -> list[JsonValue]:
    """The run's tool calls by their own ids, each succeeded or failed."""
    return [tool_record(t.call_id, t.name, "failed" if t.failed else "succeeded") for t in run.tools]


def run_record(
    *,
    run_id: str,
    agent: str,
    status: str,
    raw_status: str,
    started_ms: int,
    ended_ms: int,
    tool_calls: list[JsonValue],
    parent_run_id: str | None = None,
    root_run_id: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    total_tokens: int | None = None,
    cost_usd: float | None = None,
) -> JsonObject:
    """status is normalised: succeeded | failed | cancelled | timed_out;
    raw_status is the word the platform used. parent/root are None for a
    top-level run (root is the top-level run of a sub-agent's trace);
    tokens and cost are None where the platform gives none."""
    return {
        "run_id": run_id,
        "agent": agent,
        "status": status,
        "raw_status": raw_status,
        "parent_run_id": parent_run_id,
        "root_run_id": root_run_id,
        "started_at": iso_ms_z(started_ms),
        "ended_at": iso_ms_z(ended_ms),
        "duration_seconds": (ended_ms - started_ms) / 1000,
        "tool_calls": tool_calls,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total_tokens,
        "cost_usd": cost_usd,
    }


def event_counts(counts: Counter[EventKey]) -> list[JsonValue]:
    """[{"key": [category, severity, status], "count": n}], sorted by key."""
    ordered = sorted(counts.items(), key=lambda item: tuple(part or "" for part in item[0]))
    return [{"key": list(key), "count": n} for key, n in ordered]


class FinishedRuns:
    """Truth records of a store's finished runs, each built once, in the
    order the runs ended. `on_finish` sees every run as it joins."""

    def __init__(
        self,
        store: Store,
        record: Callable[[RunSpec], JsonObject],
        on_finish: Callable[[RunSpec], None] | None = None,
    ) -> None:
        self._store = store
        self._record = record
        self._on_finish = on_finish
        self._records: list[JsonValue] = []

    def records(self) -> list[JsonValue]:
        """The records so far (a new list; the records themselves are shared)."""
        ended = self._store.ended
        runs = self._store.runs
        for i in range(len(self._records), len(ended)):
            run = runs[ended.val[i]]
            self._records.append(self._record(run))
            if self._on_finish is not None:
                self._on_finish(run)
        return list(self._records)
