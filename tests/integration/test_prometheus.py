"""The shipped monitoring config against a real Prometheus (Debian package
`prometheus` 2.42, installed by scripts/install-prometheus.sh, which the
test setup runs) scraping the exporter, which runs as a real process
against the simulator with all four platforms.

What it must show (issue: plugs into a real monitoring stack):
- `promtool check rules`, `promtool test rules` (every rule firing and not
  firing, with one exporter and with several replicas) and `promtool check
  config` (prometheus.yml, prometheus-replicas.yml) pass;
- every expression of every dashboard panel and template variable parses in
  Prometheus and returns data (at least one finite sample) with every
  variable at "All";
- every alert rule is loaded and evaluated by Prometheus without error, and
  every series it looks at exists. Method: the rule's expression is split at
  its top-level and/or/unless and each operand is evaluated without its
  final comparison to a number (`stack.signals`); each must return data.
  Whether the comparison then fires at the right moment is what the promtool
  unit tests show. Two rules are also seen firing on real data: rejected
  records (a proxy breaks some runtools events) and incomplete runs
  (runs.max_open_age is shorter than some runs);
- agent_run_duration_seconds exemplars, scraped as OpenMetrics and stored
  with --enable-feature=exemplar-storage, carry the trace_id of a trace the
  exporter delivered, in a span of that agent with that duration, and the
  duration panels' own queries return them.

Simulator options make every series exist: history (counters from the first
scrape), live runs (rates), failures and timeouts, tool calls, tokens and
cost (runtype), 429/500 faults (API errors, rate limits), sub-agents.
"""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.convert.metrics import METRICS
from exporter.sources.registry import PLATFORMS
from simulator import Simulator, SimulatorOptions, parse_faults
from testkit.exporter_io import free_port, write_config
from testkit.receiver import OtlpReceiver, ReceivedSpan
from tests.conftest import json_of, wait_for
from tests.integration.helpers import ExporterProcess
from tests.integration.stack import (
    ALERT_TESTS,
    ALERTS,
    DASHBOARDS,
    PROMETHEUS_CONFIG,
    BreakingProxy,
    Expression,
    Prometheus,
    alert_rules,
    all_return_data,
    dashboard_expressions,
    dashboards,
    grafana_to_promql,
    metric_names,
    panels,
    prometheus_config,
    require_program,
    signals,
    variable_expressions,
)

# config/prometheus.yml marks it critical. It is a runtools agent of the simulator
# whose history (seed 5) has a failed and a timed-out run.
CRITICAL_AGENT = "support-triage"


# -- promtool and the files themselves (no Prometheus server needed) ------------------------


def promtool(*args: str, cwd: Path | None = None) -> str:
    binary = require_program("promtool", "scripts/install-prometheus.sh")
    result = subprocess.run([binary, *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_checks_and_unit_tests_pass() -> None:
    rules = alert_rules()
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", str(ALERTS))
    assert "SUCCESS" in promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    for config in (PROMETHEUS_CONFIG, PROMETHEUS_CONFIG.with_name("prometheus-replicas.yml")):
        assert "is valid prometheus config file syntax" in promtool("check", "config", str(config))


def test_every_alert_rule_has_unit_tests_firing_and_not_firing() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {str(rule["alert"]) for rule in alert_rules()}
    assert names - firing == set(), "rules never shown firing"
    assert names - quiet == set(), "rules never shown not firing"
    for rule in alert_rules():
        assert json_of(rule["labels"])["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description", "runbook"} <= set(json_of(rule["annotations"])), rule["alert"]


def test_dashboards_are_generated_and_wired_to_variables_and_traces() -> None:
    generated = runpy.run_path(str(DASHBOARDS / "generate.py"))["render"]()
    for name, text in generated.items():
        assert (DASHBOARDS / name).read_text() == text, f"{name} differs from generate.py: run it and commit both"
    assert set(generated) == {path.name for path in DASHBOARDS.glob("*.json")}

    for name, board in dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}  # type: ignore[index]
        assert variables["datasource"]["type"] == "datasource", name
        wanted = {"source"} if name == "agent-activity-exporter.json" else {"source", "platform", "agent"}
        assert wanted <= set(variables), f"{name}: template variables {sorted(variables)}"
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, panel["title"])
            for target in panel["targets"]:  # type: ignore[attr-defined]
                assert target["datasource"]["uid"] == "${datasource}"
                if "agent_run_duration_seconds_bucket" in target["expr"] and panel["type"] in ("timeseries", "heatmap"):
                    assert target["exemplar"] is True, f"{name}: {panel['title']}: duration without exemplars"
            if panel["type"] == "table":
                links = json.dumps(panel["fieldConfig"]["overrides"])  # type: ignore[index]
                if '"agent"' in links or '"tool"' in links:
                    assert "${trace_viewer}/search" in links, f"{name}: {panel['title']}: no link to the trace viewer"

    used = {name for e in dashboard_expressions() for name in metric_names(e.expr)}
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    declared = {spec.name for spec in METRICS}
    assert declared - families == set(), "metrics no dashboard shows"
    alert_metrics = {
        re.sub(r"_(bucket|count|sum)$", "", n) for r in alert_rules() for n in metric_names(str(r["expr"]))
    }
    assert (families | alert_metrics) - declared - {"up"} == set(), "dashboards or alerts use undeclared metrics"

    datasources = yaml.safe_load((DASHBOARDS / "provisioning/datasources/datasources.yaml").read_text())
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    destinations = by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destinations == [{"name": "trace_id", "datasourceUid": "jaeger"}] and by_uid["jaeger"]["type"] == "jaeger"


