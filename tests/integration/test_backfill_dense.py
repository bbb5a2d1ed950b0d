"""A long, dense backfill, as a busy organisation has it, read from
`start_from` by `once` and by `run`: every finished run is exported exactly
once and the counters equal the platforms' truth.

The history is dense in the way that broke before: runs last 3 to 180 s, so
hundreds are open at any moment and most cross the reader's window and
batch boundaries, and it holds many more spans than the outbox may
(`traces.outbox_max_spans`), so a reader that outruns delivery must wait
for the backend instead of dropping its oldest traces. (`once` used to fill
the outbox before delivering anything and lost the oldest runs.) When the
backend fails, dropping is allowed, and every dropped run is named in the
log and counted.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.sources.registry import PLATFORMS as REGISTERED
from exporter.state.store import StateStore
from simulator import Simulator, SimulatorOptions
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver
from tests.conftest import truth_of, wait_for
from tests.integration.helpers import ExporterProcess

PLATFORMS = tuple(REGISTERED)
SOURCE = {"runtools": "rt", "agent_activities": "aa", "bctrl": "bc", "runtype": "ry"}
HISTORY_RUNS = 500  # per platform; about 4,000 runtools events
OUTBOX_MAX_SPANS = 300  # far below the history's ~6,000 spans


@pytest.fixture(scope="module")
def dense() -> Iterator[Simulator]:
    """Finished history only (new runs paused): the truth does not move."""
    sim = Simulator(
        SimulatorOptions(
            seed=23,
            runs_per_minute=0.001,
            run_seconds=(3.0, 180.0),
            history_runs=HISTORY_RUNS,
            history_span_seconds=600.0,
            agents_per_platform=6,
        )
    )
    sim.start(host="127.0.0.1", port=0)
    sim.pause()
    yield sim
    sim.stop()


def config(
    tmp_path: Path, sim: Simulator, endpoint: str, platforms: tuple[str, ...] = PLATFORMS, port: int = 0
) -> Path:
    common = {"interval": "1s", "start_from": "1h"}
    entries: dict[str, dict[str, object]] = {
        "runtools": {"api_key": "sim-runtools-key"},
        "agent_activities": {"token": "sim-agent_activities-token", "agents": list(sim.agents("agent_activities"))},
        "bctrl": {"token": "sim-bctrl-token"},
        "runtype": {"token": "sim-runtype-token", "tool_calls": True},
    }
    sources = [{"name": SOURCE[p], "type": p, "base_url": sim.url(p), **entries[p], **common} for p in platforms]
    traces = {"endpoint": endpoint, "protocol": "http/protobuf", "outbox_max_spans": OUTBOX_MAX_SPANS}
    return write_config(tmp_path / "config.yaml", sources, port=port or free_port(), traces=traces)


def truth_runs(sim: Simulator, platform: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = truth_of(sim)["platforms"][platform]["runs"]
    return runs


def exported(receiver: OtlpReceiver, source: str) -> Counter[str]:
    """How many times each run's invoke_agent span arrived."""
    return Counter(
        str(s.attributes["agent_activity.run_id"])
        for s in receiver.snapshot()
        if s.resource.get("agent_activity.source") == source
        and s.attributes.get("gen_ai.operation.name") == "invoke_agent"
    )


def runs_by_agent_status(series: dict[tuple[str, tuple[str, ...]], float], source: str) -> Counter[tuple[str, str]]:
    """agent_runs_total{source} as {(agent, status): n}; labels are (source, platform, agent, status)."""
    return Counter(
        {
            (labels[2], labels[3]): int(v)
            for (name, labels), v in series.items()
            if name == "agent_runs_total" and labels[0] == source and v
        }
    )


def persisted_counters(path: Path) -> dict[tuple[str, tuple[str, ...]], float]:
    """The totals `once` committed to its state file (histograms left out)."""
    store = StateStore(path)
    try:
        return {key: float(v) for key, v in store.series().items() if isinstance(v, (int, float))}
    finally:
        store.close()


