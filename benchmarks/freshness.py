"""Freshness and API cost, from one live run.

The simulator (own process) starts runs on all four platforms; the exporter
(`agent-activity-exporter run`, own process, interval 5 s) polls them and
sends spans to a real OTLP/HTTP receiver (testkit/receiver.py) in this
process, which notes when each root span arrives; /metrics is scraped every
0.2 s.

Freshness of a run = arrival of its root span (`invoke_agent`, by
`agent_activity.run_id`) minus its end on the simulator (truth `ended_at`),
and the first scrape whose `agent_runs_total{source,agent,status}` counts it
minus the same end. A counter does not say which run it counted: the n-th
run (by end time) of a label set is taken as counted when that counter first
reaches n. Metrics and spans are committed in the same transaction, so the
two agree within a scrape interval.

Baseline, in the same run: a minimal poller (this process, same interval)
that only GETs the runtools feed and json.loads it, noting when it first
sees each run's terminal event: the freshness any 5-s poller can reach.

API cost: requests per poll per source from the exporter's own
`agent_exporter_api_requests_total` and `agent_exporter_polls_total`, while
runs flow (busy) and after the simulator is paused and every run has ended
(idle); the floor is one listing request per feed or agent.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypedDict, cast

import httpx

from benchmarks.common import (
    PLATFORMS,
    PREFIX,
    SOURCE_NAMES,
    ExporterProc,
    median,
    metric_sum,
    percentile,
    sim_agents,
    sim_control,
    sim_truth,
    source_entry,
    start_simulator,
    wait_until,
    write_config,
)
from simulator import DEFAULT_KEYS
from testkit.exporter_io import free_port
from testkit.receiver import OtlpReceiver


class Sizes(TypedDict):
    interval: float
    busy_seconds: float
    idle_polls: int
    rpm: float
    run_seconds: tuple[float, float]


FULL: Sizes = {"interval": 5.0, "busy_seconds": 120.0, "idle_polls": 6, "rpm": 30.0, "run_seconds": (2.0, 8.0)}
SMOKE: Sizes = {"interval": 1.0, "busy_seconds": 5.0, "idle_polls": 2, "rpm": 90.0, "run_seconds": (1.0, 3.0)}


class TimedReceiver(OtlpReceiver):
    """The tests' receiver, also noting when each root span arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[tuple[str, str], float] = {}  # (source, run id) -> wall time

    def _add(self, request):  # type: ignore[no-untyped-def]
        now = time.time()
        super()._add(request)
        with self._lock:
            for rs in request.resource_spans:
                source = next(
                    (a.value.string_value for a in rs.resource.attributes if a.key == "agent_activity.source"), ""
                )
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        if s.name.startswith("invoke_agent"):
                            run_id = next(
                                (a.value.string_value for a in s.attributes if a.key == "agent_activity.run_id"), ""
                            )
                            self.arrived.setdefault((source, run_id), now)
            self.spans.clear()  # keep arrival times only


class Scraper:
    """/metrics every `every` s: counter values of agent_runs_total and the
    request/poll counters, with the time of each scrape."""

    def __init__(self, url: str, every: float = 0.2) -> None:
        self.url = url
        self.every = every
        self.first_at: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    text = client.get(f"{self.url}/metrics").text
                except httpx.HTTPError:
                    continue
                now = time.time()
                for line in text.splitlines():
                    if line.startswith("agent_runs_total{"):
                        labels = dict(
                            part.split("=", 1)
                            for part in line[line.index("{") + 1 : line.rindex("}")].replace('"', "").split(",")
                        )
                        key = (labels["source"], labels["agent"], labels["status"])
                        value = float(line.rsplit(" ", 1)[1])
                        series = self.first_at[key]
                        if not series or series[-1][1] != value:
                            series.append((now, value))
                self._stop.wait(self.every)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def counted_at(self, key: tuple[str, str, str], n: int) -> float | None:
        for at, value in self.first_at.get(key, []):
            if value >= n:
                return at
        return None


