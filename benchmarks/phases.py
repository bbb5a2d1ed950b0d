"""CPU time of the exporter's polling thread, by pipeline stage.

cProfile's wall-clock times on this path are distorted (many small calls,
and time spent waiting for the store's lock counts as the caller's), and
py-spy samples wall time too. This wraps the stage functions and adds up
`time.thread_time()` of the polling thread, outermost stage only, so the
stages add up to (nearly) the thread's total: what to make cheaper, in
microseconds per record. Used by `python -m benchmarks.profile --phases`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from exporter import pipeline, scheduler
from exporter.export import prometheus
from exporter.sources import http
from exporter.sources.agent_activities import reader as agent_activities
from exporter.sources.bctrl import reader as bctrl
from exporter.sources.runtools import reader as runtools
from exporter.sources.runtype import poll as runtype
from exporter.state import store

# (owner, attribute, stage): the outermost wrapped call on the stack gets the time.
STAGES: list[tuple[Any, str, str]] = [
    (http.ApiClient, "get_json", "HTTP GET + json.loads"),
    (runtools.RuntoolsSource, "_ingest", "source: parse, dedup lookups, run state"),
    (runtools.RuntoolsSource, "_build_run", "source: build runs"),
    (bctrl.BctrlSource, "_ingest", "source: parse, dedup lookups, run state"),
    (bctrl.BctrlSource, "_build_run", "source: build runs"),
    (agent_activities.AgentActivitiesSource, "_build_run", "source: build runs"),
    (runtype, "build_run", "source: build runs"),
    (store.StateStore, "finished_open_runs", "state: read back open runs"),
    (store.StateStore, "open_runs", "state: read back open runs"),
    (pipeline.Pipeline, "_spans", "convert: spans (protobuf)"),
    (pipeline, "run_updates", "convert: metric updates"),
    (pipeline, "event_updates", "convert: metric updates"),
    (prometheus.MetricsBook, "stage", "metrics: stage"),
    (store.StateStore, "commit", "state: SQLite transaction"),
    (pipeline.Pipeline, "_refresh_gauges", "metrics: gauges"),
]


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """While active, per-stage thread CPU seconds accumulate in the dict
    (plus "total": the polling thread's whole `SourceJob.poll`)."""
    acc: dict[str, float] = {}
    depth = [0]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in STAGES]
    saved.append((scheduler.SourceJob, "poll", scheduler.SourceJob.poll))

    def wrap(fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[stage] = acc.get(stage, 0.0) + time.thread_time() - start
                depth[0] -= 1

        return timed

    def whole(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                acc["total"] = acc.get("total", 0.0) + time.thread_time() - start

        return timed

    try:
        for owner, name, stage in STAGES:
            setattr(owner, name, wrap(getattr(owner, name), stage))
        scheduler.SourceJob.poll = whole(scheduler.SourceJob.poll)  # type: ignore[method-assign]
        yield acc
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def report(acc: dict[str, float], records: int, kind: str) -> str:
    total = acc.get("total", 0.0)
    lines = [f"polling thread CPU: {total:.2f} s = {1e6 * total / records:.1f} us per {kind[:-1]} ({records} {kind})"]
    stages = sorted(((k, v) for k, v in acc.items() if k != "total"), key=lambda kv: -kv[1])
    for stage, seconds in stages:
        lines.append(f"  {1e6 * seconds / records:7.1f} us  {100 * seconds / total:5.1f} %  {stage}")
    rest = total - sum(v for _, v in stages)
    lines.append(f"  {1e6 * rest / records:7.1f} us  {100 * rest / total:5.1f} %  (the rest: poll loops, batches)")
    return "\n".join(lines)
