"""Baseline B: the straightforward program a user would write to do the
exporter's job, reading the same pages with the same HTTP client.

- OpenTelemetry SDK: a TracerProvider with a BatchSpanProcessor around the
  SDK's OTLPSpanExporter (http/protobuf), one `tracer.start_span` per record
  with the record's own times and its scalar fields as attributes;
- prometheus_client: one Counter, `.labels(...).inc()` per record;
- SQLite state written as a careful user writes it: one transaction per
  page (`BEGIN`, the page's "seen?" reads and inserts, the page's
  checkpoint, `COMMIT`). The journal settings are the exporter's own (WAL,
  synchronous=NORMAL), so what still differs is how much is batched, not
  durability.

Until issue #12, B committed every record on its own (autocommit: a
transaction per "seen?" insert). No user who times their program keeps
that, and it made B slower than the program it stands for, flattering
the exporter's ratio; one commit per page is what a careful user writes.

Two more things a user would find out and fix before timing it are fixed:
the BatchSpanProcessor's queue holds the whole backfill (the default 2,048
drops spans under a backfill, which would flatter it) and the receiver's
acceptance is awaited (force_flush) before the clock stops.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry, Counter

from benchmarks.capture import Capture

START_KEYS = ("startedAt", "started_on", "occurredAt", "time", "createdAt", "created_on")
END_KEYS = ("endedAt", "completedAt", "completed_on")
FAILED = {"failed", "error", "timed_out", "timeout"}


def records(body: object) -> list[dict[str, object]]:
    """The records of one page: a list endpoint's items, a detail's object."""
    if not isinstance(body, dict):
        return []
    data = body.get("data", body)
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        for key in ("events", "items"):
            if isinstance(data.get(key), list):
                return [r for r in data[key] if isinstance(r, dict)]
        return [data]
    return []


def _ns(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return None


def span_guess(cap: Capture) -> int:
    """An upper bound on the spans B makes from these pages (one per record
    with an id), plus slack: the span queue's size."""
    return sum(p.body.count(b'"id"') for p in cap.pages) + 1024


def run(cap: Capture, base: str, otlp_url: str, headers: dict[str, str], workdir: Path) -> float:
    """Seconds from the first GET to every span accepted by the receiver."""
    return timed(cap, base, otlp_url, headers, workdir)[0]


def timed(
    cap: Capture, base: str, otlp_url: str, headers: dict[str, str], workdir: Path, queue_size: int | None = None
) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of the same timed stretch as run();
    the CPU includes the BatchSpanProcessor's export thread. `queue_size`
    defaults to span_guess(cap) (pass it when cap's page bodies are dropped)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "naive-exporter"}))
    size = queue_size if queue_size is not None else span_guess(cap)
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_url), max_queue_size=size)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("naive-exporter")
    registry = CollectorRegistry()
    counter = Counter("naive_records", "records read", ["platform", "kind", "status"], registry=registry)
    db = sqlite3.connect(workdir / "state.db", isolation_level=None)  # transactions as written below
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE seen(id TEXT PRIMARY KEY, data TEXT NOT NULL)")
    db.execute("CREATE TABLE checkpoint(source TEXT PRIMARY KEY, target TEXT NOT NULL)")
    client = httpx.Client(
        base_url=base,
        headers=headers,
        timeout=httpx.Timeout(30.0, connect=5.0),
        transport=httpx.HTTPTransport(retries=1),
        follow_redirects=False,
    )
    targets = [p.target for p in cap.pages]
    platform = cap.platform

    c0 = time.process_time()
    t0 = time.perf_counter()
    for target in targets:
        body = json.loads(client.get(target).content)
        db.execute("BEGIN")  # one transaction per page: its reads, inserts and checkpoint
        for rec in records(body):
            fields = rec.get("attributes") if isinstance(rec.get("attributes"), dict) else rec
            assert isinstance(fields, dict)
            rid = str(rec.get("id"))
            if db.execute("SELECT 1 FROM seen WHERE id=?", (rid,)).fetchone():
                continue
            start = next((n for k in START_KEYS if (n := _ns(fields.get(k))) is not None), None)
            end = next((n for k in END_KEYS if (n := _ns(fields.get(k))) is not None), start)
            status = str(fields.get("status") or "unknown")
            name = str(fields.get("eventType") or fields.get("type") or fields.get("title") or "record")
            attributes = {k: v for k, v in fields.items() if isinstance(v, (str, int, float, bool))}
            span = tracer.start_span(name, start_time=start, attributes=attributes)
            if status in FAILED:
                span.set_status(Status(StatusCode.ERROR, status))
            span.end(end_time=end)
            counter.labels(platform, name, status).inc()
            db.execute("INSERT INTO seen VALUES(?, ?)", (rid, json.dumps(rec)))
        db.execute("INSERT OR REPLACE INTO checkpoint VALUES(?, ?)", (platform, target))
        db.execute("COMMIT")
    provider.force_flush(timeout_millis=600_000)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0

    provider.shutdown()
    client.close()
    db.close()
    return seconds, cpu
