"""Exactly once at scale: a dense runtools history (runs of 3-180 s, 20
agents, about 10 started per second by default) read from `start_from: 1h`
by the real command, `once` or `run`, against the simulator in its own
process; every finished run's root span is counted at a real OTLP/HTTP
receiver, and the run and event counters are compared with the simulator's
truth. Not a timing: it checks what the integration tests check, at the
size of a busy organisation's hour (issue #12: 30,000 and 60,000 runs).

    python -m benchmarks.exactly_once --runs 30000 --mode once
    python -m benchmarks.exactly_once --runs 60000 --span 3031 --mode run
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from benchmarks.common import Child
from exporter.convert.traces import trace_id_for
from exporter.state.store import StateStore
from testkit.exporter_io import free_port, parse_metrics, write_config
from testkit.receiver import OtlpReceiver

EXPORTER = str(Path(sys.executable).with_name("agent-activity-exporter"))
RUNS_PER_SECOND = 30_000 / 2_940  # the history: 30,000 runs started over 49 minutes
MEAN_RUN_SECONDS = 91.5  # the simulator ends every history run before its start: the span holds them too


class RootCounter(OtlpReceiver):
    """Counts root spans by trace id (hex) instead of keeping spans."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: Counter[str] = Counter()

    def _add(self, request: ExportTraceServiceRequest) -> None:
        ids = [
            s.trace_id.hex()
            for r in request.resource_spans
            for ss in r.scope_spans
            for s in ss.spans
            if not s.parent_span_id
        ]
        with self._lock:
            self.requests += 1
            self.roots.update(ids)


def counters_from_state(path: Path) -> tuple[Counter[str], int, float]:
    """(runs by status, events counted, spans dropped) as `once` committed them."""
    store = StateStore(path)
    try:
        series = store.series()
    finally:
        store.close()
    runs: Counter[str] = Counter()
    events = 0
    for (name, labels), value in series.items():
        if name == "agent_runs_total" and isinstance(value, (int, float)):
            runs[labels[3]] += int(value)
        elif name == "agent_activity_events_total" and isinstance(value, (int, float)):
            events += int(value)
    dropped = series.get(("agent_exporter_spans_exported_total", ("dropped",)), 0.0)
    return runs, events, float(dropped) if isinstance(dropped, (int, float)) else 0.0


def counters_from_metrics(port: int) -> tuple[Counter[str], int, float]:
    """The same, scraped from a running exporter's /metrics."""
    metrics = parse_metrics(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    runs: Counter[str] = Counter()
    events = 0
    for (name, labels), value in metrics.items():
        if name == "agent_runs_total":
            runs[dict(labels)["status"]] += int(value)
        elif name == "agent_activity_events_total":
            events += int(value)
    return runs, events, metrics.get(("agent_exporter_spans_exported_total", (("outcome", "dropped"),)), 0.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30_000)
    p.add_argument("--span", type=float, default=None, help="history seconds (default: the issue's density)")
    p.add_argument("--mode", choices=("once", "run"), default="once")
    p.add_argument("--timeout", type=float, default=900.0, help="`run`: seconds to wait for every run")
    args = p.parse_args()
    span = args.span or args.runs / RUNS_PER_SECOND + MEAN_RUN_SECONDS
    sim_args = [
        "-m",
        "benchmarks.simserver",
        "--seed",
        "5",
        "--history",
        str(args.runs),
        "--history-platforms",
        "runtools",
        "--history-span",
        str(span),
        "--rpm",
        "0",
        "--run-seconds",
        "3,180",
        "--agents",
        "20",
    ]
    with Child(sim_args, "simulator", timeout=600) as sim, tempfile.TemporaryDirectory() as tmp:
        receiver = RootCounter()
        endpoint = receiver.start()
        port = free_port()
        base = sim.url + "/runtools"
        source: dict[str, object] = {
            "name": "feed",
            "type": "runtools",
            "base_url": base,
            "api_key": "sim-runtools-key",
            "interval": "2s",
            "start_from": "1h",
        }
        config = write_config(
            Path(tmp) / "config.yaml", [source], port=port, traces={"endpoint": endpoint, "protocol": "http/protobuf"}
        )
        truth = httpx.get(sim.url + "/_truth", params={"platform": "runtools"}, timeout=300).json()
        runs = truth["platforms"]["runtools"]["runs"]
        events = sum(int(e["count"]) for e in truth["platforms"]["runtools"]["events"])
        expected = {trace_id_for("runtools", base, str(r["run_id"])) for r in runs}
        t0 = time.monotonic()
        if args.mode == "once":
            done = subprocess.run([EXPORTER, "once", "-c", str(config)], capture_output=True, text=True)
            if done.returncode != 0:
                sys.stderr.write(done.stderr[-3000:])
                return 1
            by_status, counted, dropped = counters_from_state(Path(tmp) / "state.db")
        else:
            proc = subprocess.Popen([EXPORTER, "run", "-c", str(config)], stderr=subprocess.DEVNULL)
            while len(receiver.roots) < len(expected) and time.monotonic() - t0 < args.timeout:
                time.sleep(1)
            time.sleep(5)  # more polls: nothing further may arrive
            by_status, counted, dropped = counters_from_metrics(port)
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        receiver.stop()
    roots = receiver.roots
    missing, unknown = len(expected - set(roots)), len(set(roots) - expected)
    copies = max(roots.values(), default=0)
    status_ok = +by_status == +Counter(str(r["status"]) for r in runs)
    print(
        f"{args.mode}: {len(runs)} runs, {events} events over {span:.0f} s, {time.monotonic() - t0:.0f} s: "
        f"missing {missing}, unknown {unknown}, most copies of one root {copies}, runs by status equal "
        f"to the truth: {status_ok}, events counted {counted}, spans dropped {dropped:.0f}"
    )
    return 0 if (missing, unknown, copies, status_ok, counted, dropped) == (0, 0, 1, True, events, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
