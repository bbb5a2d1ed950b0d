"""The exporter's traces in a real trace backend: Arize Phoenix (PyPI
`arize-phoenix`, in its own venv from scripts/install-phoenix.sh), which
takes OTLP/HTTP protobuf on /v1/traces and has a REST API to read spans back.

What it must show (issue: plugs into a real monitoring stack): what the
exporter sends arrives intact. The exporter runs `once` twice against the
same simulator data (history only, so nothing changes between the runs):
once writing OTLP/JSON lines (the reference: the exact spans it exports),
once sending to Phoenix, with OTEL_RESOURCE_ATTRIBUTES choosing the Phoenix
project. Read back from Phoenix, every span is there with the same ids,
parent, name, times (Phoenix keeps microseconds), status, attributes and
events; every trace has one root and only parents of its own; every finished
top-level run of the four platforms is one trace, its sub-agents inside it;
and Phoenix classifies the spans as AGENT and TOOL spans.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.convert.traces import trace_id_for
from simulator import Simulator, SimulatorOptions
from testkit.exporter_io import free_port, write_config
from tests.conftest import truth_of, wait_for
from tests.integration.stack import Phoenix

PROJECT = "agent-activity-exporter-test"
TIME_TOLERANCE_NS = 1_000  # Phoenix stores times with microsecond precision


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    server = Phoenix(tmp_path_factory.mktemp("phoenix"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    sim = Simulator(SimulatorOptions(seed=21, runs_per_minute=0, history_runs=6, history_span_seconds=600.0))
    sim.start(host="127.0.0.1", port=0)
    yield sim
    sim.stop()


def sources(sim: Simulator) -> list[dict[str, object]]:
    common = {"interval": "1s", "start_from": "1h"}
    return [
        {"name": "rt", "type": "runtools", "base_url": sim.url("runtools"), "api_key": "sim-runtools-key", **common},
        {
            "name": "aa",
            "type": "agent_activities",
            "base_url": sim.url("agent_activities"),
            "token": "sim-agent_activities-token",
            "agents": sim.agents("agent_activities"),
            **common,
        },
        {"name": "bc", "type": "bctrl", "base_url": sim.url("bctrl"), "token": "sim-bctrl-token", **common},
        {"name": "ry", "type": "runtype", "base_url": sim.url("runtype"), "token": "sim-runtype-token", **common},
    ]


def export_once(workdir: Path, sim: Simulator, traces: dict[str, object], env: dict[str, str] | None = None) -> None:
    workdir.mkdir()
    config = write_config(workdir / "config.yaml", sources(sim), port=free_port(), traces=traces)
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "once", "-c", str(config)],
        check=False,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"once exited {result.returncode}:\n{result.stderr[-3000:]}"


def reference_spans(path: Path) -> dict[str, dict[str, Any]]:
    """The exported OTLP/JSON spans by id, JSON the assertions index freely."""
    spans: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    spans[span["spanId"]] = span
    return spans


def otlp_json_value(v: dict[str, Any]) -> object:
    """A value of the exporter's OTLP/JSON."""
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(str(v["intValue"]))
    if "doubleValue" in v:
        return float(v["doubleValue"])
    return tuple(otlp_json_value(x) for x in v["arrayValue"]["values"])


def phoenix_value(v: dict[str, Any]) -> object:
    """A value of Phoenix's /spans/otlpv1 answer (snake_case, nulls for the unused kinds)."""
    if v.get("array_value") is not None:
        return tuple(phoenix_value(x) for x in v["array_value"]["values"])
    for kind in ("string_value", "bool_value", "double_value"):
        if v.get(kind) is not None:
            return v[kind]
    if v.get("int_value") is not None:
        return int(str(v["int_value"]))
    raise AssertionError(f"no value in {v}")


def attributes(items: list[dict[str, Any]] | None, value: Callable[[dict[str, Any]], object]) -> dict[str, object]:
    return {a["key"]: value(a["value"]) for a in items or []}