# -- the real stack -------------------------------------------------------------------


@dataclass
class Stack:
    sim: Simulator
    proxy: BreakingProxy
    receiver: OtlpReceiver
    exporter: ExporterProcess
    prometheus: Prometheus
    started: float


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus")
    started = time.time()
    with ExitStack() as cleanup:  # whatever started is stopped, even when a later part fails to start
        sim = Simulator(
            SimulatorOptions(
                seed=5,
                runs_per_minute=40.0,
                run_seconds=(1.0, 6.0),
                history_runs=30,
                history_span_seconds=900.0,
                faults=parse_faults("429=0.02,500=0.02"),
            )
        )
        sim.start(host="127.0.0.1", port=0)
        cleanup.callback(sim.stop)
        proxy = BreakingProxy(sim.url("runtools"))
        proxy_url = proxy.start()
        cleanup.callback(proxy.stop)
        receiver = OtlpReceiver()
        endpoint = receiver.start()
        cleanup.callback(receiver.stop)
        port = free_port()
        common = {"interval": "1s", "start_from": "1h", "lookback": "5s"}
        sources: list[dict[str, object]] = [
            {"name": "rt", "type": "runtools", "base_url": proxy_url, "api_key": "sim-runtools-key", **common},
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
        # Runs open longer than 4 s are given up as incomplete: some of the
        # simulator's runs last up to 6 s, so agent_runs_total{status="incomplete"} exists.
        config = write_config(
            tmp / "config.yaml",
            sources,
            port=port,
            runs={"max_open_age": "4s"},
            traces={"endpoint": endpoint, "protocol": "http/protobuf"},
            logs={"enabled": True, "endpoint": endpoint, "protocol": "http/protobuf"},  # its panel has data too
        )
        exporter = ExporterProcess(config, port, tmp / "exporter.log")
        cleanup.callback(exporter.stop)
        exporter.start()
        prometheus = Prometheus(prometheus_config(f"127.0.0.1:{port}"), tmp / "prom")
        cleanup.callback(prometheus.stop)
        prometheus.start()
        yield Stack(sim, proxy, receiver, exporter, prometheus, started)


def test_every_dashboard_expression_returns_data(stack: Stack) -> None:
    expressions = [Expression(e.where, grafana_to_promql(e.expr)) for e in dashboard_expressions()]
    expressions += [Expression(e.where, grafana_to_promql(e.expr)) for e in variable_expressions()]
    assert len(expressions) > 60
    all_return_data(stack.prometheus, expressions)


def test_every_alert_rule_evaluates_and_its_series_exist(stack: Stack) -> None:
    rules = alert_rules()
    expressions = []
    for rule in rules:
        stack.prometheus.query(str(rule["expr"]))  # the full expression parses and evaluates (empty when quiet)
        parts = signals(str(rule["expr"]))
        assert parts and " ".join(str(rule["expr"]).split()) not in parts, f"{rule['alert']}: no comparison found"
        expressions += [Expression(f"alerts.yml: {rule['alert']} (part {i + 1})", p) for i, p in enumerate(parts)]
    all_return_data(stack.prometheus, expressions)

    def evaluated() -> list[dict[str, object]]:
        loaded = stack.prometheus.rules()
        done = [r for r in loaded if str(r.get("lastEvaluation", "0001")).startswith("20")]
        return loaded if len(done) == len(rules) else []

    loaded = wait_for(evaluated, timeout=30, what="Prometheus to evaluate every rule")
    assert sorted(str(r["name"]) for r in loaded) == sorted(str(r["alert"]) for r in rules)
    for rule in loaded:
        assert rule["health"] == "ok" and not rule.get("lastError"), f"{rule['name']}: {rule.get('lastError')}"

    # The shipped relabelling marks exactly the listed agents critical.
    critical = {r["metric"]["agent"] for r in stack.prometheus.query('agent_runs_total{critical="true"}')}  # type: ignore[index]
    assert critical == {CRITICAL_AGENT}

    # Seen firing on real data: the proxy breaks runtools thread events, and
    # runs longer than max_open_age are given up.
    def firing(alertname: str, **labels: str) -> bool:
        selector = ",".join(
            [f'alertname="{alertname}"', 'alertstate="firing"', *(f'{k}="{v}"' for k, v in labels.items())]
        )
        return bool(stack.prometheus.query(f"ALERTS{{{selector}}}"))

    assert stack.proxy.broken > 0
    wait_for(
        lambda: firing("AgentRecordsRejected", source="rt", reason="missing_field"),
        timeout=30,
        what="AgentRecordsRejected to fire for the broken runtools events",
    )
    wait_for(lambda: firing("AgentRunsIncomplete"), timeout=30, what="AgentRunsIncomplete to fire")
    assert not firing("AgentExporterDown") and not firing("AgentSourceDown")


def test_duration_exemplars_carry_trace_ids_of_delivered_traces(stack: Stack) -> None:
    prometheus = stack.prometheus

    def exemplars() -> list[tuple[dict[str, str], dict[str, Any]]]:
        data = prometheus.api(
            "query_exemplars", query="agent_run_duration_seconds_bucket", start=stack.started, end=time.time() + 1
        )
        return [(series["seriesLabels"], ex) for series in json_of(data) for ex in series["exemplars"]]

    def of_every_platform() -> list[tuple[dict[str, str], dict[str, Any]]]:
        found = exemplars()
        platforms = {labels["platform"] for labels, _ in found}
        return found if platforms == set(PLATFORMS) else []

    found = wait_for(of_every_platform, timeout=60, what="exemplars of every platform in Prometheus")

    def delivered() -> dict[str, list[ReceivedSpan]]:
        by_trace: dict[str, list[ReceivedSpan]] = {}
        for span in stack.receiver.snapshot():
            by_trace.setdefault(span.trace_id, []).append(span)
        return by_trace

    wanted = {str(ex["labels"]["trace_id"]) for _, ex in found}

    def wanted_delivered() -> dict[str, list[ReceivedSpan]]:
        by_trace = delivered()
        return by_trace if wanted <= set(by_trace) else {}

    traces = wait_for(
        wanted_delivered,
        timeout=30,
        what="the exemplars' traces at the OTLP receiver",
    )
    for labels, ex in found:
        trace_id = str(ex["labels"]["trace_id"])
        value = float(ex["value"])
        assert re.fullmatch("[0-9a-f]{32}", trace_id)
        assert value <= float(labels["le"]), f"exemplar {value} above its bucket le={labels['le']}"
        # The exemplar is a run of this agent with this duration, somewhere in that trace
        # (a sub-agent's run lives in its top-level run's trace).
        runs = [
            s
            for s in traces[trace_id]
            if s.attributes.get("gen_ai.agent.id") == labels["agent"] and s.name.startswith("invoke_agent ")
        ]
        durations = [(s.end_ns - s.start_ns) / 1e9 for s in runs]
        assert any(abs(d - value) < 0.002 for d in durations), (labels, value, durations)

    # What Grafana asks for a duration panel with exemplars on: the panel's own query.
    duration_targets = [e for e in dashboard_expressions() if "agent_run_duration_seconds_bucket" in e.expr]
    assert duration_targets
    for e in duration_targets:
        data = prometheus.api(
            "query_exemplars", query=grafana_to_promql(e.expr), start=stack.started, end=time.time() + 1
        )
        assert data, f"{e.where}: no exemplars for {e.expr}"
