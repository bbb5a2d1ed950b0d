"""Real processes for integration tests: the exporter as a subprocess, its
/metrics scraped over HTTP (parsed by testkit) and summed by label; and the
parts of the chaos run (kill -9 rounds against a faulty simulator, the end
state compared with its truth) that several tests share."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from simulator import Simulator, SimulatorOptions, parse_faults
from testkit.exporter_io import Metrics, free_port, parse_metrics, write_config
from testkit.receiver import OtlpReceiver, ReceivedSpan
from tests.conftest import truth_of, wait_for


class ExporterProcess:
    """`agent-activity-exporter run` as a real process."""

    def __init__(self, config: Path, port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.port, self.log = config, port, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ExporterProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "exporter", "run", "-c", str(self.config), "--log-level", "debug"],
                stdout=out,
                stderr=out,
                env=self.env,
            )
        wait_for(self._ready, timeout=30, what="/readyz")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"exporter exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> Metrics:
        return parse_metrics(httpx.get(f"{self.url}/metrics", timeout=5).text)

    def status(self) -> Any:
        """The /status JSON, for assertions to index freely."""
        return httpx.get(f"{self.url}/status", timeout=5).json()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def by_label(metrics: Metrics, name: str, label: str, **match: str) -> dict[str, float]:
    """Sum of the samples of `name` matching `match`, by the value of `label`;
    zero-valued series are left out."""
    out: dict[str, float] = {}
    for (sample, labels), value in metrics.items():
        d = dict(labels)
        if sample == name and value and all(d.get(k) == v for k, v in match.items()):
            out[d[label]] = out.get(d[label], 0.0) + value
    return out


# -- the chaos run (tests/integration/test_chaos.py, test_concurrency.py) -----
#
# One exporter reads all four platforms of a simulator, is killed with
# SIGKILL at random moments while the trace backend is down for a while, and
# in the end its traces and counters must equal the simulator's truth.

CHAOS_FAULTS = "429=0.05,500=0.05,html=0.03,truncate=0.03,slow=0.02,dup=0.1,oddtime=0.2,backwards=0.1,junk=0.1"
CHAOS_RUN_SECONDS = (1.0, 5.0)
KEYS = {
    "runtools": "rt-key-9f27c1d0e8",
    "agent_activities": "aa-token-51be7a0c42",
    "bctrl": "bc-token-c3d94e11f0",
    "runtype": "ry-token-7d0a2b6c95",
}
SOURCE = {"runtools": "rt", "agent_activities": "aa", "bctrl": "bc", "runtype": "ry"}  # platform -> source name
OTLP_TOKEN = "otlp-bearer-4e5f6a7b8c"


def four_sources(sim: Simulator, **extra: object) -> list[dict[str, object]]:
    """A source per platform of `sim`, reading its last hour; `extra` keys
    (e.g. concurrency) go into every source."""
    common = {"interval": "1s", "start_from": "1h", "lookback": "5s", "timeout": "3s", **extra}
    return [
        # 5-minute windows: the hour of history is read in settled windows (no overlap, keys not stored).
        {
            "name": "rt",
            "type": "runtools",
            "base_url": sim.url("runtools"),
            "api_key": KEYS["runtools"],
            "max_window": "5m",
            **common,
        },
        {
            "name": "aa",
            "type": "agent_activities",
            "base_url": sim.url("agent_activities"),
            "token": KEYS["agent_activities"],
            "agents": list(sim.agents("agent_activities")),
            **common,
        },
        {"name": "bc", "type": "bctrl", "base_url": sim.url("bctrl"), "token": KEYS["bctrl"], **common},
        {"name": "ry", "type": "runtype", "base_url": sim.url("runtype"), "token": KEYS["runtype"], **common},
    ]


def unique_spans(receiver: OtlpReceiver) -> dict[tuple[str, str], ReceivedSpan]:
    """Every span received, once; a span received twice must be identical."""
    out: dict[tuple[str, str], ReceivedSpan] = {}
    for span in receiver.snapshot():
        first = out.setdefault((span.trace_id, span.span_id), span)
        assert first == span, (
            f"span {span.name} of source {span.resource.get('agent_activity.source')} was sent twice"
            f" with different content: {_differences(first, span)}"
        )
    return out


def _differences(a: ReceivedSpan, b: ReceivedSpan) -> str:
    fields = ("parent_span_id", "start_ns", "end_ns", "status_code", "status_message", "resource")
    out = [f"{f}: {getattr(a, f)!r} != {getattr(b, f)!r}" for f in fields if getattr(a, f) != getattr(b, f)]
    keys = sorted(set(a.attributes) | set(b.attributes))
    out += [
        f"{k}: {a.attributes.get(k)!r} != {b.attributes.get(k)!r}"
        for k in keys
        if a.attributes.get(k) != b.attributes.get(k)
    ]
    if a.events != b.events:
        out.append(f"events: {len(a.events)} != {len(b.events)}: {a.events!r} != {b.events!r}"[:2000])
    return "; ".join(out)


def exported_runs(receiver: OtlpReceiver, source: str) -> set[str]:
    """The run ids of the root spans `source` sent."""
    return {
        str(s.attributes["agent_activity.run_id"])
        for s in unique_spans(receiver).values()
        if s.resource.get("agent_activity.source") == source
        and s.attributes.get("gen_ai.operation.name") == "invoke_agent"
    }


def kill_9_rounds(
    config: Path, port: int, log: Path, receiver: OtlpReceiver, rng: random.Random, rounds: int = 4
) -> tuple[ExporterProcess, list[str]]:
    """Start the exporter, then `rounds` times: let it work a random while
    (the backend answering 503 in the second round), scrape /metrics and
    /status, SIGKILL it and start it again on the same state file. Returns
    the exporter left running and the pages scraped."""
    exporter = ExporterProcess(config, port, log)
    outputs: list[str] = []
    try:
        exporter.start()
        for round_ in range(rounds):
            receiver.fail_with = 503 if round_ == 1 else None  # the backend is down for a while
            time.sleep(rng.uniform(1.5, 4.0))  # let it work, then kill it at some moment
            outputs.append(httpx.get(f"{exporter.url}/metrics", timeout=5).text)
            outputs.append(httpx.get(f"{exporter.url}/status", timeout=5).text)
            assert exporter.stop(signal.SIGKILL) == -signal.SIGKILL
            exporter = ExporterProcess(config, port, log)
            exporter.start()
    except BaseException:
        if exporter.proc is not None:
            exporter.stop(signal.SIGKILL)
        raise
    finally:
        receiver.fail_with = None
    return exporter, outputs


def assert_equal_to_the_truth(
    exporter: ExporterProcess | Sequence[ExporterProcess],
    receiver: OtlpReceiver,
    truth: Any,
    sources: Mapping[str, str] = SOURCE,
) -> Metrics:
    """Wait until every finished run of `truth` (the simulator's, per
    platform) reached the receiver once, then check that the counters equal
    it: runs per agent and status, tool calls, cost, runtools' activity
    events. `sources`: platform -> name of the source reading it. Several
    exporters (replicas): their counters summed, once their leases have
    settled. Returns the final /metrics (summed)."""
    exporters = [exporter] if isinstance(exporter, ExporterProcess) else list(exporter)
    for platform, source in sources.items():
        runs = truth[platform]["runs"]

        def all_exported(source: str = source, runs: list[dict[str, Any]] = runs) -> bool:
            return exported_runs(receiver, source) == {r["run_id"] for r in runs}

        wait_for(all_exported, timeout=120, interval=0.5, what=f"{platform}: every finished run, once")
    if len(exporters) > 1:

        def settled() -> bool:
            try:
                check_counters(summed_metrics(exporters), truth, sources)
            except AssertionError:
                return False
            return True

        wait_for(settled, timeout=30, interval=0.5, what="the counters summed over the replicas to equal the truth")
    metrics = summed_metrics(exporters)
    check_counters(metrics, truth, sources)
    return metrics


def summed_metrics(exporters: Sequence[ExporterProcess]) -> Metrics:
    """Every exporter's /metrics, each sample summed over them (what
    `sum without (instance)` gives in Prometheus)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for exporter in exporters:
        for key, value in exporter.metrics().items():
            out[key] = out.get(key, 0.0) + value
    return out


