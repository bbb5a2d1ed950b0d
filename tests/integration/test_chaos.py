"""Nothing lost, nothing doubled, with everything going wrong at once.

One exporter process reads all four platforms from a simulator injecting
every fault it has (429 with both Retry-After forms, 5xx, HTML with 200,
truncated JSON, slow answers, repeated items and cursors), the trace backend
answers 503 for a while and rejects nothing, and the exporter is killed with
SIGKILL at random moments and restarted on the same state file. In the end
the traces and every counter equal the simulator's truth, a span sent twice
is identical, and no secret appears in any output.
"""

from __future__ import annotations

import math
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from simulator import Simulator, SimulatorOptions, parse_faults
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver, ReceivedSpan
from tests.conftest import truth_of, wait_for
from tests.integration.helpers import ExporterProcess, by_label

FAULTS = "429=0.05,500=0.05,html=0.03,truncate=0.03,slow=0.02,dup=0.1,oddtime=0.2,backwards=0.1,junk=0.1"
RUN_SECONDS = (1.0, 5.0)
KEYS = {
    "runtools": "rt-key-9f27c1d0e8",
    "agent_activities": "aa-token-51be7a0c42",
    "bctrl": "bc-token-c3d94e11f0",
    "runtype": "ry-token-7d0a2b6c95",
}
SOURCE = {"runtools": "rt", "agent_activities": "aa", "bctrl": "bc", "runtype": "ry"}
OTLP_TOKEN = "otlp-bearer-4e5f6a7b8c"


def sources(sim: Simulator) -> list[dict[str, object]]:
    common = {"interval": "1s", "start_from": "1h", "lookback": "5s", "timeout": "3s"}
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
    out: dict[tuple[str, str], ReceivedSpan] = {}
    for span in receiver.snapshot():
        first = out.setdefault((span.trace_id, span.span_id), span)
        assert first == span, f"span {span.name} was sent twice with different content"
    return out


def exported_runs(receiver: OtlpReceiver, source: str) -> set[str]:
    return {
        str(s.attributes["agent_activity.run_id"])
        for s in unique_spans(receiver).values()
        if s.resource.get("agent_activity.source") == source
        and s.attributes.get("gen_ai.operation.name") == "invoke_agent"
    }


def test_kill_9_faults_and_outages_end_equal_to_the_truth(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    sim = Simulator(
        SimulatorOptions(
            seed=5,
            runs_per_minute=40.0,
            run_seconds=RUN_SECONDS,
            history_runs=40,
            history_span_seconds=1800.0,
            agents_per_platform=3,
            keys=dict(KEYS),
            faults=parse_faults(FAULTS),
            slow_seconds=1.0,
        )
    )
    sim.start(host="127.0.0.1", port=0)
    receiver = OtlpReceiver()
    endpoint = receiver.start()
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml",
        sources(sim),
        port=port,
        traces={"endpoint": endpoint, "headers": {"authorization": f"Bearer {OTLP_TOKEN}"}},
    )
    log = tmp_path / "exporter.log"
    exporter = ExporterProcess(config, port, log).start()
    outputs: list[str] = []
    try:
        for round_ in range(4):
            receiver.fail_with = 503 if round_ == 1 else None  # the backend is down for a while
            time.sleep(rng.uniform(1.5, 4.0))  # let it work, then kill it at some moment
            outputs.append(httpx.get(f"{exporter.url}/metrics", timeout=5).text)
            outputs.append(httpx.get(f"{exporter.url}/status", timeout=5).text)
            assert exporter.stop(signal.SIGKILL) == -signal.SIGKILL
            exporter = ExporterProcess(config, port, log).start()
        receiver.fail_with = None
        sim.pause()
        time.sleep(RUN_SECONDS[1] + 0.5)  # every started run has now ended
        truth = {p: truth_of(sim)["platforms"][p] for p in SOURCE}

        for platform, source in SOURCE.items():
            runs = truth[platform]["runs"]

            def all_exported(source: str = source, runs: list[dict[str, Any]] = runs) -> bool:
                return exported_runs(receiver, source) == {r["run_id"] for r in runs}

            wait_for(
                all_exported,
                timeout=120,
                interval=0.5,
                what=f"{platform}: every finished run, once",
            )
        metrics = exporter.metrics()
        for platform, source in SOURCE.items():
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
        events = Counter({tuple(e["key"]): e["count"] for e in truth["runtools"]["events"]})
        got_events = Counter(
            {
                (dict(labels)["category"], dict(labels)["severity"], dict(labels)["status"]): int(v)
                for (n, labels), v in metrics.items()
                if n == "agent_activity_events_total" and dict(labels)["source"] == "rt" and v
            }
        )
        assert got_events == events
        faults = by_label(metrics, "agent_exporter_api_requests_total", "code")
        assert faults.get("429", 0) > 0 and faults.get("500", 0) > 0, "the faults were exercised"
        assert sum(by_label(metrics, "agent_exporter_spans_exported_total", "outcome", outcome="failure").values()) > 0
        outputs.append(httpx.get(f"{exporter.url}/metrics", timeout=5).text)
        outputs.append(httpx.get(f"{exporter.url}/status", timeout=5).text)
    finally:
        exporter.stop()
        receiver.stop()
        sim.stop()
    everything = log.read_text() + "".join(outputs)
    for secret in [*KEYS.values(), OTLP_TOKEN]:
        assert secret not in everything, "a secret reached the logs, /metrics or /status"
