"""Throughput: records per second from a platform's HTTP API to spans
accepted by an OTLP receiver and counters updated, during a backfill.

For each platform, in one run:
  1. the simulator (own process) is given a history for that platform, and
     the exporter's own source reads it once through a recording transport
     (capture.py): every page, in order;
  2. a replay server (pageserver.py, own process) serves those pages, each
     pre-rendered, so the page source is not what is timed;
  3. three readers of the same pages, timed one after the other in this
     process, against one real OTLP/HTTP receiver (receiver.py, own process):
       A  baseline_a: GET every page with the same httpx client, json.loads;
       E  the exporter: Exporter built from a config file, its source job
          polls once (clock pinned to the capture's), the outbox drain runs
          alongside; done when every span is accepted by the receiver;
       B  baseline_b.py: the straightforward program (OTel SDK tracer +
          BatchSpanProcessor, a span per record, a state write per record).
Records: activity events for runtools, runs for the others (the same number
for A, E and B: they read the same pages).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from benchmarks import baseline_b
from benchmarks.capture import Capture, capture
from benchmarks.common import (
    HISTORY_SPAN,
    PREFIX,
    Child,
    free_port,
    sim_agents,
    source_entry,
    start_simulator,
    wait_until,
    write_config,
)
from exporter.app import Exporter, tuned_gc
from exporter.config import load_config
from exporter.redact import Redactor
from exporter.simulator import DEFAULT_KEYS

# History sizes: >= 200,000 runtools events (about 8.5 per run) and 20,000 runs elsewhere.
FULL_HISTORY = {"runtools": 24_000, "agent_activities": 20_000, "bctrl": 20_000, "runtype": 16_000}
SMOKE_HISTORY = {"runtools": 200, "agent_activities": 80, "bctrl": 80, "runtype": 60}


@dataclass
class Figures:
    platform: str
    records: int
    record_kind: str
    pages: int
    page_mb: float
    spans: int
    a_seconds: float
    e_seconds: float
    b_seconds: float
    e_poll_seconds: float  # of e_seconds: until the poll returned (the drain ran alongside)
    b_spans: int
    e_dropped: int
    capture_seconds: float  # the exporter (traces off) against the live simulator, for reference
    misses: int

    @property
    def a_rate(self) -> float:
        return self.records / self.a_seconds

    @property
    def e_rate(self) -> float:
        return self.records / self.e_seconds

    @property
    def b_rate(self) -> float:
        return self.records / self.b_seconds

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.update(a_rate=self.a_rate, e_rate=self.e_rate, b_rate=self.b_rate,
                   e_over_a=self.e_rate / self.a_rate, e_over_b=self.e_rate / self.b_rate)
        return out


def headers(platform: str) -> dict[str, str]:
    """What the exporter's source sends (sources/<platform>.py)."""
    if platform == "runtools":
        return {"X-API-Key": DEFAULT_KEYS["runtools"], "Accept": "application/json"}
    return {"Authorization": f"Bearer {DEFAULT_KEYS[platform]}", "Accept": "application/json"}


def prepare(platform: str, history: int, workdir: Path) -> Path:
    """Simulator with history -> captured pages on disk."""
    epoch = datetime.now(timezone.utc).replace(microsecond=0)
    now = epoch + timedelta(seconds=1)
    start_from = f"{int(HISTORY_SPAN + 3600)}s"
    with start_simulator(history=history, history_platforms=(platform,), history_span=HISTORY_SPAN,
                         epoch=epoch.isoformat()) as sim:
        cfg = write_config(workdir / f"capture-{platform}.yaml",
                           [source_entry(platform, sim.url + PREFIX[platform], agents=sim_agents(platform),
                                         start_from=start_from)], traces=None)
        result = capture(platform, cfg, now, PREFIX[platform])
    path = workdir / f"pages-{platform}.pkl"
    result.save(path)
    return path


def baseline_a(cap: Capture, base: str) -> float:
    """GET every captured page in order with the exporter's HTTP client
    (httpx.Client, same headers, timeout and transport) and json.loads it."""
    client = httpx.Client(base_url=base, headers=headers(cap.platform), timeout=httpx.Timeout(30.0, connect=5.0),
                          transport=httpx.HTTPTransport(retries=1), follow_redirects=False)
    targets = [p.target for p in cap.pages]
    t0 = time.perf_counter()
    for target in targets:
        response = client.get(target)
        if response.status_code != 200:
            raise RuntimeError(f"baseline A: {target} -> HTTP {response.status_code}")
        json.loads(response.content)
    seconds = time.perf_counter() - t0
    client.close()
    return seconds


