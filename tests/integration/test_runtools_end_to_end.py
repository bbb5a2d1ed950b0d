"""The exporter as a real process against the simulator over real HTTP,
spans received by a real OTLP/HTTP endpoint, /metrics scraped over HTTP.

What it must show (issue: core exporter): one trace per finished run, failed
ones ERROR with tool calls as child spans, agent_runs_total equal to the
platform's truth per status, runs that finish later exported when they
finish, and a restart (SIGTERM, start again) that neither resets nor
double-counts a counter and re-sends no trace.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from exporter.convert.traces import trace_id_for
from simulator import Simulator, SimulatorOptions
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver, ReceivedSpan
from tests.conftest import truth_of, wait_for
from tests.integration.helpers import ExporterProcess, by_label

KEY = "sim-runtools-key"
RUN_SECONDS = (1.0, 4.0)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(
        SimulatorOptions(
            seed=7, runs_per_minute=90.0, run_seconds=RUN_SECONDS, history_runs=25, history_span_seconds=900.0
        )
    )
    sim.start(host="127.0.0.1", port=0)
    yield sim
    sim.stop()


def finished_runs(sim: Simulator) -> list[dict[str, Any]]:
    """The simulator's finished runs, JSON the assertions index freely."""
    runs: list[dict[str, Any]] = truth_of(sim)["platforms"]["runtools"]["runs"]
    return runs


def roots(receiver: OtlpReceiver) -> dict[str, ReceivedSpan]:
    """Root spans by trace id; a re-sent duplicate must be identical."""
    out: dict[str, ReceivedSpan] = {}
    for span in receiver.snapshot():
        if span.parent_span_id == "":
            if span.trace_id in out:
                assert out[span.trace_id] == span, "a re-sent root span differs from the first"
            out[span.trace_id] = span
    return out


def settle(sim: Simulator) -> list[dict[str, Any]]:
    """Pause new runs; once the longest run time has passed, every started
    run has finished and the truth is final."""
    sim.pause()
    time.sleep(RUN_SECONDS[1] + 0.5)
    return finished_runs(sim)


def test_run_exports_every_finished_run_once_and_survives_restart(
    tmp_path: Path, simulator: Simulator, receiver: OtlpReceiver
) -> None:
    port = free_port()
    base_url = simulator.url("runtools")
    config = write_config(
        tmp_path / "config.yaml",
        [
            {
                "name": "feed",
                "type": "runtools",
                "base_url": base_url,
                "api_key": KEY,
                "interval": "1s",
                "start_from": "1h",
                "lookback": "5s",
            }
        ],
        port=port,
        traces={"endpoint": receiver.endpoint, "protocol": "http/protobuf"},
    )
    exporter = ExporterProcess(config, port, tmp_path / "exporter.log").start()
    time.sleep(3)  # let live runs start and finish while the exporter polls (not a timing assertion)
    truth = settle(simulator)
    assert {r["status"] for r in truth} >= {"succeeded", "failed"}, "the simulator should produce both outcomes"

    expected = {trace_id_for("runtools", base_url, str(r["run_id"])): r for r in truth}
    wait_for(lambda: set(roots(receiver)) == set(expected), timeout=60, what="one trace per finished run")

    for trace_id, root in roots(receiver).items():
        run = expected[trace_id]
        assert root.name == f"invoke_agent {run['agent']}"
        assert root.attributes["agent_activity.run_id"] == run["run_id"]
        assert root.status_code == (
            2 if run["status"] in ("failed", "timed_out") else 1 if run["status"] == "succeeded" else 0
        )
        children = {
            s.attributes.get("gen_ai.tool.call.id"): s
            for s in receiver.snapshot()
            if s.trace_id == trace_id and s.parent_span_id == root.span_id
        }
        assert sorted(cast(str, c) for c in children if c) == sorted(str(t["id"]) for t in run["tool_calls"])
        for call in run["tool_calls"]:
            assert children[call["id"]].name == f"execute_tool {call['name']}"

    def counts_match() -> bool:
        got = by_label(exporter.metrics(), "agent_runs_total", "status", source="feed")
        return got == dict(Counter(str(r["status"]) for r in truth))

    wait_for(counts_match, timeout=30, what="agent_runs_total to equal the truth per status")
    first_truth = len(truth)
    before = exporter.metrics()
    spans_before = len(receiver.snapshot())

    assert exporter.stop() == 0  # SIGTERM: clean exit
    restarted = ExporterProcess(config, port, tmp_path / "exporter.log").start()
    wait_for(lambda: restarted.status()["sources"]["feed"]["polls"] >= 3, timeout=30, what="polls after restart")
    after = restarted.metrics()
    for (name, labels), value in before.items():
        if name.startswith(
            (
                "agent_runs_total",
                "agent_tool_calls_total",
                "agent_activity_events_total",
                "agent_run_duration_seconds_count",
            )
        ):
            assert after.get((name, labels)) == value, f"{name}{dict(labels)} changed across the restart"
    assert len(receiver.snapshot()) == spans_before, "a restart re-sent spans"

    # Runs that finish after the restart are exported when they finish.
    simulator.resume()
    time.sleep(2)
    truth = settle(simulator)
    expected_ids = {trace_id_for("runtools", base_url, str(r["run_id"])) for r in truth}
    assert len(expected_ids) > first_truth, "new runs finished after the restart"
    wait_for(lambda: set(roots(receiver)) == expected_ids, timeout=60, what="the new runs' traces")
    assert restarted.stop() == 0
