"""Memory: the exporter's RSS, in its own process (`agent-activity-exporter
run` as a subprocess, RSS and peak RSS (VmHWM) read from /proc), so that the
simulator's and this harness's memory do not count.

1. Backfill: all four platforms with a history (runtools >= 200,000 events,
   the others >= 20,000 runs each) read by one exporter, traces delivered to
   an OTLP receiver. RSS when 25 %, 50 % and 100 % of the history's runs are
   counted on /metrics shows whether memory grows with history.
2. Steady state with 100,000 runs open at once: the state file is seeded
   with 100,000 open runtools runs (each with the working state of a run
   four events in: the simulator cannot start 100,000 runs in less than
   their duration), then the exporter polls the live simulator every 5 s.
Baseline, in the same run: the same exporter and config with nothing to read
(an idle exporter: the floor every figure sits on).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

import httpx

from benchmarks.common import (
    HISTORY_SPAN,
    PLATFORMS,
    PREFIX,
    Child,
    ExporterProc,
    RssSampler,
    metric_sum,
    sim_agents,
    sim_truth,
    source_entry,
    start_simulator,
    wait_until,
    write_config,
)
from exporter.model import Batch, OpenRun
from exporter.sources.runtools.api import parse_event
from exporter.state.store import StateStore
from testkit.exporter_io import free_port

FULL = {"history": 24_000, "open": 100_000, "steady_seconds": 60.0, "idle_seconds": 5.0}
SMOKE = {"history": 150, "open": 2_000, "steady_seconds": 4.0, "idle_seconds": 2.0}


@dataclass
class Probe:
    """agent_runs_total summed over sources, read from /metrics at most every `every` s."""

    url: str
    every: float = 1.0
    _last: float = 0.0
    _value: float | None = None

    def __call__(self) -> float | None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            try:
                text = httpx.get(f"{self.url}/metrics", timeout=5).text
            except httpx.HTTPError:
                return self._value
            total = 0.0
            for line in text.splitlines():
                if line.startswith("agent_runs_total{"):
                    total += float(line.rsplit(" ", 1)[1])
            self._value = total
        return self._value


def _sources(sim_url: str, interval: str, start_from: str) -> list[dict[str, object]]:
    return [
        source_entry(p, sim_url + PREFIX[p], agents=sim_agents(p), interval=interval, start_from=start_from)
        for p in PLATFORMS
    ]


def idle_rss(sim_url: str, otlp: str, work: Path, seconds: float = 4.0) -> float:
    """The exporter with nothing to read: RSS after a few idle polls."""
    run = work / "idle"
    run.mkdir()
    port = free_port()
    cfg = write_config(
        run / "config.yaml",
        _sources(sim_url, "1s", "1s"),
        traces={"endpoint": otlp, "protocol": "http/protobuf"},
        listen=f"127.0.0.1:{port}",
    )
    with ExporterProc(cfg, port, run / "exporter.log") as ex:
        ex.wait_ready()
        sampler = RssSampler(ex.pid).start()
        time.sleep(seconds)
        sampler.stop()
    return max(rss for _, rss, _ in sampler.samples)


def backfill(history: int, work: Path, idle_seconds: float) -> dict[str, object]:
    epoch = datetime.now(timezone.utc).replace(microsecond=0)
    with (
        start_simulator(history=history, history_span=HISTORY_SPAN, epoch=epoch.isoformat()) as sim,
        Child(["-m", "benchmarks.receiver"], "OTLP receiver") as receiver,
    ):
        otlp, _ = receiver.url.split()
        expected = sum(len(cast(list[object], sim_truth(sim.url, p)["runs"])) for p in PLATFORMS)
        idle = idle_rss(sim.url, otlp, work, idle_seconds)
        run = work / "backfill"
        run.mkdir()
        port = free_port()
        cfg = write_config(
            run / "config.yaml",
            _sources(sim.url, "1h", f"{int(HISTORY_SPAN + 3600)}s"),
            traces={"endpoint": otlp, "protocol": "http/protobuf"},
            listen=f"127.0.0.1:{port}",
        )
        with ExporterProc(cfg, port, run / "exporter.log") as ex:
            probe = Probe(ex.url)
            sampler = RssSampler(ex.pid, probe=probe).start()
            ex.wait_ready()
            t0 = time.monotonic()
            wait_until(lambda: (probe() or 0) >= expected, timeout=900, what="backfill counted", every=0.5)
            seconds = time.monotonic() - t0
            wait_until(
                lambda: metric_sum(ex.metrics(), "agent_exporter_outbox_spans") == 0,
                timeout=300,
                what="outbox drained",
                every=0.5,
            )
            sampler.stop(progress=expected)
            records = metric_sum(ex.metrics(), "agent_exporter_records_total")
    return {
        "runs": expected,
        "records": records,
        "seconds": seconds,
        "idle_rss_mb": idle,
        "peak_rss_mb": sampler.peak,
        "rss_at_25_mb": sampler.rss_at_progress(0.25, expected),
        "rss_at_50_mb": sampler.rss_at_progress(0.50, expected),
        "rss_at_100_mb": sampler.rss_at_progress(1.0, expected),
    }


def seed_open_runs(path: Path, source: str, count: int, agents: list[str], now: datetime) -> None:
    """`count` open runtools runs, each as the runtools source keeps a run four
    events in (started, a message, a tool call started and completed)."""
    store = StateStore(path)
    chunk = 5_000
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for base in range(0, count, chunk):
        batch = Batch()
        for i in range(base, min(count, base + chunk)):
            run_id = f"run_seed{i:012x}"
            agent = agents[i % len(agents)]
            items = [
                {
                    "id": f"act_seed{i:012x}00",
                    "eventType": "agent.run.started",
                    "occurredAt": stamp,
                    "severity": "info",
                    "status": "started",
                    "resourceType": "agent",
                    "resourceId": agent,
                    "title": "Agent run started",
                    "summary": f"{agent} started a run",
                    "threadId": f"thr_{i:012x}",
                    "agentRunId": run_id,
                },
                {
                    "id": f"act_seed{i:012x}01",
                    "eventType": "agent.message.added",
                    "occurredAt": stamp,
                    "severity": "info",
                    "status": "added",
                    "resourceType": "thread",
                    "resourceId": f"thr_{i:012x}",
                    "title": "Message added",
                    "summary": "Assistant message added",
                    "threadId": f"thr_{i:012x}",
                    "agentRunId": run_id,
                },
                {
                    "id": f"act_seed{i:012x}02",
                    "eventType": "tool.call.started",
                    "occurredAt": stamp,
                    "severity": "info",
                    "status": "started",
                    "resourceType": "tool",
                    "resourceId": f"call_{i:012x}",
                    "toolSlug": "web_search",
                    "title": "Tool call started",
                    "summary": "web_search started",
                    "threadId": f"thr_{i:012x}",
                    "agentRunId": run_id,
                },
                {
                    "id": f"act_seed{i:012x}03",
                    "eventType": "tool.call.completed",
                    "occurredAt": stamp,
                    "severity": "info",
                    "status": "completed",
                    "resourceType": "tool",
                    "resourceId": f"call_{i:012x}",
                    "toolSlug": "web_search",
                    "title": "Tool call completed",
                    "summary": "web_search completed",
                    "threadId": f"thr_{i:012x}",
                    "agentRunId": run_id,
                },
            ]
            batch.open_upserts[run_id] = OpenRun(
                run_id=run_id,
                agent=agent,
                opened_at=now.timestamp(),
                data={"events": [parse_event(source, item)[0] for item in items]},
            )
        store.commit(source, batch, [], {}, 100_000)
    store.close()


def steady(open_runs: int, seconds: float, work: Path) -> dict[str, object]:
    run = work / "steady"
    run.mkdir()
    # Live traffic on all four platforms; runs of up to a minute, so some are open at any time.
    with (
        start_simulator(rpm=120.0, run_seconds=(5.0, 60.0)) as sim,
        Child(["-m", "benchmarks.receiver"], "OTLP receiver") as receiver,
    ):
        otlp, _ = receiver.url.split()
        seed_open_runs(run / "state.db", "rt", open_runs, sim_agents("runtools"), datetime.now(timezone.utc))
        port = free_port()
        cfg = write_config(
            run / "config.yaml",
            _sources(sim.url, "5s", "10m"),
            traces={"endpoint": otlp, "protocol": "http/protobuf"},
            listen=f"127.0.0.1:{port}",
        )
        with ExporterProc(cfg, port, run / "exporter.log") as ex:
            sampler = RssSampler(ex.pid, every=0.5).start()
            ex.wait_ready()
            time.sleep(seconds)
            metrics = ex.metrics()
            sampler.stop()
    in_progress = metric_sum(metrics, "agent_runs_in_progress")
    polls = metric_sum(metrics, "agent_exporter_polls_total", outcome="success")
    rss = [r for _, r, _ in sampler.samples]
    third = max(1, len(rss) // 3)
    return {
        "open_runs_seeded": open_runs,
        "runs_in_progress": in_progress,
        "seconds": seconds,
        "polls": polls,
        "peak_rss_mb": sampler.peak,
        "rss_first_third_mb": max(rss[:third]),
        "rss_last_third_mb": max(rss[-third:]),
        "live_runs_exported": metric_sum(metrics, "agent_runs_total"),
    }


def main(smoke: bool) -> dict[str, object]:
    sizes = SMOKE if smoke else FULL
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        return {
            "backfill": backfill(int(sizes["history"]), work, float(sizes["idle_seconds"])),
            "steady": steady(int(sizes["open"]), float(sizes["steady_seconds"]), work),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