class BaselinePoller:
    """The minimal 5-s poller of the runtools feed: GET, json.loads, note the
    first sight of each run's terminal event. Nothing else."""

    TERMINAL = ("agent.run.completed", "agent.run.failed", "agent.run.cancelled", "agent.run.timed_out")

    def __init__(self, base: str, interval: float) -> None:
        self.base = base
        self.interval = interval
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        headers = {"X-API-Key": DEFAULT_KEYS["runtools"], "Accept": "application/json"}
        with httpx.Client(base_url=self.base, headers=headers, timeout=10) as client:
            while not self._stop.is_set():
                now = datetime.now(timezone.utc)
                params: dict[str, str | int] = {
                    "since": _z(now - timedelta(seconds=60)),
                    "until": _z(now),
                    "limit": 200,
                }
                while True:
                    body = json.loads(client.get("/v1/activity", params=params).content)
                    at = time.time()
                    for ev in body["data"]["events"]:
                        if ev.get("eventType") in self.TERMINAL and ev.get("agentRunId"):
                            self.seen.setdefault(ev["agentRunId"], at)
                    if not body["meta"].get("hasMore"):
                        break
                    params["cursor"] = body["meta"]["nextCursor"]
                self._stop.wait(self.interval)

    def start(self) -> BaselinePoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _z(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _requests_and_polls(
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[str, tuple[float, float]]:
    return {
        s: (
            metric_sum(metrics, "agent_exporter_api_requests_total", source=s),
            metric_sum(metrics, "agent_exporter_polls_total", source=s, outcome="success"),
        )
        for s in SOURCE_NAMES.values()
    }


def _per_poll(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    out = {}
    for s, (req, polls) in after.items():
        d_polls = polls - before[s][1]
        out[s] = (req - before[s][0]) / d_polls if d_polls else float("nan")
    return out


def latencies(
    source: str,
    truth: list[dict[str, Any]],
    started: float,
    receiver: TimedReceiver,
    scraper: Scraper,
    baseline_seen: dict[str, float] | None = None,
) -> dict[str, object]:
    """Freshness of one source's runs that ended after `started` (wall
    time): from their end (the simulator's truth) to their root span at the
    receiver and to their count on /metrics; and to the baseline poller's
    first sight of them, when given."""
    runs = [r for r in truth if _epoch(str(r["ended_at"])) >= started]
    span_lat, metric_lat, base_lat, missing = [], [], [], 0
    rank: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in sorted(truth, key=lambda r: str(r["ended_at"])):
        key = (source, str(r["agent"]), str(r["status"]))
        rank[key] += 1
        end = _epoch(str(r["ended_at"]))
        if end < started:
            continue
        arrived = receiver.arrived.get((source, str(r["run_id"])))
        if arrived is None:
            missing += 1
        else:
            span_lat.append(arrived - end)
        counted = scraper.counted_at(key, rank[key])
        if counted is not None:
            metric_lat.append(counted - end)
        if baseline_seen is not None and str(r["run_id"]) in baseline_seen:
            base_lat.append(baseline_seen[str(r["run_id"])] - end)
    return {
        "runs": len(runs),
        "missing_spans": missing,
        "span_median_s": median(span_lat),
        "span_p99_s": percentile(span_lat, 0.99),
        "metric_median_s": median(metric_lat),
        "metric_p99_s": percentile(metric_lat, 0.99),
        "baseline_median_s": median(base_lat) if base_lat else None,
        "baseline_p99_s": percentile(base_lat, 0.99) if base_lat else None,
    }


def main(smoke: bool) -> dict[str, object]:
    sizes = SMOKE if smoke else FULL
    interval = float(sizes["interval"])
    run_seconds = sizes["run_seconds"]
    work = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    receiver = TimedReceiver()
    otlp = receiver.start()
    try:
        with start_simulator(rpm=float(sizes["rpm"]), run_seconds=run_seconds, agents=3) as sim:
            port = free_port()
            sources = [
                source_entry(
                    p,
                    sim.url + PREFIX[p],
                    agents=sim_agents(p, agents=3),
                    interval=f"{interval}s",
                    start_from="1m",
                    lookback="10s",
                )
                for p in PLATFORMS
            ]
            cfg = write_config(
                work / "config.yaml",
                sources,
                traces={"endpoint": otlp, "protocol": "http/protobuf"},
                listen=f"127.0.0.1:{port}",
            )
            with ExporterProc(cfg, port, work / "exporter.log") as ex:
                ex.wait_ready()
                scraper = Scraper(ex.url).start()
                baseline = BaselinePoller(sim.url + PREFIX["runtools"], interval).start()
                time.sleep(max(2.0, 2 * interval))  # first polls done: what follows is steady polling
                busy0 = _requests_and_polls(ex.metrics())
                started = time.time()
                time.sleep(float(sizes["busy_seconds"]))
                busy1 = _requests_and_polls(ex.metrics())
                sim_control(sim.url, "pause")  # no new runs; started ones finish
                time.sleep(run_seconds[1] + 3 * interval)  # every run ended and read
                idle0 = _requests_and_polls(ex.metrics())
                wait_until(
                    lambda: (
                        min(p - idle0[s][1] for s, (_, p) in _requests_and_polls(ex.metrics()).items())
                        >= sizes["idle_polls"]
                    ),
                    timeout=60 + 3 * interval * float(sizes["idle_polls"]),
                    what="idle polls",
                )
                idle1 = _requests_and_polls(ex.metrics())
                baseline.stop()
                scraper.stop()
                truths = {p: sim_truth(sim.url, p) for p in PLATFORMS}
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)

    freshness: dict[str, object] = {
        p: latencies(
            SOURCE_NAMES[p],
            cast(list[dict[str, Any]], truths[p]["runs"]),  # the simulator's JSON
            started,
            receiver,
            scraper,
            baseline.seen if p == "runtools" else None,
        )
        for p in PLATFORMS
    }
    agents = {"runtools": 1, "agent_activities": 3, "bctrl": 1, "runtype": 3}
    busy, idle = _per_poll(busy0, busy1), _per_poll(idle0, idle1)
    cost = {
        p: {"busy_per_poll": busy[SOURCE_NAMES[p]], "idle_per_poll": idle[SOURCE_NAMES[p]], "floor_per_poll": agents[p]}
        for p in PLATFORMS
    }
    return {"interval_s": interval, "freshness": freshness, "api_cost": cost}
