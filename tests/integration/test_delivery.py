"""Span delivery when the trace backend misbehaves: outages, refusals, a
full outbox, and SIGTERM with spans still waiting."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import Simulator, SimulatorOptions
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver
from tests.conftest import truth_of, wait_for
from tests.integration.helpers import ExporterProcess


@pytest.fixture(scope="module")
def history() -> Iterator[Simulator]:
    sim = Simulator(
        SimulatorOptions(
            seed=9, runs_per_minute=0.001, history_runs=60, history_span_seconds=1800.0, history_platforms=("runtools",)
        )
    )
    sim.pause()
    sim.start(host="127.0.0.1", port=0)
    yield sim
    sim.stop()


def start(tmp_path: Path, sim: Simulator, receiver: OtlpReceiver, **traces: object) -> ExporterProcess:
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml",
        [
            {
                "name": "feed",
                "type": "runtools",
                "base_url": sim.url("runtools"),
                "api_key": "sim-runtools-key",
                "interval": "1s",
                "start_from": "1h",
            }
        ],
        port=port,
        traces={"endpoint": receiver.endpoint, **traces},
    )
    return ExporterProcess(config, port, tmp_path / "exporter.log").start()


def metric(exporter: ExporterProcess, name: str, **labels: str) -> float:
    return exporter.metrics().get((name, tuple(sorted(labels.items()))), 0.0)


def roots(receiver: OtlpReceiver) -> set[str]:
    return {s.trace_id for s in receiver.snapshot() if not s.parent_span_id}


def finished(sim: Simulator) -> int:
    return len(truth_of(sim)["platforms"]["runtools"]["runs"])


def test_an_outage_keeps_spans_until_the_backend_is_back(
    tmp_path: Path, history: Simulator, receiver: OtlpReceiver
) -> None:
    receiver.fail_with = 503
    exporter = start(tmp_path, history, receiver)
    try:
        wait_for(
            lambda: (
                metric(exporter, "agent_exporter_outbox_spans") > 0
                and metric(exporter, "agent_exporter_spans_exported_total", outcome="failure") > 0
            ),
            what="spans waiting in the outbox",
        )
        polls = metric(exporter, "agent_exporter_polls_total", source="feed", outcome="success")
        wait_for(
            lambda: metric(exporter, "agent_exporter_polls_total", source="feed", outcome="success") > polls + 2,
            what="polling goes on during the outage",
        )
        receiver.fail_with = None
        wait_for(lambda: len(roots(receiver)) == finished(history), what="every trace delivered after the outage")
        wait_for(lambda: metric(exporter, "agent_exporter_outbox_spans") == 0, what="outbox empty")
    finally:
        assert exporter.stop() == 0


def test_a_refused_batch_is_dropped_and_never_retried(
    tmp_path: Path, history: Simulator, receiver: OtlpReceiver
) -> None:
    receiver.fail_with = 400
    exporter = start(tmp_path, history, receiver)
    try:
        wait_for(
            lambda: (
                metric(exporter, "agent_exporter_polls_total", source="feed", outcome="success") >= 2
                and metric(exporter, "agent_exporter_outbox_spans") == 0
            ),
            what="outbox emptied",
        )
        rejected = metric(exporter, "agent_exporter_spans_exported_total", outcome="rejected")
        assert rejected > 0
        assert metric(exporter, "agent_exporter_spans_exported_total", outcome="failure") == 0
        posts = receiver.posts
        wait_for(
            lambda: metric(exporter, "agent_exporter_polls_total", source="feed", outcome="success") >= 5,
            what="more polls",
        )
        assert receiver.posts == posts, "a refused batch was sent again"
    finally:
        assert exporter.stop() == 0


def test_a_full_outbox_drops_the_oldest_and_counts_them(
    tmp_path: Path, history: Simulator, receiver: OtlpReceiver
) -> None:
    receiver.fail_with = 503
    exporter = start(tmp_path, history, receiver, outbox_max_spans=100)
    try:
        wait_for(
            lambda: metric(exporter, "agent_exporter_spans_exported_total", outcome="dropped") > 0,
            what="spans dropped past the bound",
        )
        assert 0 < metric(exporter, "agent_exporter_outbox_spans") <= 100
    finally:
        assert exporter.stop() == 0


def test_sigterm_with_the_backend_down_exits_0_and_keeps_the_spans(
    tmp_path: Path, history: Simulator, receiver: OtlpReceiver
) -> None:
    receiver.fail_with = 503
    exporter = start(tmp_path, history, receiver)
    wait_for(lambda: metric(exporter, "agent_exporter_outbox_spans") > 0, what="spans waiting")
    assert exporter.stop(signal.SIGTERM, timeout=30) == 0  # the flush gives up after its 10 s
    receiver.fail_with = None
    restarted = ExporterProcess(exporter.config, exporter.port, exporter.log).start()
    try:
        wait_for(lambda: len(roots(receiver)) == finished(history), what="the kept spans delivered after restart")
    finally:
        assert restarted.stop() == 0
