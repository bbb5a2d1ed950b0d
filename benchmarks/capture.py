"""Capture, once, every page the exporter asks the simulator for during a
backfill, in order, so that the throughput benchmarks replay the very same
pages from a server that costs (almost) nothing (pageserver.py).

The exporter's request sequence is a pure function of its clock and the
data: the capture drives the exporter's own sources (through a recording
httpx transport) with a pinned clock, and the timed runs later use the same
pinned clock against the replay, so they ask for exactly these pages.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from exporter.config import load_config
from exporter.export.prometheus import MetricsBook
from exporter.pipeline import Pipeline, Recorder
from exporter.scheduler import SourceJob
from exporter.sources.registry import PLATFORMS
from exporter.state.store import StateStore


@dataclass
class Page:
    target: str  # raw path with query, as the client sent it
    status: int
    content_type: str
    body: bytes


@dataclass
class Capture:
    platform: str
    prefix: str  # the platform's path prefix on the simulator
    now: datetime  # the pinned exporter clock the pages belong to
    pages: list[Page] = field(default_factory=list)
    records: dict[str, float] = field(default_factory=dict)  # agent_exporter_records_total by kind
    runs: int = 0  # runs the exporter emitted
    events: int = 0  # activity events counted
    seconds: float = 0.0  # how long the capture (exporter, traces off, vs the simulator) took

    @property
    def bytes(self) -> int:
        return sum(len(p.body) for p in self.pages)

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(path: Path) -> Capture:
        with path.open("rb") as f:
            capture = pickle.load(f)
        assert isinstance(capture, Capture)
        return capture


class RecordingTransport(httpx.HTTPTransport):
    def __init__(self, pages: list[Page]) -> None:
        super().__init__(retries=1)
        self.pages = pages

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        body = response.read()
        self.pages.append(
            Page(
                request.url.raw_path.decode("ascii"),
                response.status_code,
                response.headers.get("content-type", "application/json"),
                body,
            )
        )
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def capture(platform: str, config_path: Path, now: datetime, prefix: str) -> Capture:
    """Poll the one source in config_path once (traces off), recording pages."""
    config = load_config(config_path)
    result = Capture(platform=platform, prefix=prefix, now=now)
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp) / "capture.db")
        book = MetricsBook({}, max_agents=config.metrics.max_agents, max_tools=config.metrics.max_tools)
        pipeline = Pipeline(config=config, recorder=Recorder(store, book), drain=None, clock=lambda: now)
        (sc,) = config.sources
        source = PLATFORMS[sc.type].reader(sc, transport=RecordingTransport(result.pages))
        job = SourceJob(source, pipeline)
        t0 = time.perf_counter()
        ok = job.poll()
        result.seconds = time.perf_counter() - t0
        if not ok:
            raise RuntimeError(f"capture of {platform} failed: {job.status.last_error}")
        values, _ = book.snapshot()
        for (name, labels), value in values.items():
            if name == "agent_exporter_records_total":
                result.records[labels[1]] = float(value)  # type: ignore[arg-type]
            elif name == "agent_runs_total":
                result.runs += int(value)  # type: ignore[call-overload]
            elif name == "agent_activity_events_total":
                result.events += int(value)  # type: ignore[call-overload]
        source.close()
        store.close()
    bad = [p for p in result.pages if p.status != 200]
    if bad:
        raise RuntimeError(f"capture of {platform}: {len(bad)} non-200 page(s), first {bad[0].target} {bad[0].status}")
    return result
