"""Log-record senders against the testkit's real OTLP receiver: http/protobuf
to /v1/logs, the gRPC LogsService, and OTLP/JSON lines; the resource is the
spans' resource; rows written in the other form (a protocol switch) go out
the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from exporter.config import LogsConfig, TracesConfig
from exporter.convert.traces import span_id_for, trace_id_for
from exporter.export.otlp import DELIVERED, FileSender, make_sender
from exporter.model import ActivityEvent, Severity
from testkit.receiver import OtlpReceiver
from tests.unit.test_traces import make_run

BASE = "https://api.example"
T0 = datetime(2026, 5, 10, 12, 0, tzinfo=timezone.utc)
EVENTS = [
    ActivityEvent(id="e1", name="tool.call.failed", time=T0, category="tool", severity=Severity.ERROR, run_id="r1"),
    ActivityEvent(id="e2", name="sandbox.created", time=T0, category="sandbox", severity=Severity.INFO),
]


def logs_config(protocol: str, url: str | None = None, file: str = "./logs.jsonl") -> LogsConfig:
    return LogsConfig(enabled=True, endpoint=url, url=url, protocol=protocol, headers={}, file=file, timeout=5.0)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    yield r
    r.stop()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otlp_senders_deliver_log_records_with_the_spans_resource(receiver: OtlpReceiver, protocol: str) -> None:
    url = receiver.start_grpc() if protocol == "grpc" else receiver.start() + "/v1/logs"
    sender = make_sender(logs_config(protocol, url), "svc")
    assert sender is not None
    count, row = sender.encode_logs("runtools", BASE, EVENTS, 4096)
    assert count == 2
    assert sender.send("feed", [row]) == DELIVERED
    sender.close()
    got = receiver.log_snapshot()
    assert [r.attributes["agent_activity.event.id"] for r in got] == ["e1", "e2"]
    trace = trace_id_for("runtools", BASE, "r1")
    assert (got[0].trace_id, got[0].span_id) == (trace, span_id_for(trace, "run:r1"))
    assert (got[1].trace_id, got[1].span_id) == ("", "")
    assert receiver.spans == []
    # The resource is the spans' resource (same head), source included.
    traces = make_sender(
        TracesConfig(
            endpoint=url,
            url=url.replace("/v1/logs", "/v1/traces"),
            protocol=protocol,
            headers={},
            file="",
            capture_content=False,
            max_attribute_length=4096,
            timeout=5.0,
            outbox_max_spans=100,
            enabled=True,
        ),
        "svc",
    )
    assert traces is not None
    assert traces.send("feed", [traces.encode(make_run(), False, 4096)[1]]) == DELIVERED
    traces.close()
    assert got[0].resource == receiver.snapshot()[0].resource
    assert got[0].resource["agent_activity.source"] == "feed" and got[0].resource["service.name"] == "svc"


def test_a_file_row_switched_to_otlp_and_back_says_the_same(receiver: OtlpReceiver, tmp_path: Path) -> None:
    file_sender = FileSender(str(tmp_path / "logs.jsonl"), "svc", "logs")
    http = make_sender(logs_config("http/protobuf", receiver.start() + "/v1/logs"), "svc")
    assert http is not None
    _, json_row = file_sender.encode_logs("bctrl", BASE, EVENTS, 4096)
    _, protobuf_row = http.encode_logs("bctrl", BASE, EVENTS, 4096)
    assert http.send("feed", [json_row, protobuf_row]) == DELIVERED
    http.close()
    first, second = receiver.log_snapshot()[:2], receiver.log_snapshot()[2:]
    assert [r.raw for r in first] == [r.raw for r in second]
    assert file_sender.send("feed", [protobuf_row, json_row]) == DELIVERED
    [line] = (tmp_path / "logs.jsonl").read_text().splitlines()
    request = json.loads(line)
    [resource_logs] = request["resourceLogs"]
    records = resource_logs["scopeLogs"][0]["logRecords"]
    assert records[:2] == records[2:] and len(records) == 4
    assert records[0]["eventName"] == "agent_activity.bctrl.tool" and records[0]["severityNumber"] == 17
    assert {"key": "agent_activity.source", "value": {"stringValue": "feed"}} in resource_logs["resource"]["attributes"]
