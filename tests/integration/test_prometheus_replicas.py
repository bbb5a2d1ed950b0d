"""The shipped dashboards and alert rules with several exporter replicas,
against a real Prometheus scraping two real exporter processes.

The replicas split the simulator's four platforms between them the way
leases do, and one source is split in two the way shards do: `aa`
(agent_activities) reads half its agents on replica A and the other half
on replica B, so both expose series with `source="aa"`, differing by
`instance` (and `agent`). Each replica keeps its own SQLite state: what is
shown here is what Prometheus sees, which is the same whichever backend
the replicas share.

What it must show:
- every dashboard expression and template variable still evaluates and
  returns data, and every alert rule is evaluated without error (no
  many-to-many matching error from the duplicated `source`);
- the source panels count sources, not shards: "Sources up" is 4, the
  source-up timeline and the data lag have one series per source, while
  Prometheus holds 5 source_up series;
- the per-agent series of the split source come from both replicas, each
  agent from one, together all of its agents.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator import Simulator, SimulatorOptions, parse_faults
from testkit.exporter_io import free_port, write_config
from tests.conftest import wait_for
from tests.integration.helpers import ExporterProcess
from tests.integration.stack import (
    Expression,
    Prometheus,
    alert_rules,
    all_return_data,
    dashboard_expressions,
    dashboards,
    grafana_to_promql,
    panels,
    prometheus_config,
    variable_expressions,
)

COMMON: dict[str, object] = {"interval": "1s", "start_from": "1h", "lookback": "5s"}


@dataclass
class Replicas:
    sim: Simulator
    prometheus: Prometheus
    instances: tuple[str, str]


def start_replica(tmp: Path, name: str, sources: list[dict[str, object]], cleanup: ExitStack) -> str:
    folder = tmp / name
    folder.mkdir()
    port = free_port()
    logs = {"enabled": True, "protocol": "file", "file": str(folder / "logs.jsonl")}  # its dashboard panel has data
    config = write_config(folder / "config.yaml", sources, port=port, traces={}, logs=logs)
    exporter = ExporterProcess(config, port, folder / "exporter.log")
    cleanup.callback(exporter.stop)
    exporter.start()
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("replicas")
    with ExitStack() as cleanup:
        sim = Simulator(
            SimulatorOptions(
                seed=7,
                runs_per_minute=40.0,
                run_seconds=(1.0, 6.0),
                history_runs=30,
                history_span_seconds=900.0,
                faults=parse_faults("429=0.02,500=0.02"),  # so the API error panels have data
            )
        )
        sim.start(host="127.0.0.1", port=0)
        cleanup.callback(sim.stop)
        agents = sim.agents("agent_activities")
        half = len(agents) // 2

        def source(name: str, platform: str, **extra: object) -> dict[str, object]:
            return {"name": name, "type": platform, "base_url": sim.url(platform), **extra, **COMMON}

        aa_token = "sim-agent_activities-token"
        a = start_replica(
            tmp,
            "a",
            [
                source("rt", "runtools", api_key="sim-runtools-key"),
                source("aa", "agent_activities", token=aa_token, agents=agents[:half]),
                source("ry", "runtype", token="sim-runtype-token"),
            ],
            cleanup,
        )
        b = start_replica(
            tmp,
            "b",
            [
                source("aa", "agent_activities", token=aa_token, agents=agents[half:]),
                source("bc", "bctrl", token="sim-bctrl-token"),
            ],
            cleanup,
        )
        prometheus = Prometheus(prometheus_config(a, b), tmp / "prom")
        cleanup.callback(prometheus.stop)
        prometheus.start()
        yield Replicas(sim, prometheus, (a, b))


def panel_expr(board: str, title: str) -> str:
    (panel,) = [p for p in panels(dashboards()[board]) if p.get("title") == title]
    targets = panel["targets"]
    assert isinstance(targets, list) and len(targets) == 1, title
    return grafana_to_promql(str(targets[0]["expr"]))


def test_every_dashboard_expression_and_rule_evaluates_with_two_replicas(replicas: Replicas) -> None:
    expressions = [Expression(e.where, grafana_to_promql(e.expr)) for e in dashboard_expressions()]
    expressions += [Expression(e.where, grafana_to_promql(e.expr)) for e in variable_expressions()]
    all_return_data(replicas.prometheus, expressions)

    rules = alert_rules()

    def evaluated() -> list[dict[str, object]]:
        loaded = replicas.prometheus.rules()
        done = [r for r in loaded if str(r.get("lastEvaluation", "0001")).startswith("20")]
        return loaded if len(done) == len(rules) else []

    for rule in wait_for(evaluated, timeout=30, what="Prometheus to evaluate every rule"):
        assert rule["health"] == "ok" and not rule.get("lastError"), f"{rule['name']}: {rule.get('lastError')}"


def test_source_panels_count_sources_not_shards(replicas: Replicas) -> None:
    prometheus = replicas.prometheus

    def scraped() -> bool:
        shards = prometheus.query('agent_exporter_source_up{source="aa"}')
        instances = {str(r["metric"]["instance"]) for r in shards}  # type: ignore[index]
        return instances == set(replicas.instances) and len(prometheus.query("agent_exporter_source_up")) == 5

    wait_for(scraped, timeout=30, what="the split source from both replicas, 5 source_up series in all")

    def value(expr: str) -> float:
        (sample,) = prometheus.query(expr)
        return float(sample["value"][1])  # type: ignore[index]

    board = "agent-activity-exporter.json"
    wait_for(lambda: value(panel_expr(board, "Sources up")) == 4, timeout=30, what="4 sources up")
    assert value(panel_expr(board, "Sources down")) == 0
    for title in ("Source up", "Data lag", "Time since last successful poll"):
        shown = prometheus.query(panel_expr(board, title))
        assert sorted(str(s["metric"]["source"]) for s in shown) == ["aa", "bc", "rt", "ry"], title  # type: ignore[index]


def test_agents_of_the_split_source_come_from_both_replicas(replicas: Replicas) -> None:
    prometheus = replicas.prometheus
    by_instance: dict[str, set[str]] = {}

    def every_agent_counted() -> bool:
        by_instance.clear()
        for sample in prometheus.query('agent_runs_total{source="aa"}'):
            labels = sample["metric"]
            by_instance.setdefault(labels["instance"], set()).add(labels["agent"])  # type: ignore[index]
        return set().union(*by_instance.values()) == set(replicas.sim.agents("agent_activities"))

    wait_for(every_agent_counted, timeout=60, what="runs of every agent of the split source")
    assert set(by_instance) == set(replicas.instances)
    assert not set.intersection(*by_instance.values()), "an agent is counted by one replica only"
