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
          BatchSpanProcessor, a span per record, a state commit per page).
Records: activity events for runtools, runs for the others (the same number
for A, E and B: they read the same pages).

The dense row (`dense()`, issue #12) is a runtools history shaped like a
busy organisation's: runs of 3-180 s started at a constant ~10 per second,
so ~1,000 are open at any moment, at three sizes (about 20k, 70k and 220k
events), with the process CPU time per event of E and B at each, so that
growth with history shows:

    python -m benchmarks.throughput --dense [--smoke] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import httpx

from benchmarks import baseline_b
from benchmarks.capture import Capture, Page, capture
from benchmarks.common import (
    HISTORY_SPAN,
    PREFIX,
    PY,
    ROOT,
    Child,
    rss_mb,
    sim_agents,
    sim_truth,
    source_entry,
    start_simulator,
    wait_until,
    write_config,
)
from exporter.app import Exporter, tuned_gc
from exporter.config import load_config
from exporter.redact import Redactor
from simulator import DEFAULT_KEYS
from testkit.exporter_io import free_port

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
        out.update(
            a_rate=self.a_rate,
            e_rate=self.e_rate,
            b_rate=self.b_rate,
            e_over_a=self.e_rate / self.a_rate,
            e_over_b=self.e_rate / self.b_rate,
        )
        return out


def headers(platform: str) -> dict[str, str]:
    """What the exporter's source sends (sources/<platform>.py)."""
    if platform == "runtools":
        return {"X-API-Key": DEFAULT_KEYS["runtools"], "Accept": "application/json"}
    return {"Authorization": f"Bearer {DEFAULT_KEYS[platform]}", "Accept": "application/json"}


def prepare(
    platform: str,
    history: int,
    workdir: Path,
    *,
    span: float = HISTORY_SPAN,
    run_seconds: tuple[float, float] = (2.0, 8.0),
    agents: int = 4,
    start_from: str | None = None,
    name: str | None = None,
    density: dict[str, float] | None = None,
) -> Path:
    """Simulator with history -> captured pages on disk. With `density`, the
    simulator's truth fills it: open runs at 200 moments of the history
    (median and max), the history's length in seconds, and its events."""
    epoch = datetime.now(timezone.utc).replace(microsecond=0)
    now = epoch + timedelta(seconds=1)
    start_from = start_from or f"{int(HISTORY_SPAN + 3600)}s"
    name = name or platform
    with start_simulator(
        history=history,
        history_platforms=(platform,),
        history_span=span,
        run_seconds=run_seconds,
        agents=agents,
        epoch=epoch.isoformat(),
    ) as sim:
        # The simulator's clock reads `epoch` when it starts and shows each
        # event from its time on; events a history run leaves after its end
        # (runtools' workspace.updated, 250 ms later) may fall after `epoch`.
        # Captured before the simulator's clock has passed `now`, a page can
        # lack them while the truth, asked later, counts them.
        time.sleep((now - epoch).total_seconds() + 0.1)
        cfg = write_config(
            workdir / f"capture-{name}.yaml",
            [
                source_entry(
                    platform,
                    sim.url + PREFIX[platform],
                    agents=sim_agents(platform, agents=agents),
                    start_from=start_from,
                )
            ],
            traces=None,
        )
        result = capture(platform, cfg, now, PREFIX[platform])
        if density is not None:
            density.update(_open_runs(sim_truth(sim.url, platform)))
    path = workdir / f"pages-{name}.pkl"
    result.save(path)
    return path


def _open_runs(truth: dict[str, object]) -> dict[str, float]:
    """How many runs were open (started, not ended) at 200 evenly spaced
    moments of the history: median and max; the history's length; how
    many events the platform holds."""
    runs, events = truth["runs"], truth["events"]
    assert isinstance(runs, list) and isinstance(events, list)
    total = float(sum(int(e["count"]) for e in events))
    moves: list[tuple[float, int]] = []
    for run in runs:
        moves.append((datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp(), 1))
        moves.append((datetime.fromisoformat(run["ended_at"].replace("Z", "+00:00")).timestamp(), -1))
    if not moves:
        return {"open_median": 0.0, "open_max": 0.0, "history_seconds": 0.0, "events": total}
    moves.sort()
    first, last = moves[0][0], moves[-1][0]
    step = (last - first) / 200 or 1.0
    samples: list[int] = []
    open_now, at = 0, first
    for t, move in moves:
        while t >= at and len(samples) < 200:
            samples.append(open_now)
            at += step
        open_now += move
    return {
        "open_median": float(statistics.median(samples)),
        "open_max": float(max(samples)),
        "history_seconds": last - first,
        "events": total,
    }


def baseline_a(cap: Capture, base: str) -> float:
    """GET every captured page in order with the exporter's HTTP client
    (httpx.Client, same headers, timeout and transport) and json.loads it."""
    client = httpx.Client(
        base_url=base,
        headers=headers(cap.platform),
        timeout=httpx.Timeout(30.0, connect=5.0),
        transport=httpx.HTTPTransport(retries=1),
        follow_redirects=False,
    )
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


@dataclass
class ExporterRun:
    seconds: float  # to every span accepted by the receiver
    poll_seconds: float  # of seconds: until the poll returned (the drain ran alongside)
    cpu_seconds: float  # process CPU over the same stretch: polling and drain threads (and the wait loop)
    spans: int
    dropped: int
    runs: int  # runs the exporter counted (agent_runs_total)
    rss_start_mb: float  # this process's RSS when the poll began
    peak_rss_mb: float  # this process's peak RSS (VmHWM, reset at the start) during the run; 0 if unavailable


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def exporter_run(
    cap: Capture,
    base: str,
    otlp: str,
    count_url: str,
    workdir: Path,
    *,
    start_from: str | None = None,
    agents: Sequence[str] | None = None,
    name: str | None = None,
) -> ExporterRun:
    """The exporter (in this process) reads the captured pages once: one
    poll with the drain alongside, until the outbox is empty."""
    run_dir = workdir / f"exporter-{name or cap.platform}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    spans0 = _count(count_url)["spans"]
    if agents is None:
        agents = sim_agents(cap.platform) if cap.platform == "agent_activities" else ()
    start_from = start_from or f"{int(HISTORY_SPAN + 3600)}s"
    cfg = write_config(
        run_dir / "config.yaml",
        [source_entry(cap.platform, base + cap.prefix, agents=agents, start_from=start_from)],
        traces={"endpoint": otlp, "protocol": "http/protobuf"},
        listen=f"127.0.0.1:{free_port()}",
    )
    config = load_config(cfg)
    exporter = Exporter(config, Redactor(config.secrets()))
    exporter.pipeline.clock = lambda: cap.now
    assert exporter.drain is not None
    (job,) = exporter.jobs
    gc.collect()
    peak_known = _reset_peak_rss()
    rss_start, _ = rss_mb(os.getpid())
    with tuned_gc():  # as `run` and `once` do for their process
        c0 = time.process_time()
        exporter.drain.start()
        t0 = time.perf_counter()
        ok = job.poll()
        t_poll = time.perf_counter() - t0
        if not ok:
            raise RuntimeError(f"exporter poll of {cap.platform} failed: {job.status.last_error}")
        wait_until(lambda: exporter.store.outbox_spans() == 0, timeout=600, what="outbox drained", every=0.005)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    _, peak = rss_mb(os.getpid())
    book = exporter.book
    delivered = int(book.value("agent_exporter_spans_exported_total", ("success",)) or 0)  # type: ignore[call-overload]
    dropped = int(book.value("agent_exporter_spans_exported_total", ("dropped",)) or 0)  # type: ignore[call-overload]
    values, _ = book.snapshot()
    runs = sum(int(v) for (metric, _), v in values.items() if metric == "agent_runs_total")  # type: ignore[call-overload]
    exporter.shutdown()
    wait_until(lambda: _count(count_url)["spans"] - spans0 >= delivered, timeout=30, what="receiver count")
    return ExporterRun(seconds, t_poll, cpu, delivered, dropped, runs, rss_start, peak if peak_known else 0.0)


def run_exporter(cap: Capture, base: str, otlp: str, count_url: str, workdir: Path) -> tuple[float, float, int, int]:
    """(seconds to all spans accepted, seconds to the poll's end, spans, dropped)."""
    r = exporter_run(cap, base, otlp, count_url, workdir)
    return r.seconds, r.poll_seconds, r.spans, r.dropped


def _count(url: str) -> dict[str, int]:
    return httpx.get(url, timeout=10).json()  # type: ignore[no-any-return]


def _spans_since(count_url: str, spans0: int) -> int:
    """Spans the receiver counted since it counted spans0 (at least one)."""
    wait_until(lambda: _count(count_url)["spans"] - spans0 >= 1, timeout=30, what="baseline B spans")
    return _count(count_url)["spans"] - spans0


def run_platform(platform: str, history: int, workdir: Path, repeat: int = 1) -> Figures:
    pages_path = prepare(platform, history, workdir)
    cap = Capture.load(pages_path)
    records, kind = (cap.events, "events") if platform == "runtools" else (cap.runs, "runs")
    with (
        Child(["-m", "benchmarks.pageserver", str(pages_path)], "page server") as server,
        Child(["-m", "benchmarks.receiver"], "OTLP receiver") as receiver,
    ):
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
    return Figures(
        platform=platform,
        records=records,
        record_kind=kind,
        pages=len(cap.pages),
        page_mb=cap.bytes / 1e6,
        spans=spans,
        a_seconds=min(a_runs),
        e_seconds=min(e_runs),
        b_seconds=b_seconds,
        e_poll_seconds=e_poll,
        b_spans=b_spans,
        e_dropped=dropped,
        capture_seconds=cap.seconds,
        misses=misses,
    )


def main(smoke: bool, platforms: tuple[str, ...], workdir: Path | None = None) -> list[dict[str, object]]:
    sizes = SMOKE_HISTORY if smoke else FULL_HISTORY
    own = workdir is None
    work = workdir or Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    try:
        # Full mode repeats A and E for runtools (best of two, interleaved); the
        # other platforms' backfills are long enough that one run each keeps
        # the whole benchmark within minutes.
        return [
            run_platform(p, sizes[p], work, repeat=2 if (p == "runtools" and not smoke) else 1).as_dict()
            for p in platforms
        ]
    finally:
        if own and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


# -- the dense runtools row (issue #12) ----------------------------------------------

DENSE_RATE = 30_000 / (49 * 60)  # runs started per second: the 30,000 runs over 49 minutes
DENSE_RUN_SECONDS = (3.0, 180.0)
DENSE_AGENTS = 20
DENSE_START_FROM = "1h"  # the config; covers every size's history
DENSE_RUNS = (2_400, 8_300, 26_000)  # about 20k, 70k and 220k events (~8.45 per run)
DENSE_SMOKE_RUNS = (20, 40, 80)
DENSE_ROUNDS = 2


def dense_span(runs: int) -> float:
    """The simulator's history span for `runs` started at DENSE_RATE. Each
    history run starts at a uniform moment of the span less its own length
    (world.py: it must end before the simulator's start), so the mean run
    length is added to keep the density the same at every size."""
    return runs / DENSE_RATE + sum(DENSE_RUN_SECONDS) / 2


def prepare_dense(runs: int, workdir: Path) -> Path:
    """Capture one dense size's pages; its density beside them as JSON."""
    density: dict[str, float] = {}
    path = prepare(
        "runtools",
        runs,
        workdir,
        span=dense_span(runs),
        run_seconds=DENSE_RUN_SECONDS,
        agents=DENSE_AGENTS,
        start_from=DENSE_START_FROM,
        name=f"dense-{runs}",
        density=density,
    )
    # The timed readers need the targets only: a copy without the bodies
    # (they stay with the page server), so that they never grow the timing
    # process, whose RSS is the exporter's figure.
    cap = Capture.load(path)
    density.update(span_guess=float(baseline_b.span_guess(cap)), page_mb=cap.bytes / 1e6)
    cap.pages = [Page(p.target, p.status, p.content_type, b"") for p in cap.pages]
    cap.save(workdir / f"targets-dense-{runs}.pkl")
    (workdir / f"dense-{runs}.json").write_text(json.dumps(density))
    return path


@dataclass
class DenseSize:
    runs: int  # history runs asked of the simulator
    span_seconds: float  # the simulator's history span
    history_seconds: float  # first start to last end, from the simulator's truth
    open_median: float  # runs open at 200 moments of the history: median and max
    open_max: float
    events: int  # the simulator's truth: every rate is per one of these
    exporter_events: int  # events the capture's exporter counted (agent_activity_events_total)
    emitted_runs: int  # runs the capture's exporter counted
    pages: int
    page_mb: float
    spans: int = 0
    e_runs: int = 0  # runs E counted (every round the same)
    e_dropped: int = 0
    b_spans: int = 0
    misses: int = 0
    e_rss_start_mb: float = 0.0  # round 1 (before any B ran in this process)
    e_peak_rss_mb: float = 0.0
    a_seconds: list[float] = field(default_factory=list)  # one per round
    e_seconds: list[float] = field(default_factory=list)
    e_cpu_seconds: list[float] = field(default_factory=list)
    b_seconds: list[float] = field(default_factory=list)
    b_cpu_seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        e, a, b = min(self.e_seconds), min(self.a_seconds), min(self.b_seconds)
        out.update(
            e_rate=self.events / e,
            a_rate=self.events / a,
            b_rate=self.events / b,
            e_over_a=a / e,
            e_over_b=b / e,
            e_over_b_rounds=[bs / es for es, bs in zip(self.e_seconds, self.b_seconds, strict=True)],
            e_cpu_us=min(self.e_cpu_seconds) / self.events * 1e6,
            b_cpu_us=min(self.b_cpu_seconds) / self.events * 1e6,
            e_cpu_us_rounds=[c / self.events * 1e6 for c in self.e_cpu_seconds],
        )
        return out


def dense(smoke: bool = False, workdir: Path | None = None, rounds: int | None = None) -> dict[str, object]:
    """The dense runtools row at three sizes, in one run: each size captured
    in a child process (so this process holds no simulator or capture
    state), then `rounds` rounds of A at every size, E at every size, B at
    every size (best of the rounds; round 1's E runs are the RSS figures,
    before B's span queues have grown this process)."""
    sizes = DENSE_SMOKE_RUNS if smoke else DENSE_RUNS
    rounds = rounds or (1 if smoke else DENSE_ROUNDS)
    own = workdir is None
    work = workdir or Path(tempfile.mkdtemp(prefix="bench-dense-"))
    try:
        figures: list[DenseSize] = []
        caps: list[tuple[Path, Capture, int]] = []
        for runs in sizes:
            proc = subprocess.run(
                [PY, "-m", "benchmarks.throughput", "--capture-dense", str(runs), "--workdir", str(work)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"dense capture of {runs} runs failed: {proc.stderr[-3000:]}")
            path = work / f"pages-dense-{runs}.pkl"
            density = json.loads((work / f"dense-{runs}.json").read_text())
            cap = Capture.load(work / f"targets-dense-{runs}.pkl")
            queue = int(density["span_guess"])
            figures.append(
                DenseSize(
                    runs=runs,
                    span_seconds=dense_span(runs),
                    history_seconds=density["history_seconds"],
                    open_median=density["open_median"],
                    open_max=density["open_max"],
                    events=int(density["events"]),
                    exporter_events=cap.events,
                    emitted_runs=cap.runs,
                    pages=len(cap.pages),
                    page_mb=density["page_mb"],
                )
            )
            caps.append((path, cap, queue))
        gc.collect()
        with contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(Child(["-m", "benchmarks.pageserver", str(path)], "page server"))
                for path, _, _ in caps
            ]
            receiver = stack.enter_context(Child(["-m", "benchmarks.receiver"], "OTLP receiver"))
            otlp, count_url = receiver.url.split()
            for r in range(rounds):
                for fig, server, (_, cap, _) in zip(figures, servers, caps, strict=True):
                    fig.a_seconds.append(baseline_a(cap, server.url))
                for fig, server, (_, cap, _) in zip(figures, servers, caps, strict=True):
                    run = exporter_run(
                        cap,
                        server.url,
                        otlp,
                        count_url,
                        work,
                        start_from=DENSE_START_FROM,
                        agents=(),
                        name=f"dense-{fig.runs}",
                    )
                    if r and (run.spans, run.runs) != (fig.spans, fig.e_runs):
                        raise RuntimeError(
                            f"dense {fig.runs}: {run.spans} spans, {run.runs} runs; the round before"
                            f" {fig.spans}, {fig.e_runs}"
                        )
                    fig.spans, fig.e_runs, fig.e_dropped = run.spans, run.runs, fig.e_dropped + run.dropped
                    fig.e_seconds.append(run.seconds)
                    fig.e_cpu_seconds.append(run.cpu_seconds)
                    if r == 0:
                        fig.e_rss_start_mb, fig.e_peak_rss_mb = run.rss_start_mb, run.peak_rss_mb
                for fig, server, (_, cap, queue) in zip(figures, servers, caps, strict=True):
                    spans0 = _count(count_url)["spans"]
                    gc.collect()
                    wall, cpu = baseline_b.timed(
                        cap,
                        server.url,
                        otlp + "/v1/traces",
                        headers("runtools"),
                        work / f"b-dense-{fig.runs}",
                        queue_size=queue,
                    )
                    fig.b_seconds.append(wall)
                    fig.b_cpu_seconds.append(cpu)
                    fig.b_spans = _spans_since(count_url, spans0)
            for fig, server in zip(figures, servers, strict=True):
                fig.misses = httpx.get(server.url + "/_stats", timeout=10).json()["misses"]
        rows = [f.as_dict() for f in figures]
        first, last = rows[0], rows[-1]
        return {
            "runs_per_second": DENSE_RATE,
            "run_seconds": list(DENSE_RUN_SECONDS),
            "agents": DENSE_AGENTS,
            "start_from": DENSE_START_FROM,
            "rounds": rounds,
            "sizes": rows,
            "e_cpu_growth": cast(float, last["e_cpu_us"]) / cast(float, first["e_cpu_us"]),
            "e_cpu_growth_rounds": [
                y / x
                for x, y in zip(
                    cast(list[float], first["e_cpu_us_rounds"]), cast(list[float], last["e_cpu_us_rounds"]), strict=True
                )
            ],
            "b_cpu_growth": cast(float, last["b_cpu_us"]) / cast(float, first["b_cpu_us"]),
            "e_over_b_largest": last["e_over_b"],
            "e_peak_rss_mb": max(f.e_peak_rss_mb for f in figures),
        }
    finally:
        if own and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def dense_table(result: dict[str, object]) -> str:
    """The dense row as markdown: one line per size, then the growth."""
    lines = [
        "| events | runs | open runs, median / max | pages | E events/s | A events/s | B events/s | E/B"
        " | E CPU us/event | B CPU us/event | E RSS start / peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    sizes = cast(list[dict[str, Any]], result["sizes"])
    for s in sizes:
        lines.append(
            f"| {s['events']:,} | {s['emitted_runs']:,} | {s['open_median']:,.0f} / {s['open_max']:,.0f}"
            f" | {s['pages']:,} | {s['e_rate']:,.0f} | {s['a_rate']:,.0f} | {s['b_rate']:,.0f}"
            f" | {s['e_over_b']:.2f}x | {s['e_cpu_us']:.1f} | {s['b_cpu_us']:.1f}"
            f" | {s['e_rss_start_mb']:.1f} / {s['e_peak_rss_mb']:.1f} |"
        )
    rounds = ", ".join(f"{g:.2f}x" for g in cast(list[float], result["e_cpu_growth_rounds"]))
    lines.append("")
    lines.append(
        f"E CPU per event, largest / smallest size: {cast(float, result['e_cpu_growth']):.2f}x"
        f" (best of {result['rounds']} rounds; each round: {rounds});"
        f" B: {cast(float, result['b_cpu_growth']):.2f}x."
        f" E/B at the largest size: {cast(float, result['e_over_b_largest']):.2f}x"
        f" (rounds: {', '.join(f'{x:.2f}x' for x in sizes[-1]['e_over_b_rounds'])})."
        f" E peak RSS (this process): {cast(float, result['e_peak_rss_mb']):.1f} MB."
    )
    for d in sizes:
        if d["exporter_events"] != d["events"]:
            lines.append(
                f"Counted: the exporter's agent_activity_events_total is {d['exporter_events']:,} for the"
                f" {d['events']:,} events the simulator holds ({d['runs']:,} runs)."
            )
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="throughput benchmarks; see benchmarks/README.md")
    p.add_argument("--dense", action="store_true", help="the dense runtools row at three sizes (issue #12)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: only checks that it works")
    p.add_argument("--rounds", type=int, default=None, help=f"dense: rounds (default {DENSE_ROUNDS}, smoke 1)")
    p.add_argument("--json", dest="json_out", default=None, help="write the figures as JSON here")
    p.add_argument("--capture-dense", type=int, default=None, help=argparse.SUPPRESS)  # dense()'s child
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.capture_dense is not None:
        prepare_dense(args.capture_dense, Path(args.workdir))
        return 0
    if not args.dense:
        p.error("the platform rows run from benchmarks.run (--only throughput); here: --dense")
    result = dense(args.smoke, rounds=args.rounds)
    sys.stdout.write(dense_table(result) + "\n")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
