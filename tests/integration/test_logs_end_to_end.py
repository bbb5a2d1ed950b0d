"""Activity items as OTLP log records, end to end: the simulator over real
HTTP, the exporter as a real process killed with SIGKILL in the middle, a
real OTLP receiver taking /v1/traces and /v1/logs.

What it must show (#17): with `logs.enabled: true` every activity item of
runtools, bctrl and agent_activities reaches the logs receiver once (a
re-send only as an identical record), with the severity and trace of its
run, across a kill -9 while records wait in the outbox; with logs off (the
default) no log record is sent and no new series appears.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator import Simulator, SimulatorOptions
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver, ReceivedLog, ReceivedSpan
from tests.conftest import truth_of, wait_for
from tests.integration.helpers import ExporterProcess, by_label

SOURCE = {"runtools": "rt", "bctrl": "bc", "agent_activities": "aa"}
SEVERITY_NUMBERS = {"info": 9, "warning": 13, "error": 17, "unknown": 0}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    s = Simulator(
        SimulatorOptions(
            seed=17,
            runs_per_minute=0.001,
            history_runs=25,
            history_span_seconds=900.0,
            history_platforms=tuple(SOURCE),
            agents_per_platform=2,
        )
    )
    s.pause()  # a fixed truth: what the platforms hold does not change while read
    s.start(host="127.0.0.1", port=0)
    yield s
    s.stop()


def sources(sim: Simulator) -> list[dict[str, object]]:
    common = {"interval": "1s", "start_from": "1h", "lookback": "5s", "timeout": "3s"}
    return [
        {"name": "rt", "type": "runtools", "base_url": sim.url("runtools"), "api_key": "sim-runtools-key", **common},
        {"name": "bc", "type": "bctrl", "base_url": sim.url("bctrl"), "token": "sim-bctrl-token", **common},
        {
            "name": "aa",
            "type": "agent_activities",
            "base_url": sim.url("agent_activities"),
            "token": "sim-agent_activities-token",
            "agents": list(sim.agents("agent_activities")),
            **common,
        },
    ]


def exporter_for(tmp_path: Path, sim: Simulator, receiver: OtlpReceiver, **top: object) -> ExporterProcess:
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml", sources(sim), port=port, traces={"endpoint": receiver.endpoint}, **top
    )
    return ExporterProcess(config, port, tmp_path / "exporter.log")


def unique_logs(receiver: OtlpReceiver) -> dict[tuple[str, str], ReceivedLog]:
    """Every record received, once, by (source, item id); a record received
    twice must be the identical record."""
    out: dict[tuple[str, str], ReceivedLog] = {}
    for record in receiver.log_snapshot():
        key = (str(record.resource["agent_activity.source"]), str(record.attributes["agent_activity.event.id"]))
        assert out.setdefault(key, record).raw == record.raw, f"{key} re-sent with different content"
    return out


def logs_of(receiver: OtlpReceiver, source: str) -> list[ReceivedLog]:
    return [r for (s, _), r in unique_logs(receiver).items() if s == source]


def run_spans(receiver: OtlpReceiver, source: str) -> dict[str, ReceivedSpan]:
    return {
        str(s.attributes["agent_activity.run_id"]): s
        for s in receiver.snapshot()
        if s.resource.get("agent_activity.source") == source
        and s.attributes.get("gen_ai.operation.name") == "invoke_agent"
    }


def truth_items(truth: dict[str, Any], platform: str) -> Counter[tuple[str, str, str]]:
    """(category, severity, status) -> count of the items the platform holds
    (an item without a status is status "none", as the exporter reports it)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for e in truth[platform]["events"]:
        category, severity, status = e["key"]
        counts[(category, severity, status or "none")] += e["count"]
    return counts


def item_keys(records: list[ReceivedLog]) -> Counter[tuple[str, str, str]]:
    return Counter(
        (
            str(r.attributes["agent_activity.event.category"]),
            str(r.attributes["agent_activity.event.severity"]),
            str(r.attributes["agent_activity.event.status"]),
        )
        for r in records
    )


def timeline_events(span: ReceivedSpan) -> list[tuple[str, int]]:
    """The span events that are timeline entries (not steps without times)."""
    return sorted((name, t) for name, t, attrs in span.events if "agent_activity.timeline.index" in attrs)