def test_phoenix_reads_back_every_span_intact(tmp_path: Path, phoenix: Phoenix, simulator: Simulator) -> None:
    export_once(tmp_path / "reference", simulator, {"protocol": "file", "file": str(tmp_path / "reference.jsonl")})
    reference = reference_spans(tmp_path / "reference.jsonl")
    export_once(
        tmp_path / "phoenix",
        simulator,
        {"endpoint": phoenix.url, "protocol": "http/protobuf"},
        env={"OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={PROJECT}"},
    )

    # Phoenix ingests asynchronously: poll until it holds as many spans.
    def all_stored() -> list[dict[str, Any]]:
        spans = phoenix.spans(PROJECT)
        return spans if len(spans) >= len(reference) else []

    stored = wait_for(
        all_stored,
        timeout=30,
        interval=0.5,
        what="Phoenix to store every span",
    )
    got = {str(s["span_id"]): s for s in stored}
    assert len(stored) == len(got) == len(reference) and set(got) == set(reference)

    for span_id, ref in reference.items():
        span = got[span_id]
        where = f"{ref['name']} ({span_id})"
        assert span["trace_id"] == ref["traceId"], where
        assert (span["parent_span_id"] or "") == ref.get("parentSpanId", ""), where
        assert span["name"] == ref["name"]
        assert span["kind"] == "SPAN_KIND_INTERNAL", where
        assert abs(int(span["start_time_unix_nano"]) - int(ref["startTimeUnixNano"])) <= TIME_TOLERANCE_NS, where
        assert abs(int(span["end_time_unix_nano"]) - int(ref["endTimeUnixNano"])) <= TIME_TOLERANCE_NS, where
        status = ref["status"]
        assert span["status"]["code"] == status.get("code", 0), where
        assert (span["status"]["message"] or None) == status.get("message"), where
        sent = attributes(ref["attributes"], otlp_json_value)
        kept = attributes(span["attributes"], phoenix_value)
        # Phoenix adds OpenInference names it derives (tool.name, llm.*); ours must all be there, equal.
        assert {k: kept.get(k) for k in sent} == sent, where
        sent_events = [
            (e["name"], int(e["timeUnixNano"]), attributes(e.get("attributes"), otlp_json_value))
            for e in ref.get("events", [])
        ]
        kept_events = [
            (e["name"], int(e["time_unix_nano"]), attributes(e.get("attributes"), phoenix_value))
            for e in span["events"] or []
        ]
        assert [(n, a) for n, _, a in kept_events] == [(n, a) for n, _, a in sent_events], where
        assert all(abs(k[1] - s[1]) <= TIME_TOLERANCE_NS for k, s in zip(kept_events, sent_events, strict=True))

    # Structure: one root per trace, parents inside the trace, tool calls under runs.
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in stored:
        by_trace.setdefault(str(span["trace_id"]), []).append(span)
    names = {str(s["span_id"]): str(s["name"]) for s in stored}
    for trace_id, spans in by_trace.items():
        ids = {s["span_id"] for s in spans}
        roots = [s for s in spans if not s["parent_span_id"]]
        assert len(roots) == 1 and str(roots[0]["name"]).startswith("invoke_agent "), trace_id
        assert all(s["parent_span_id"] in ids for s in spans if s["parent_span_id"]), trace_id
        for s in spans:
            if str(s["name"]).startswith("execute_tool "):
                assert names[str(s["parent_span_id"])].startswith("invoke_agent "), trace_id

    # Against what the platforms hold: one trace per finished top-level run,
    # sub-agent runs inside their top-level run's trace.
    truth = truth_of(simulator)["platforms"]
    base = {str(s["type"]): str(s["base_url"]) for s in sources(simulator)}
    runs = {str(r["run_id"]): r for p in truth.values() for r in p["runs"]}
    expected: set[str] = set()
    run_spans = {
        (str(s["trace_id"]), attributes(s["attributes"], phoenix_value).get("agent_activity.run_id"))
        for s in stored
        if str(s["name"]).startswith("invoke_agent ")
    }
    for platform, body in truth.items():
        for run in body["runs"]:
            top = run["root_run_id"] or run["run_id"]
            trace_id = trace_id_for(platform, base[platform], str(top))
            assert (trace_id, run["run_id"]) in run_spans, f"{platform} run {run['run_id']} not in its trace"
            if not run["root_run_id"]:
                expected.add(trace_id)
    assert set(by_trace) == expected
    assert any(r["root_run_id"] for r in runs.values()), "the data has sub-agent runs"
    assert any(s["status"]["code"] == 2 for s in stored), "the data has failed runs"

    # Phoenix shows them as agent and tool spans (openinference.span.kind).
    response = httpx.get(f"{phoenix.url}/v1/projects/{PROJECT}/spans", params={"limit": 1000}, timeout=30)
    response.raise_for_status()
    kinds = {(str(s["name"]).split(" ")[0], s["span_kind"]) for s in response.json()["data"]}
    assert {("invoke_agent", "AGENT"), ("execute_tool", "TOOL")} <= kinds
    assert not {k for k in kinds if k[0] == "invoke_agent" and k[1] != "AGENT"}
