"""All four platforms in one exporter process, against the simulator over
real HTTP, spans received by a real OTLP/HTTP endpoint, /metrics scraped.

What it must show (issue: the three other platforms): for each platform one
trace per finished top-level run, sub-agent runs inside their parent's
trace, failed and timed-out runs with ERROR status, tool calls as child spans
with their names; runs, tool calls, tokens and cost on /metrics equal to
what the platforms hold; an idle source costs one listing request per feed
or agent per interval; one source failing (401) does not stop the others.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.convert.traces import trace_id_for
from exporter.sources.registry import PLATFORMS as REGISTERED
from simulator import Simulator, SimulatorOptions
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver, ReceivedSpan
from tests.conftest import truth_of, wait_for
from tests.integration.helpers import ExporterProcess, by_label

RUN_SECONDS = (1.0, 5.0)
PLATFORMS = tuple(REGISTERED)
ERROR = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, OtlpReceiver, ExporterProcess]]:
    tmp = tmp_path_factory.mktemp("platforms")
    sim = Simulator(
        SimulatorOptions(
            seed=11,
            runs_per_minute=40.0,
            run_seconds=RUN_SECONDS,
            history_runs=30,
            history_span_seconds=900.0,
            agents_per_platform=3,
        )
    )
    sim.start(host="127.0.0.1", port=0)
    receiver = OtlpReceiver()
    endpoint = receiver.start()
    port = free_port()
    config = write_config(
        tmp / "config.yaml", sources(sim), port=port, traces={"endpoint": endpoint, "protocol": "http/protobuf"}
    )
    exporter = ExporterProcess(config, port, tmp / "exporter.log").start()
    time.sleep(4)  # let live runs start, call tools and finish while polled (not an assertion)
    settle(sim)
    yield sim, receiver, exporter
    exporter.stop()
    receiver.stop()
    sim.stop()


def sources(sim: Simulator) -> list[dict[str, object]]:
    common = {"interval": "1s", "start_from": "1h", "lookback": "5s"}
    return [
        {"name": "rt", "type": "runtools", "base_url": sim.url("runtools"), "api_key": "sim-runtools-key", **common},
        {
            "name": "aa",
            "type": "agent_activities",
            "base_url": sim.url("agent_activities"),
            "token": "sim-agent_activities-token",
            "agents": list(sim.agents("agent_activities")),
            **common,
        },
        {"name": "bc", "type": "bctrl", "base_url": sim.url("bctrl"), "token": "sim-bctrl-token", **common},
        {
            "name": "ry",
            "type": "runtype",
            "base_url": sim.url("runtype"),
            "token": "sim-runtype-token",
            "tool_calls": True,
            **common,
        },
    ]


SOURCE = {"runtools": "rt", "agent_activities": "aa", "bctrl": "bc", "runtype": "ry"}


def settle(sim: Simulator) -> None:
    """No new runs; after the longest run time every started run has ended."""
    sim.pause()
    time.sleep(RUN_SECONDS[1] + 0.5)


def truth_runs(sim: Simulator, platform: str) -> list[dict[str, Any]]:
    """A platform's finished runs in the simulator, JSON the assertions index freely."""
    runs: list[dict[str, Any]] = truth_of(sim)["platforms"][platform]["runs"]
    return runs


def caught_up(sim: Simulator, receiver: OtlpReceiver, platform: str) -> Callable[[], bool]:
    """A check for wait_for: every finished run of the platform has its span."""
    return lambda: len(run_spans(receiver, SOURCE[platform])) == len(truth_runs(sim, platform))


def spans_of(receiver: OtlpReceiver, source: str) -> list[ReceivedSpan]:
    return [s for s in receiver.snapshot() if s.resource.get("agent_activity.source") == source]