def check_counters(metrics: Metrics, truth: Any, sources: Mapping[str, str]) -> None:
    """The counters of `metrics` equal the truth (assertion errors say where not)."""
    for platform, source in sources.items():
        runs = truth[platform]["runs"]
        got = Counter(
            {
                (dict(labels)["agent"], dict(labels)["status"]): int(v)
                for (n, labels), v in metrics.items()
                if n == "agent_runs_total" and dict(labels)["source"] == source and v
            }
        )
        assert got == Counter((r["agent"], r["status"]) for r in runs), platform
        tools = by_label(metrics, "agent_tool_calls_total", "tool", source=source)
        want: Counter[str] = Counter(str(t["name"]) for r in runs for t in r["tool_calls"])
        assert {k: int(v) for k, v in tools.items()} == dict(want), platform
        cost = sum(by_label(metrics, "agent_cost_usd_total", "agent", source=source).values())
        assert math.isclose(cost, sum(float(r["cost_usd"] or 0) for r in runs), abs_tol=1e-9), platform
    if "runtools" in sources:
        events = Counter({tuple(e["key"]): e["count"] for e in truth["runtools"]["events"]})
        got_events = Counter(
            {
                (dict(labels)["category"], dict(labels)["severity"], dict(labels)["status"]): int(v)
                for (n, labels), v in metrics.items()
                if n == "agent_activity_events_total" and dict(labels)["source"] == sources["runtools"] and v
            }
        )
        assert got_events == events