def assert_every_run_once(sim: Simulator, receiver: OtlpReceiver, platform: str) -> None:
    truth = truth_runs(sim, platform)
    got = exported(receiver, SOURCE[platform])
    assert set(got) == {str(r["run_id"]) for r in truth}, f"{platform}: runs missing or unknown"
    assert set(got.values()) == {1}, f"{platform}: a run exported more than once"


def test_once_exports_every_finished_run_of_a_dense_history_exactly_once(tmp_path: Path, dense: Simulator) -> None:
    receiver = OtlpReceiver()
    endpoint = receiver.start()
    try:
        cfg = config(tmp_path, dense, endpoint)
        done = subprocess.run(
            [sys.executable, "-m", "exporter", "once", "-c", str(cfg)], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "dropped" not in done.stderr
        series = persisted_counters(tmp_path / "state.db")
        for platform in PLATFORMS:
            assert_every_run_once(dense, receiver, platform)
            truth = Counter((str(r["agent"]), str(r["status"])) for r in truth_runs(dense, platform))
            assert runs_by_agent_status(series, SOURCE[platform]) == truth, platform
        assert series.get(("agent_exporter_spans_exported_total", ("dropped",)), 0.0) == 0.0
        assert len(receiver.snapshot()) > 10 * OUTBOX_MAX_SPANS  # the history did not fit the outbox
    finally:
        receiver.stop()


def test_run_exports_every_finished_run_of_a_dense_history_exactly_once(tmp_path: Path, dense: Simulator) -> None:
    receiver = OtlpReceiver()
    endpoint = receiver.start()
    port = free_port()
    exporter = ExporterProcess(config(tmp_path, dense, endpoint, port=port), port, tmp_path / "exporter.log").start()
    try:
        total = sum(len(truth_runs(dense, p)) for p in PLATFORMS)
        wait_for(
            lambda: sum(len(exported(receiver, SOURCE[p])) for p in PLATFORMS) >= total,
            timeout=240,
            what="every finished run exported",
        )
        metrics = exporter.metrics()  # counters commit with their spans, before those are sent
        for platform in PLATFORMS:
            assert_every_run_once(dense, receiver, platform)
            truth = Counter((str(r["agent"]), str(r["status"])) for r in truth_runs(dense, platform))
            got = Counter(
                {
                    (dict(labels)["agent"], dict(labels)["status"]): int(v)
                    for (name, labels), v in metrics.items()
                    if name == "agent_runs_total" and dict(labels)["source"] == SOURCE[platform] and v
                }
            )
            assert got == truth, platform
        assert metrics.get(("agent_exporter_spans_exported_total", (("outcome", "dropped"),)), 0.0) == 0.0
    finally:
        assert exporter.stop() == 0
        receiver.stop()


def test_a_failing_backend_drops_the_oldest_and_names_every_dropped_run(tmp_path: Path, dense: Simulator) -> None:
    """Nothing disappears silently: each finished run is either still in
    the outbox (delivered once the backend is back) or named as dropped."""
    receiver = OtlpReceiver()
    endpoint = receiver.start()
    receiver.fail_with = 503
    try:
        cfg = config(tmp_path, dense, endpoint, platforms=("runtools",))
        done = subprocess.run(
            [sys.executable, "-m", "exporter", "once", "-c", str(cfg)], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 1  # spans left undelivered: cron must see it
        dropped = {
            m
            for line in done.stderr.splitlines()
            if "outbox full" in line
            for m in re.findall(r"rt/(\S+?)(?:,|$)", line)
        }
        store = StateStore(tmp_path / "state.db")
        waiting = {row.run for row in store.outbox_take(10**9)}
        truth = {str(r["run_id"]) for r in truth_runs(dense, "runtools")}
        assert dropped and waiting and not dropped & waiting
        assert dropped | waiting == truth
        counted = store.series().get(("agent_exporter_spans_exported_total", ("dropped",)))
        spans = sum(int(n) for n in re.findall(r"dropped the (\d+) oldest span", done.stderr))
        assert counted == spans > 0
    finally:
        receiver.stop()