def run_spans(receiver: OtlpReceiver, source: str) -> dict[str, ReceivedSpan]:
    """invoke_agent spans by platform run id (a re-sent duplicate must be identical)."""
    out: dict[str, ReceivedSpan] = {}
    for s in spans_of(receiver, source):
        if s.attributes.get("gen_ai.operation.name") == "invoke_agent":
            run_id = str(s.attributes["agent_activity.run_id"])
            assert out.setdefault(run_id, s) == s, f"run {run_id} re-sent with different content"
    return out


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_finished_run_is_one_span_in_the_right_trace(
    stack: tuple[Simulator, OtlpReceiver, ExporterProcess], platform: str
) -> None:
    sim, receiver, _ = stack
    truth = truth_runs(sim, platform)
    assert {r["status"] for r in truth} >= {"succeeded", "failed"}
    source, base_url = SOURCE[platform], sim.url(platform)
    wait_for(
        lambda: set(run_spans(receiver, source)) == {r["run_id"] for r in truth},
        timeout=60,
        what=f"{platform}: every finished run exported",
    )
    spans = run_spans(receiver, source)
    all_spans = spans_of(receiver, source)
    for run in truth:
        span = spans[str(run["run_id"])]
        root_id = str(run["root_run_id"] or run["run_id"])
        assert span.trace_id == trace_id_for(platform, base_url, root_id)
        if run["parent_run_id"]:  # a sub-agent: a child of its parent's span, in the parent's trace
            parent = spans.get(str(run["parent_run_id"]))
            assert parent is not None and span.parent_span_id == parent.span_id
        else:
            assert span.parent_span_id == ""
        assert (span.status_code == ERROR) == (run["status"] in ("failed", "timed_out")), run
        assert span.attributes["agent_activity.status"] == run["status"]
        tools = sorted(
            (str(s.attributes["gen_ai.tool.call.id"]), s.name)
            for s in all_spans
            if s.parent_span_id == span.span_id and "gen_ai.tool.call.id" in s.attributes
        )
        expected = sorted((str(t["id"]), f"execute_tool {t['name']}") for t in run["tool_calls"])
        assert tools == expected, f"{platform} run {run['run_id']}: tool-call spans"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_counters_equal_what_the_platform_holds(
    stack: tuple[Simulator, OtlpReceiver, ExporterProcess], platform: str
) -> None:
    sim, receiver, exporter = stack
    truth = truth_runs(sim, platform)
    source = SOURCE[platform]
    wait_for(lambda: len(run_spans(receiver, source)) == len(truth), timeout=60, what="export")
    metrics = exporter.metrics()
    runs = Counter((str(r["agent"]), str(r["status"])) for r in truth)
    got = Counter(
        {
            (dict(labels)["agent"], dict(labels)["status"]): int(v)
            for (name, labels), v in metrics.items()
            if name == "agent_runs_total" and dict(labels)["source"] == source and v
        }
    )
    assert got == runs
    tool_truth = Counter((str(t["name"]), str(t["status"])) for r in truth for t in r["tool_calls"])
    tool_got = Counter(
        {
            (dict(labels)["tool"], dict(labels)["status"]): int(v)
            for (name, labels), v in metrics.items()
            if name == "agent_tool_calls_total" and dict(labels)["source"] == source and v
        }
    )
    assert tool_got == tool_truth
    for kind in ("input", "output", "total"):
        expected = sum(int(r[f"{kind}_tokens"] or 0) for r in truth)
        if kind == "total":  # a run that gives only input/output still has a total
            expected = sum(
                int(r["total_tokens"] or 0) or int(r["input_tokens"] or 0) + int(r["output_tokens"] or 0) for r in truth
            )
        assert sum(by_label(metrics, "agent_tokens_total", "type", source=source, type=kind).values()) == expected
    cost = sum(float(r["cost_usd"] or 0) for r in truth)
    assert math.isclose(
        sum(by_label(metrics, "agent_cost_usd_total", "agent", source=source).values()),
        cost,
        rel_tol=1e-9,
        abs_tol=1e-9,
    )


def test_idle_sources_cost_one_listing_request_per_interval(
    stack: tuple[Simulator, OtlpReceiver, ExporterProcess],
) -> None:
    sim, receiver, exporter = stack
    for platform in PLATFORMS:
        wait_for(
            caught_up(sim, receiver, platform),
            timeout=60,
            what="caught up",
        )

    def requests_and_polls() -> tuple[dict[str, float], dict[str, float]]:
        m = exporter.metrics()
        return (
            by_label(m, "agent_exporter_api_requests_total", "source"),
            by_label(m, "agent_exporter_polls_total", "source", outcome="success"),
        )

    polls_wanted = 10
    req0, polls0 = requests_and_polls()
    wait_for(
        lambda: all(requests_and_polls()[1].get(s, 0) - polls0.get(s, 0) >= polls_wanted for s in SOURCE.values()),
        timeout=90,
        what="ten idle polls of every source",
    )
    req1, polls1 = requests_and_polls()
    agents = {
        "runtools": 1,
        "agent_activities": len(sim.agents("agent_activities")),
        "bctrl": 1,
        "runtype": len(sim.agents("runtype")),
    }
    for platform, source in SOURCE.items():
        polls = polls1[source] - polls0[source]
        per_poll = (req1[source] - req0[source]) / polls
        # A scrape can fall inside a poll: its requests are counted, the poll not yet; that
        # blurs the figure by at most one poll's requests over the polls counted.
        blur = agents[platform] / polls
        # One listing request per feed or agent; agent_activities also asks for its in-flight list
        # every fifth quiet poll (inflight_every).
        extra = agents[platform] / 5 if platform == "agent_activities" else 0.0
        assert agents[platform] - blur <= per_poll <= agents[platform] + extra + blur, (platform, per_poll)


def test_a_revoked_key_marks_one_source_down_and_the_others_go_on(
    stack: tuple[Simulator, OtlpReceiver, ExporterProcess],
) -> None:
    sim, receiver, exporter = stack
    sim.revoke("bctrl")
    try:
        wait_for(
            lambda: exporter.metrics().get(("agent_exporter_source_up", (("source", "bc"),))) == 0.0,
            timeout=30,
            what="bctrl marked down",
        )
        before = {p: len(truth_runs(sim, p)) for p in PLATFORMS}
        sim.resume()
        time.sleep(3)
        settle(sim)
        for platform in ("runtools", "agent_activities", "runtype"):
            if len(truth_runs(sim, platform)) > before[platform]:
                wait_for(
                    caught_up(sim, receiver, platform),
                    timeout=60,
                    what=f"{platform} goes on while bctrl is down",
                )
        status = exporter.status()["sources"]["bc"]
        assert status["up"] is False and "401" in status["last_error"]
        assert exporter.metrics()[("agent_exporter_polls_total", (("outcome", "auth_error"), ("source", "bc")))] > 0
    finally:
        sim.restore("bctrl")
    wait_for(
        lambda: exporter.metrics().get(("agent_exporter_source_up", (("source", "bc"),))) == 1.0,
        timeout=30,
        what="bctrl up again by itself",
    )
    wait_for(
        lambda: len(run_spans(receiver, "bc")) == len(truth_runs(sim, "bctrl")),
        timeout=60,
        what="bctrl catches up after its key works again",
    )