def run_exporter(cap: Capture, base: str, otlp: str, count_url: str, workdir: Path) -> tuple[float, float, int, int]:
    """(seconds to all spans accepted, seconds to the poll's end, spans, dropped)."""
    run_dir = workdir / f"exporter-{cap.platform}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    spans0 = _count(count_url)["spans"]
    agents = sim_agents(cap.platform) if cap.platform == "agent_activities" else ()
    start_from = f"{int(HISTORY_SPAN + 3600)}s"
    cfg = write_config(run_dir / "config.yaml",
                       [source_entry(cap.platform, base + cap.prefix, agents=agents, start_from=start_from)],
                       traces={"endpoint": otlp, "protocol": "http/protobuf"}, listen=f"127.0.0.1:{free_port()}")
    config = load_config(cfg)
    exporter = Exporter(config, Redactor(config.secrets()))
    exporter.pipeline.clock = lambda: cap.now
    assert exporter.drain is not None
    (job,) = exporter.jobs
    gc.collect()
    with tuned_gc():  # as `run` and `once` do for their process
        exporter.drain.start()
        t0 = time.perf_counter()
        ok = job.poll()
        t_poll = time.perf_counter() - t0
        if not ok:
            raise RuntimeError(f"exporter poll of {cap.platform} failed: {job.status.last_error}")
        wait_until(lambda: exporter.store.outbox_spans() == 0, timeout=600, what="outbox drained", every=0.005)
        seconds = time.perf_counter() - t0
    book = exporter.book
    delivered = int(book.value("agent_exporter_spans_exported_total", ("success",)) or 0)  # type: ignore[call-overload]
    dropped = int(book.value("agent_exporter_spans_exported_total", ("dropped",)) or 0)  # type: ignore[call-overload]
    exporter.shutdown()
    wait_until(lambda: _count(count_url)["spans"] - spans0 >= delivered, timeout=30, what="receiver count")
    return seconds, t_poll, delivered, dropped


def _count(url: str) -> dict[str, int]:
    return httpx.get(url, timeout=10).json()  # type: ignore[no-any-return]


def run_platform(platform: str, history: int, workdir: Path, repeat: int = 1) -> Figures:
    pages_path = prepare(platform, history, workdir)
    cap = Capture.load(pages_path)
    records, kind = (cap.events, "events") if platform == "runtools" else (cap.runs, "runs")
    with Child(["-m", "benchmarks.pageserver", str(pages_path)], "page server") as server, \
            Child(["-m", "benchmarks.receiver"], "OTLP receiver") as receiver:
        otlp, count_url = receiver.url.split()
        a_runs, e_runs = [], []
        e_poll, spans, dropped = 0.0, 0, 0
        for _ in range(repeat):  # interleaved, best of each: the machine is noisy
            a_runs.append(baseline_a(cap, server.url))
            e, e_poll_i, spans_i, dropped_i = run_exporter(cap, server.url, otlp, count_url, workdir)
            e_runs.append(e)
            if e == min(e_runs):
                e_poll, spans, dropped = e_poll_i, spans_i, dropped_i
        spans0 = _count(count_url)["spans"]
        b_seconds = baseline_b.run(cap, server.url, otlp + "/v1/traces", headers(platform), workdir / f"b-{platform}")
        wait_until(lambda: _count(count_url)["spans"] - spans0 >= 1, timeout=30, what="baseline B spans")
        b_spans = _count(count_url)["spans"] - spans0
        misses = httpx.get(server.url + "/_stats", timeout=10).json()["misses"]
    return Figures(platform=platform, records=records, record_kind=kind, pages=len(cap.pages),
                   page_mb=cap.bytes / 1e6, spans=spans, a_seconds=min(a_runs), e_seconds=min(e_runs),
                   b_seconds=b_seconds, e_poll_seconds=e_poll, b_spans=b_spans, e_dropped=dropped,
                   capture_seconds=cap.seconds, misses=misses)


def main(smoke: bool, platforms: tuple[str, ...], workdir: Path | None = None) -> list[dict[str, object]]:
    sizes = SMOKE_HISTORY if smoke else FULL_HISTORY
    own = workdir is None
    work = workdir or Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    try:
        # Full mode repeats A and E for runtools (best of two, interleaved); the
        # other platforms' backfills are long enough that one run each keeps
        # the whole benchmark within minutes.
        return [run_platform(p, sizes[p], work, repeat=2 if (p == "runtools" and not smoke) else 1).as_dict()
                for p in platforms]
    finally:
        if own and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
