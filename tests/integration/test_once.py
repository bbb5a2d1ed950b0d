"""`once` over real HTTP: both OTLP protocols through the SDK's exporters,
and the exit code that cron jobs rely on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.convert.traces import trace_id_for
from simulator import Simulator, SimulatorOptions
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver
from tests.conftest import truth_of


@pytest.fixture(scope="module")
def history() -> Iterator[Simulator]:
    """A simulator holding only finished history: the truth does not move."""
    sim = Simulator(SimulatorOptions(seed=3, runs_per_minute=0.001, history_runs=40, history_span_seconds=1200.0))
    sim.start(host="127.0.0.1", port=0)
    sim.pause()
    yield sim
    sim.stop()


def once(
    tmp_path: Path,
    sim: Simulator,
    traces: dict[str, object],
    key: str = "sim-runtools-key",
    state: dict[str, object] | None = None,
) -> int:
    config = write_config(
        tmp_path / "config.yaml",
        [{"name": "feed", "type": "runtools", "base_url": sim.url("runtools"), "api_key": key, "start_from": "1h"}],
        port=free_port(),
        traces=traces,
        **({"state": state} if state else {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "exporter", "once", "-c", str(config)], timeout=120, capture_output=True
    ).returncode


@pytest.mark.parametrize(
    ("protocol", "engine"), [("http/protobuf", "sqlite"), ("grpc", "sqlite"), ("grpc", "postgresql")]
)
def test_once_delivers_one_trace_per_finished_run(
    tmp_path: Path, history: Simulator, protocol: str, engine: str, request: pytest.FixtureRequest
) -> None:
    """On either state engine: the second `once` finds the first one's checkpoint."""
    state: dict[str, object] | None = (
        {"url": request.getfixturevalue("postgres_url")} if engine == "postgresql" else None
    )
    receiver = OtlpReceiver()
    endpoint = receiver.start_grpc() if protocol == "grpc" else receiver.start()
    try:
        assert once(tmp_path, history, {"endpoint": endpoint, "protocol": protocol}, state=state) == 0
        truth = truth_of(history)["platforms"]["runtools"]["runs"]
        expected = {trace_id_for("runtools", history.url("runtools"), r["run_id"]) for r in truth}
        root_traces = [s.trace_id for s in receiver.snapshot() if not s.parent_span_id]
        assert sorted(root_traces) == sorted(expected)  # exactly one root per run, none missing
        assert all(s.resource["agent_activity.source"] == "feed" for s in receiver.snapshot())
        # A second `once` on the same state sends nothing again.
        spans = len(receiver.snapshot())
        assert once(tmp_path, history, {"endpoint": endpoint, "protocol": protocol}, state=state) == 0
        assert len(receiver.snapshot()) == spans
        assert (tmp_path / "state.db").exists() == (engine == "sqlite")
    finally:
        receiver.stop()


def test_once_exits_1_with_a_wrong_key(tmp_path: Path, history: Simulator) -> None:
    assert once(tmp_path, history, {"protocol": "file", "file": str(tmp_path / "t.jsonl")}, key="wrong-key") == 1