def complete(receiver: OtlpReceiver, truth: dict[str, Any]) -> bool:
    runs = truth["agent_activities"]["runs"]
    return (
        all(item_keys(logs_of(receiver, SOURCE[p])) == truth_items(truth, p) for p in ("runtools", "bctrl"))
        and set(run_spans(receiver, "aa")) == {r["run_id"] for r in runs}
        and len(logs_of(receiver, "aa")) == sum(len(timeline_events(s)) for s in run_spans(receiver, "aa").values())
    )


def test_every_activity_item_is_one_log_record_linked_to_its_run_across_kill_9(
    tmp_path: Path, sim: Simulator, receiver: OtlpReceiver
) -> None:
    truth = truth_of(sim)["platforms"]
    assert sum(truth_items(truth, "runtools").values()) > 50 and sum(truth_items(truth, "bctrl").values()) > 50
    exporter = exporter_for(tmp_path, sim, receiver, logs={"enabled": True, "endpoint": receiver.endpoint})
    receiver.fail_with = 503  # the backend is down: records wait in the outbox
    exporter.start()
    try:
        wait_for(
            lambda: by_label(exporter.metrics(), "agent_exporter_log_records_exported_total", "outcome").get("failure"),
            what="log records waiting in the outbox",
        )
    finally:
        assert exporter.stop(signal.SIGKILL) == -signal.SIGKILL
    assert receiver.log_snapshot() == []
    receiver.fail_with = None
    exporter.start()  # the same state file
    try:
        wait_for(lambda: complete(receiver, truth), timeout=60, interval=0.5, what="every item once, every run")
        metrics = exporter.metrics()
    finally:
        assert exporter.stop() == 0

    for platform in ("runtools", "bctrl"):
        records = logs_of(receiver, SOURCE[platform])
        assert item_keys(records) == truth_items(truth, platform), platform  # by category, severity, status
        assert {r.event_name for r in records} <= {f"agent_activity.{platform}.{c}" for c, _, _ in item_keys(records)}
        for r in records:
            severity = str(r.attributes["agent_activity.event.severity"])
            assert r.severity_number == SEVERITY_NUMBERS[severity], r
        # Each record of a finished run carries the trace and span of that
        # run's span as the receiver got it; a record of a run still open
        # carries its run's trace all the same (its span comes later).
        spans = run_spans(receiver, SOURCE[platform])
        finished = {r["run_id"] for r in truth[platform]["runs"]}
        linked = [r for r in records if r.attributes.get("agent_activity.run_id") in finished]
        assert linked and len({r.attributes["agent_activity.run_id"] for r in linked}) == len(finished)
        for r in linked:
            span = spans[str(r.attributes["agent_activity.run_id"])]
            assert (r.trace_id, r.span_id, r.flags) == (span.trace_id, span.span_id, 1)
        for r in records:
            assert bool(r.trace_id) == ("agent_activity.run_id" in r.attributes)

    # agent_activities: the platform's truth has no item counts; its
    # timeline entries are the run spans' events, each a record of that run.
    aa_spans = run_spans(receiver, "aa")
    got = sorted(
        (str(r.attributes["agent_activity.run_id"]), str(r.attributes["agent_activity.event.type"]), r.time_ns)
        for r in logs_of(receiver, "aa")
    )
    want = sorted((run_id, name, t) for run_id, s in aa_spans.items() for name, t in timeline_events(s))
    assert got == want and got
    for r in logs_of(receiver, "aa"):
        span = aa_spans[str(r.attributes["agent_activity.run_id"])]
        assert (r.trace_id, r.span_id) == (span.trace_id, span.span_id)

    total = len(unique_logs(receiver))
    delivered = by_label(metrics, "agent_exporter_log_records_exported_total", "outcome")
    # Every record delivered was counted; records delivered twice (a re-send
    # after the kill) are counted per delivery, never fewer than there are.
    assert delivered["success"] >= total and "rejected" not in delivered
    assert {r.resource["agent_activity.source"] for r in receiver.log_snapshot()} == set(SOURCE.values())


def test_logs_off_by_default_send_nothing_and_add_no_series(
    tmp_path: Path, sim: Simulator, receiver: OtlpReceiver
) -> None:
    truth = truth_of(sim)["platforms"]
    exporter = exporter_for(tmp_path, sim, receiver).start()
    try:
        wait_for(
            lambda: all(set(run_spans(receiver, SOURCE[p])) == {r["run_id"] for r in truth[p]["runs"]} for p in SOURCE),
            timeout=60,
            interval=0.5,
            what="every finished run exported",
        )
        text = exporter.metrics()
    finally:
        assert exporter.stop() == 0
    assert receiver.log_snapshot() == []
    assert not [name for name, _ in text if name.startswith("agent_exporter_log_records")]