def assert_no_secret(text: str) -> None:
    for secret in [*KEYS.values(), OTLP_TOKEN]:
        assert secret not in text, "a secret reached the logs, /metrics or /status"


def chaos_options(**overrides: Any) -> SimulatorOptions:
    """Every fault the simulator has, live runs and an hour of history on
    all four platforms; `overrides` replace options (e.g. latency_seconds)."""
    options: dict[str, Any] = {
        "seed": 5,
        "runs_per_minute": 40.0,
        "run_seconds": CHAOS_RUN_SECONDS,
        "history_runs": 40,
        "history_span_seconds": 1800.0,
        "agents_per_platform": 3,
        "keys": dict(KEYS),
        "faults": parse_faults(CHAOS_FAULTS),
        "slow_seconds": 1.0,
        **overrides,
    }
    return SimulatorOptions(**options)


def chaos_run(tmp_path: Path, sim: Simulator, rng: random.Random, **source_extra: object) -> tuple[Metrics, str]:
    """The chaos run against the started `sim`: one exporter reading its
    four platforms (`source_extra` in every source) through kill_9_rounds,
    then the simulator paused until every started run has ended and the end
    state checked by assert_equal_to_the_truth. Returns the final /metrics
    and everything the exporter wrote or served (log, /metrics, /status),
    for the caller's own checks. Stops the simulator."""
    receiver = OtlpReceiver()
    endpoint = receiver.start()
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml",
        four_sources(sim, **source_extra),
        port=port,
        traces={"endpoint": endpoint, "headers": {"authorization": f"Bearer {OTLP_TOKEN}"}},
    )
    log = tmp_path / "exporter.log"
    exporter: ExporterProcess | None = None
    try:
        exporter, outputs = kill_9_rounds(config, port, log, receiver, rng)
        sim.pause()
        time.sleep(CHAOS_RUN_SECONDS[1] + 0.5)  # every started run has now ended
        truth = {p: truth_of(sim)["platforms"][p] for p in SOURCE}
        metrics = assert_equal_to_the_truth(exporter, receiver, truth)
        outputs.append(httpx.get(f"{exporter.url}/metrics", timeout=5).text)
        outputs.append(httpx.get(f"{exporter.url}/status", timeout=5).text)
    finally:
        if exporter is not None:
            exporter.stop()
        receiver.stop()
        sim.stop()
    return metrics, log.read_text() + "".join(outputs)
