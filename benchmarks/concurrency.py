"""Concurrency (issue #15): what several requests in flight buy against an API
that takes 50 ms to answer, and what they cost against one that rate-limits.
Every figure beside the same figure with `concurrency: 1` (a sequential
reader), measured in the same run. The simulator runs in its own process
(simserver.py, `--latency 50ms`); the exporter runs in this process, except
for freshness (`run` mode, its own process, as benchmarks/freshness.py).

1. Backfill: one poll (the drain delivering alongside, to a receiver in its
   own process) over a finished history per platform, default settings vs
   `concurrency: 1`. Effective concurrency = requests x 50 ms / wall time of
   the poll: a sequential reader is at most 1. The default polls run one at
   a time; the four sequential ones side by side (each has one request in
   flight and waits on it: measured alone they took the same, +-4 %).
2. Idle poll against the number of agents (agent_activities, runtype): the
   second poll of a simulator with no runs (nothing new), against the
   sequential sum of its requests (requests x 50 ms); the same polls with
   `concurrency: 1` are measured beside it up to `seq_idle_max` agents.
3. Freshness, 300 agents, 5 s interval, runs arriving: run end -> root span
   at the receiver and -> count on /metrics (freshness.py's machinery), two
   exporter processes (default and sequential) side by side.
4. Rate limit: a runtype backfill (tool calls on) against `--rate-limit 25`:
   wall time against requests answered / 25 per second, the share of
   requests answered 429, and runs counted against the simulator's truth.

    python -m benchmarks.concurrency            # full, about 5 minutes
    python -m benchmarks.concurrency --smoke --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict, cast

from benchmarks.common import (
    PLATFORMS,
    PREFIX,
    SOURCE_NAMES,
    Child,
    ExporterProc,
    sim_agents,
    sim_control,
    sim_truth,
    source_entry,
    start_simulator,
    wait_until,
    write_config,
)
from benchmarks.freshness import Scraper, TimedReceiver, latencies
from exporter.app import Exporter, tuned_gc
from exporter.config import load_config
from exporter.redact import Redactor
from testkit.exporter_io import free_port

LATENCY = "50ms"
LATENCY_S = 0.05
PER_AGENT = ("agent_activities", "runtype")  # the platforms read agent by agent


class Sizes(TypedDict):
    history: int  # runs per platform (runtools: runtools_history)
    runtools_history: int
    agents: int
    idle_agents: tuple[int, ...]
    seq_idle_max: int  # the sequential idle poll is measured up to this many agents
    fresh_agents: int
    interval: float
    busy_seconds: float
    rpm: float
    run_seconds: tuple[float, float]
    limited_history: int
    rate_limit: int


FULL: Sizes = {
    "history": 400,
    "runtools_history": 6000,
    "agents": 20,
    "idle_agents": (10, 100, 300, 1000),
    "seq_idle_max": 100,
    "fresh_agents": 300,
    "interval": 5.0,
    "busy_seconds": 30.0,
    "rpm": 90.0,
    "run_seconds": (2.0, 8.0),
    "limited_history": 400,
    "rate_limit": 25,
}
SMOKE: Sizes = {
    "history": 20,
    "runtools_history": 100,
    "agents": 4,
    "idle_agents": (3, 10),
    "seq_idle_max": 3,
    "fresh_agents": 10,
    "interval": 1.0,
    "busy_seconds": 4.0,
    "rpm": 120.0,
    "run_seconds": (1.0, 2.0),
    "limited_history": 20,
    "rate_limit": 25,
}


@dataclass
class Poll:
    """One in-process poll of one source."""

    seconds: float
    requests: int  # sent, whatever the answer
    rate_limited: int  # answered 429
    runs: int  # counted by the exporter (agent_runs_total)

    @property
    def effective(self) -> float:
        """Requests in flight on average: requests x latency / wall time."""
        return self.requests * LATENCY_S / self.seconds if self.seconds else float("nan")


def _book_total(exporter: Exporter, name: str) -> int:
    values, live = exporter.book.snapshot()
    merged = {**values, **live}
    return int(sum(float(v) for (metric, _), v in merged.items() if metric == name and isinstance(v, int | float)))


def _poll(
    platform: str,
    base: str,
    workdir: Path,
    *,
    concurrency: int | None,
    agents: Sequence[str] = (),
    otlp: str | None = None,
    start_from: str = "3h",
    polls: int = 1,
    tune_gc: bool = True,
) -> Poll:
    """Build the exporter in this process for one source and poll it
    `polls` times; the figures are those of the last poll. `tune_gc`: as
    `once` does (the caller does it when polls run side by side)."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{platform}-", dir=workdir))
    extra: dict[str, Any] = {"start_from": start_from}
    if concurrency is not None:
        extra["concurrency"] = concurrency
    cfg = write_config(
        run_dir / "config.yaml",
        [source_entry(platform, base + PREFIX[platform], agents=agents, **extra)],
        traces={"endpoint": otlp, "protocol": "http/protobuf"} if otlp else None,
        listen=f"127.0.0.1:{free_port()}",
    )
    config = load_config(cfg)
    exporter = Exporter(config, Redactor(config.secrets()))
    (job,) = exporter.jobs
    try:
        with tuned_gc() if tune_gc else nullcontext():
            if exporter.drain:
                exporter.drain.start()
            for _ in range(polls):
                requests0 = _book_total(exporter, "agent_exporter_api_requests_total")
                limited0 = _book_total(exporter, "agent_exporter_rate_limited_total")
                t0 = time.perf_counter()
                if not job.poll():
                    raise RuntimeError(f"{platform} poll failed: {job.status.last_error}")
                seconds = time.perf_counter() - t0
        return Poll(
            seconds,
            _book_total(exporter, "agent_exporter_api_requests_total") - requests0,
            _book_total(exporter, "agent_exporter_rate_limited_total") - limited0,
            _book_total(exporter, "agent_runs_total"),
        )
    finally:
        exporter.shutdown()  # delivers what is left (<= 10 s)


