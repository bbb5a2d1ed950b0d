"""What moving work to a second process could take off the polling thread.

The exporter spends its polling thread's CPU on one core (the GIL); these
machines have two. Before building a process split, this measures on the
throughput benchmark's own pages and runs what each split would save, since
whatever crosses a process boundary must be serialised by the polling
thread (writing) or read back by it:

- **delivery process**: the outbox holds runs instead of spans and another
  process encodes and sends them. The polling thread still writes each run
  as a row: per run, protobuf spans (today) vs a positional JSON run row
  (the cheapest durable form we found: C encoder, one hook call per nested
  object, time or decimal) vs pickle (not durable across upgrades; a floor).
- **reader process**: another process fetches and parses pages. The polling
  thread still reads the parsed events back: per event (runtools),
  `json.loads` + `parse_event` vs `pickle.loads` of their parsed form.
- **garbage collector**: its share of the exporter run, from `gc.callbacks`.

    python -m benchmarks.profile --platform runtools --history 8000 --headroom
"""

from __future__ import annotations

import gc
import json
import pickle
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from benchmarks.capture import Capture
from exporter import pipeline, scheduler
from exporter.convert.protobuf import SpanWriter
from exporter.convert.traces import run_to_protobuf
from exporter.model import Run
from exporter.sources.runtools.api import parse_event


@dataclass
class Observed:
    """What one exporter run showed: its finished runs, the polling thread's
    CPU and the collector's time."""

    runs: list[Run] = field(default_factory=list)
    poll_cpu: float = 0.0
    gc_seconds: float = 0.0
    collections: int = 0


@contextmanager
def observed() -> Iterator[Observed]:
    seen = Observed()
    spans, poll = pipeline.Pipeline._spans, scheduler.SourceJob.poll
    started: list[float] = []
    polling: list[bool] = []  # the collector's time is counted while the poll runs

    def on_gc(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            if polling:
                started.append(time.perf_counter())
        elif started:
            seen.gc_seconds += time.perf_counter() - started.pop()
            seen.collections += 1

    def keep(self: pipeline.Pipeline, runs: list[Run]) -> list[tuple[str, int, bytes]]:
        seen.runs.extend(runs)
        return spans(self, runs)

    def timed(self: scheduler.SourceJob) -> bool:
        t0 = time.thread_time()
        polling.append(True)
        try:
            return poll(self)
        finally:
            polling.pop()
            seen.poll_cpu += time.thread_time() - t0

    pipeline.Pipeline._spans = keep  # type: ignore[method-assign]
    scheduler.SourceJob.poll = timed  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)
    try:
        yield seen
    finally:
        gc.callbacks.remove(on_gc)
        pipeline.Pipeline._spans = spans  # type: ignore[method-assign]
        scheduler.SourceJob.poll = poll  # type: ignore[method-assign]


def _row_hook(getters: dict[type, Callable[[Any], tuple[object, ...]]]) -> Callable[[object], object]:
    def other(value: object) -> object:
        getter = getters.get(type(value))
        if getter is not None:
            return getter(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(type(value).__name__)

    return other


def json_run_row(run: Run, hook: Callable[[object], object]) -> bytes:
    """A run as a durable positional JSON row (each model object a list of
    its fields; a reader would map positions to names per row version)."""
    return json.dumps({"v": 1, "run": run}, default=hook, separators=(",", ":")).encode()


def _per_item(fn: Callable[[], object], items: int) -> float:
    """Best of three, microseconds per item."""
    return min(timeit.repeat(fn, number=1, repeat=3)) / items * 1e6


def row_costs(runs: list[Run]) -> dict[str, float]:
    """Microseconds per run to write each outbox row form."""
    classes = {
        type(x)
        for r in runs
        for x in (r, *r.tool_calls, *r.steps, *r.events, *(e for t in r.tool_calls for e in t.events))
    }
    hook = _row_hook({c: attrgetter(*(f.name for f in fields(c))) for c in classes if is_dataclass(c)})
    writer = SpanWriter()
    [run_to_protobuf(r, writer) for r in runs]  # warm its caches, as in a long backfill
    n = len(runs)
    return {
        "protobuf spans": _per_item(lambda: [run_to_protobuf(r, writer) for r in runs], n),
        "JSON run row": _per_item(lambda: [json_run_row(r, hook) for r in runs], n),
        "pickle": _per_item(lambda: [pickle.dumps(r, protocol=5) for r in runs], n),
    }


def page_costs(cap: Capture) -> dict[str, float]:
    """Microseconds per runtools event: parsing a page vs reading it back
    from another process."""
    bodies = [p.body for p in cap.pages]
    docs = [json.loads(b) for b in bodies]
    items = [d["data"]["events"] for d in docs]
    parsed = [[parse_event("bench", it) for it in page] for page in items]
    pickled = [pickle.dumps(p, protocol=5) for p in parsed]
    n = sum(len(page) for page in items)
    return {
        "json.loads + parse_event": _per_item(
            lambda: [[parse_event("bench", it) for it in json.loads(b)["data"]["events"]] for b in bodies], n
        ),
        "pickle.loads of parsed events": _per_item(lambda: [pickle.loads(p) for p in pickled], n),
    }


def report(seen: Observed, seconds: float, baseline_a: float, cap: Capture) -> str:
    runs = len(seen.runs)
    events = cap.events if cap.platform == "runtools" else 0
    records, kind = (events, "event") if events else (cap.runs, "run")
    out = [
        f"exporter run: {seconds:.2f} s = {seconds / records * 1e6:.1f} us per {kind}; polling thread CPU "
        f"{seen.poll_cpu / records * 1e6:.1f} us per {kind}; baseline A (GET + json.loads) "
        f"{baseline_a / records * 1e6:.1f} us per {kind}",
        f"garbage collector during the poll: {seen.gc_seconds:.2f} s ({100 * seen.gc_seconds / seconds:.1f} % "
        f"of the run) in {seen.collections} collections",
        "",
        f"outbox row, per run ({runs:,} runs):",
    ]
    rows = row_costs(seen.runs)
    today = rows["protobuf spans"]
    for name, us in rows.items():
        saved = today - us
        per = f" = {saved * runs / records:.1f} us per {kind}" if kind == "event" else ""
        out.append(f"  {name:32s} {us:7.1f} us   saves {saved:6.1f} us per run{per}")
    if cap.platform == "runtools":
        out += ["", f"reading a page, per event ({cap.events:,} events):"]
        pages = page_costs(cap)
        base = pages["json.loads + parse_event"]
        for name, us in pages.items():
            out.append(f"  {name:32s} {us:7.1f} us   saves {base - us:6.1f} us per event")
        out.append("  (a reader process would also take the HTTP client's own CPU: baseline A less json.loads)")
    return "\n".join(out)