def _figures(platform: str, variant: str, p: Poll) -> dict[str, float]:
    _log(f"{platform} {variant}: {p.requests} requests ({p.rate_limited} 429) in {p.seconds:.2f} s")
    return {**asdict(p), "effective": p.effective}


def _pair(platform: str, base: str, workdir: Path, **kw: Any) -> dict[str, dict[str, float]]:
    """The same poll with default settings and with concurrency 1."""
    return {
        variant: _figures(platform, variant, _poll(platform, base, workdir, concurrency=concurrency, **kw))
        for variant, concurrency in (("default", None), ("sequential", 1))
    }


def backfill(sizes: Sizes, workdir: Path) -> dict[str, object]:
    with ExitStack() as stack:
        receiver = stack.enter_context(Child(["-m", "benchmarks.receiver"], "OTLP receiver"))
        otlp = receiver.url.split()[0]
        others = [p for p in PLATFORMS if p != "runtools"]
        sims = {
            "runtools": stack.enter_context(
                start_simulator(history=sizes["runtools_history"], history_platforms=["runtools"], latency=LATENCY)
            ),
            "others": stack.enter_context(
                start_simulator(
                    history=sizes["history"], history_platforms=others, agents=sizes["agents"], latency=LATENCY
                )
            ),
        }
        kw: dict[str, dict[str, Any]] = {
            p: {
                "base": sims["runtools" if p == "runtools" else "others"].url,
                "workdir": workdir,
                "agents": sim_agents(p, agents=sizes["agents"]) if p == "agent_activities" else (),
                "otlp": otlp,
            }
            for p in PLATFORMS
        }
        out = {p: {"default": _figures(p, "default", _poll(p, concurrency=None, **kw[p]))} for p in PLATFORMS}
        # The four sequential reads side by side, to save two minutes: each
        # has one request in flight and spends its time waiting on it.
        with tuned_gc(), ThreadPoolExecutor(len(PLATFORMS)) as pool:
            futures = {p: pool.submit(_poll, p, concurrency=1, tune_gc=False, **kw[p]) for p in PLATFORMS}
            for p, future in futures.items():
                out[p]["sequential"] = _figures(p, "sequential", future.result())
    return cast(dict[str, object], out)


def idle(sizes: Sizes, workdir: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    quiet = logging.getLogger("exporter.app")  # "traces are off", once per exporter built
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for n in sizes["idle_agents"]:
            _idle_at(n, sizes, workdir, out)
    finally:
        quiet.setLevel(level)
    return out


def _idle_at(n: int, sizes: Sizes, workdir: Path, out: dict[str, object]) -> None:
    """The second poll (the first may read more: agent_activities asks twice
    as much of a new agent), default settings, one platform at a time; then
    the same with `concurrency: 1`, both platforms side by side."""
    with start_simulator(agents=n, latency=LATENCY) as sim:
        kw: dict[str, dict[str, Any]] = {
            p: {
                "base": sim.url,
                "workdir": workdir,
                "agents": sim_agents(p, agents=n) if p == "agent_activities" else (),
                "start_from": "1m",
                "polls": 2,
            }
            for p in PER_AGENT
        }
        default = {p: _poll(p, concurrency=None, **kw[p]) for p in PER_AGENT}
        seq: dict[str, Poll] = {}
        if n <= sizes["seq_idle_max"]:
            with tuned_gc(), ThreadPoolExecutor(len(PER_AGENT)) as pool:
                futures = {p: pool.submit(_poll, p, concurrency=1, tune_gc=False, **kw[p]) for p in PER_AGENT}
                seq = {p: f.result() for p, f in futures.items()}
    for p, d in default.items():
        _log(f"{p} idle, {n} agents: {d.requests} requests in {d.seconds:.2f} s")
        out[f"{p}/{n}"] = {
            "platform": p,
            "agents": n,
            "seconds": d.seconds,
            "requests": d.requests,
            "sequential_sum_s": d.requests * LATENCY_S,
            "sequential_s": seq[p].seconds if p in seq else None,
        }


def freshness(sizes: Sizes, workdir: Path) -> dict[str, object]:
    """Two exporters (default, sequential) in their own processes against one
    simulator with runs arriving, each sending to the same receiver under
    its own source names."""
    interval, n = sizes["interval"], sizes["fresh_agents"]
    variants = {"default": {}, "sequential": {"concurrency": 1}}
    receiver = TimedReceiver()
    otlp = receiver.start()
    try:
        with ExitStack() as stack:
            sim = stack.enter_context(
                start_simulator(rpm=sizes["rpm"], run_seconds=sizes["run_seconds"], agents=n, latency=LATENCY)
            )
            scrapers = {}
            for variant, extra in variants.items():
                sources = [
                    source_entry(
                        p,
                        sim.url + PREFIX[p],
                        agents=sim_agents(p, agents=n) if p == "agent_activities" else (),
                        interval=f"{interval}s",
                        start_from="1m",
                        lookback="10s",
                        name=f"{SOURCE_NAMES[p]}-{variant}",
                        **extra,
                    )
                    for p in PER_AGENT
                ]
                port = free_port()
                cfg = write_config(
                    workdir / f"fresh-{variant}.yaml",
                    sources,
                    traces={"endpoint": otlp, "protocol": "http/protobuf"},
                    listen=f"127.0.0.1:{port}",
                    state={"path": str(workdir / f"fresh-{variant}.db")},
                )
                ex = stack.enter_context(ExporterProc(cfg, port, workdir / f"fresh-{variant}.log"))
                ex.wait_ready()
                scrapers[variant] = Scraper(ex.url).start()
                stack.callback(scrapers[variant].stop)
            time.sleep(2 * interval)  # the first polls are behind: what follows is steady polling
            started = time.time()
            time.sleep(sizes["busy_seconds"])
            sim_control(sim.url, "pause")  # no new runs; started ones finish
            truths = {p: cast(list[dict[str, Any]], sim_truth(sim.url, p)["runs"]) for p in PER_AGENT}

            def all_arrived() -> bool:
                truths.update({p: cast(list[dict[str, Any]], sim_truth(sim.url, p)["runs"]) for p in PER_AGENT})
                return all(
                    (f"{SOURCE_NAMES[p]}-{v}", str(r["run_id"])) in receiver.arrived
                    for p in PER_AGENT
                    for v in variants
                    for r in truths[p]
                    if r["ended_at"] and _after(r, started)
                )

            time.sleep(sizes["run_seconds"][1])  # the longest run has ended
            wait_until(all_arrived, timeout=120, what="every run's root span", every=1.0)
            time.sleep(2 * 0.2)  # a last scrape
    finally:
        receiver.stop()
    return {
        "interval_s": interval,
        "agents": n,
        "platforms": {
            p: {v: latencies(f"{SOURCE_NAMES[p]}-{v}", truths[p], started, receiver, scrapers[v]) for v in variants}
            for p in PER_AGENT
        },
    }


def _after(run: dict[str, Any], started: float) -> bool:
    return datetime.fromisoformat(str(run["ended_at"]).replace("Z", "+00:00")).timestamp() >= started


def rate_limited(sizes: Sizes, workdir: Path) -> dict[str, object]:
    limit = sizes["rate_limit"]
    with (
        Child(["-m", "benchmarks.receiver"], "OTLP receiver") as receiver,
        start_simulator(
            history=sizes["limited_history"],
            history_platforms=["runtype"],
            agents=sizes["agents"],
            latency=LATENCY,
            rate_limit=limit,
        ) as sim,
    ):
        pair = _pair("runtype", sim.url, workdir, otlp=receiver.url.split()[0])
        truth_runs = len(cast(list[object], sim_truth(sim.url, "runtype")["runs"]))
    for p in pair.values():
        answered = p["requests"] - p["rate_limited"]
        p["ideal_s"] = answered / limit
        p["over_ideal"] = p["seconds"] / p["ideal_s"] if answered else float("nan")
        p["share_429"] = p["rate_limited"] / p["requests"] if p["requests"] else float("nan")
    return {"rate_limit": limit, "truth_runs": truth_runs, **pair}


PARTS: dict[str, Callable[[Sizes, Path], dict[str, object]]] = {
    "backfill": backfill,
    "idle": idle,
    "freshness": freshness,
    "rate_limit": rate_limited,
}


def _log(message: str) -> None:
    sys.stderr.write(f"[concurrency {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def main(smoke: bool, parts: Sequence[str] = tuple(PARTS)) -> dict[str, object]:
    sizes = SMOKE if smoke else FULL
    workdir = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    try:
        out: dict[str, object] = {"latency_s": LATENCY_S}
        for name in parts:
            t0 = time.monotonic()
            out[name] = PARTS[name](sizes, workdir)
            _log(f"{name}: {time.monotonic() - t0:.1f} s")
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args(argv)
    result = main(args.smoke, [x for x in args.parts.split(",") if x])
    from benchmarks.run import table

    sys.stdout.write(table({"concurrency": result}) + "\n")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
