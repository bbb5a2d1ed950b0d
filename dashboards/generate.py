"""Writes the Grafana dashboards in this folder (run from anywhere):

    python dashboards/generate.py

The JSON files are what Grafana loads (provisioning or Dashboards > Import);
this script is how they are kept consistent: one place for the template
variables, the label selectors, the trace-viewer links and the layout. Edit
here, regenerate, commit both. Standard library only.

Every PromQL expression here is evaluated against a real Prometheus scraping
the exporter by tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Json = dict[str, Any]

DS = {"type": "prometheus", "uid": "${datasource}"}
RUN = 'source=~"$source", platform=~"$platform", agent=~"$agent"'  # run-level metrics
PLAT = 'source=~"$source", platform=~"$platform"'  # tool calls and activity events have no agent label
SRC = 'source=~"$source"'  # exporter self-metrics
# Several replicas (README, "Several replicas"): a series moves from one
# `instance` to another on a failover, and a source in shards has one series
# per shard, each from the replica holding it. So every expression
# aggregates by the labels that name what it shows (never by instance, except
# the panels about exporter processes): counters and in-progress gauges are
# summed, a source is up when all its shards are (min), lag and age are the
# worst shard's (max). With one replica each gives the same numbers as before.
FAILED = 'status=~"failed|timed_out"'

# Jaeger's search page; Tempo and Phoenix users change the link (README, "Use with your stack").
TRACE_SEARCH = '${trace_viewer}/search?service=${service}&tags='
AGENT_TAG = '%7B%22gen_ai.agent.id%22%3A%22${__data.fields.agent}%22%7D'
AGENT_ERR_TAG = '%7B%22gen_ai.agent.id%22%3A%22${__data.fields.agent}%22%2C%22error%22%3A%22true%22%7D'
TOOL_TAG = '%7B%22gen_ai.tool.name%22%3A%22${__data.fields.tool}%22%7D'
TOOL_ERR_TAG = '%7B%22gen_ai.tool.name%22%3A%22${__data.fields.tool}%22%2C%22error%22%3A%22true%22%7D'

STATUS_COLORS = {"succeeded": "green", "failed": "red", "timed_out": "orange", "cancelled": "blue",
                 "incomplete": "purple", "unknown": "gray"}
SEVERITY_COLORS = {"error": "red", "warning": "orange", "info": "blue", "debug": "gray", "unknown": "gray"}


# -- variables ---------------------------------------------------------------

def datasource_var() -> Json:
    return {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}


def query_var(name: str, label: str, query: str, *, multi: bool = True) -> Json:
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
        "refresh": 2, "sort": 1, "hide": 0, "regex": "",
        "multi": multi, "includeAll": multi, **({"allValue": ".*"} if multi else {}),
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
        "options": [],
    }


def text_var(name: str, label: str, value: str) -> Json:
    return {"name": name, "label": label, "type": "textbox", "query": value, "hide": 0,
            "current": {"text": value, "value": value}, "options": [{"selected": True, "text": value, "value": value}]}


def agent_vars(multi_agent: bool = True) -> list[Json]:
    return [
        datasource_var(),
        query_var("source", "Source", "label_values(agent_exporter_source_up, source)"),
        query_var("platform", "Platform", 'label_values(agent_runs_total{source=~"$source"}, platform)'),
        query_var("agent", "Agent", 'label_values(agent_runs_total{source=~"$source", platform=~"$platform"}, agent)',
                  multi=multi_agent),
        text_var("trace_viewer", "Trace viewer URL", "http://localhost:16686"),
        text_var("service", "Trace service.name", "agent-activity-exporter"),
    ]


# -- panels ------------------------------------------------------------------

class Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1
        self.panels: list[Json] = []

    def add(self, panel: Json, w: int, h: int) -> Json:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = self.next_id
        self.next_id += 1
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)
        return panel

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"type": "row", "title": title, "id": self.next_id, "collapsed": False, "panels": [],
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}})
        self.next_id += 1
        self.y += 1


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, exemplar: bool = False,
           fmt: str = "time_series") -> Json:
    return {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
            "range": not instant, "instant": instant, "exemplar": exemplar, "format": fmt, "editorMode": "code"}


def overrides_by_name(colors: dict[str, str]) -> list[Json]:
    return [{"matcher": {"id": "byName", "options": name},
             "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}]}
            for name, color in colors.items()]


def timeseries(title: str, targets: list[Json], *, unit: str = "short", desc: str = "", stack: bool = False,
               colors: dict[str, str] | None = None, min0: bool = True, links: list[Json] | None = None,
               decimals: int | None = None) -> Json:
    defaults: Json = {
        "unit": unit,
        "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 18 if stack else 8, "showPoints": "never",
                   "spanNulls": False, "stacking": {"mode": "normal" if stack else "none", "group": "A"}},
        "color": {"mode": "palette-classic"},
        "links": links or [],
    }
    if min0:
        defaults["min"] = 0
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "timeseries", "title": title, "description": desc, "datasource": DS, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": overrides_by_name(colors or {})},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, expr: str, *, unit: str = "short", desc: str = "", decimals: int | None = None,
         thresholds: list[tuple[float | None, str]] | None = None, links: list[Json] | None = None,
         legend: str = "", text_mode: str = "value") -> Json:
    steps = [{"value": v, "color": c} for v, c in (thresholds or [(None, "text")])]
    defaults: Json = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps},
                      "color": {"mode": "thresholds"}, "links": links or []}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "stat", "title": title, "description": desc, "datasource": DS,
            "targets": [target(expr, legend, instant=True)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": text_mode, "justifyMode": "auto",
                        "orientation": "auto"}}


def table(title: str, targets: list[Json], *, desc: str = "", columns: dict[str, Json] | None = None,
          links: dict[str, list[Json]] | None = None, hide: tuple[str, ...] = ("Time",),
          sort_by: str | None = None) -> Json:
    """Instant queries in table format, merged on their common labels.
    columns: field name -> {"unit", "displayName", "decimals", ...}."""
    overrides: list[Json] = []
    for name, props in (columns or {}).items():
        properties = [{"id": k, "value": v} for k, v in props.items()]
        overrides.append({"matcher": {"id": "byName", "options": name}, "properties": properties})
    for name, field_links in (links or {}).items():
        overrides.append({"matcher": {"id": "byName", "options": name},
                          "properties": [{"id": "links", "value": field_links}]})
    organize = {"excludeByName": {h: True for h in hide}, "renameByName": {}, "indexByName": {}}
    panel: Json = {
        "type": "table", "title": title, "description": desc, "datasource": DS, "targets": targets,
        "transformations": [{"id": "merge", "options": {}}, {"id": "organize", "options": organize}],
        "fieldConfig": {"defaults": {"custom": {"align": "auto", "filterable": True}}, "overrides": overrides},
        "options": {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    }
    if sort_by:
        panel["options"]["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return panel


def heatmap(title: str, expr: str, *, desc: str = "") -> Json:
    return {"type": "heatmap", "title": title, "description": desc, "datasource": DS,
            "targets": [target(expr, "{{le}}", fmt="heatmap", exemplar=True)],
            "fieldConfig": {"defaults": {"custom": {}}, "overrides": []},
            "options": {"calculate": False, "yAxis": {"unit": "s", "axisPlacement": "left"},
                        "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5,
                                                "steps": 64, "fill": "dark-orange", "reverse": False},
                        "exemplars": {"color": "rgba(255,0,255,0.7)"}, "tooltip": {"show": True, "yHistogram": True},
                        "legend": {"show": True}, "rowsFrame": {"layout": "auto"}}}


def state_timeline(title: str, expr: str, legend: str, *, desc: str = "") -> Json:
    return {"type": "state-timeline", "title": title, "description": desc, "datasource": DS,
            "targets": [target(expr, legend)],
            "fieldConfig": {"defaults": {
                "mappings": [{"type": "value", "options": {"0": {"text": "down", "color": "red"},
                                                           "1": {"text": "up", "color": "green"}}}],
                "color": {"mode": "thresholds"},
                "thresholds": {"mode": "absolute", "steps": [{"value": None, "color": "red"},
                                                             {"value": 1, "color": "green"}]}},
                "overrides": []},
            "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                        "legend": {"showLegend": False}}}


def link(title: str, url: str, *, blank: bool = True) -> Json:
    return {"title": title, "url": url, "targetBlank": blank}


def dashboard(uid: str, title: str, description: str, variables: list[Json], layout: Layout,
              links: list[Json], time_from: str = "now-1h") -> Json:
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["agent-activity", "ai-agents"], "timezone": "browser", "editable": True,
        "graphTooltip": 1, "refresh": "30s", "schemaVersion": 39, "version": 1,
        "time": {"from": time_from, "to": "now"}, "timepicker": {},
        "templating": {"list": variables},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": links,
        "panels": layout.panels,
    }


NAV_LINKS = [
    {"title": "Agent activity", "type": "dashboards", "tags": ["agent-activity"], "asDropdown": True,
     "includeVars": False, "keepTime": True, "targetBlank": False, "icon": "external link", "url": "", "tooltip": ""},
]


def per_agent_url(source_field: str = "${__data.fields.source}", agent_field: str = "${__data.fields.agent}") -> str:
    return (f"/d/agent-activity-agent/agent-activity-per-agent?var-datasource=${{datasource}}"
            f"&var-source={source_field}&var-agent={agent_field}&${{__url_time_range}}")


# -- the overview --------------------------------------------------------------

def overview() -> Json:
    lay = Layout()
    lay.row("Runs")
    lay.add(stat("Runs ended", f"sum(increase(agent_runs_total{{{RUN}}}[$__range]))", decimals=0,
                 desc="Runs that ended in the selected time range, any status."), 4, 4)
    lay.add(stat("Failure ratio", f"sum(increase(agent_runs_total{{{RUN}, {FAILED}}}[$__range])) / "
                                  f"sum(increase(agent_runs_total{{{RUN}}}[$__range]))",
                 unit="percentunit", decimals=1, desc="Failed or timed-out runs / runs ended, selected range.",
                 thresholds=[(None, "green"), (0.1, "orange"), (0.25, "red")]), 4, 4)
    lay.add(stat("Runs in progress", f"sum(agent_runs_in_progress{{{RUN}}}) or vector(0)", decimals=0,
                 desc="Runs seen started and not ended yet."), 4, 4)
    lay.add(stat("Tool call failure ratio", f"sum(increase(agent_tool_calls_total{{{PLAT}, status=\"failed\"}}[$__range])) / "
                                            f"sum(increase(agent_tool_calls_total{{{PLAT}}}[$__range]))",
                 unit="percentunit", decimals=1, thresholds=[(None, "green"), (0.05, "orange"), (0.2, "red")],
                 desc="Failed tool calls / tool calls of ended runs, selected range (no agent filter: "
                      "tool-call metrics have no agent label)."), 4, 4)
    lay.add(stat("Tokens", f"sum(increase(agent_tokens_total{{{RUN}, type=\"total\"}}[$__range]))", decimals=0,
                 desc="Total tokens of runs that ended in the selected range."), 4, 4)
    lay.add(stat("Cost", f"sum(increase(agent_cost_usd_total{{{RUN}}}[$__range]))", unit="currencyUSD", decimals=2,
                 desc="Cost in US dollars of runs that ended in the selected range (platforms that report it)."),
            4, 4)
    lay.add(timeseries("Runs per minute by status", [
        target(f"sum by (status) (rate(agent_runs_total{{{RUN}}}[$__rate_interval])) * 60", "{{status}}")],
        unit="short", stack=True, colors=STATUS_COLORS, desc="Runs ending per minute, by normalised status."),
        12, 8)
    lay.add(timeseries("Failure ratio", [
        target(f"sum(rate(agent_runs_total{{{RUN}, {FAILED}}}[$__rate_interval])) / "
               f"sum(rate(agent_runs_total{{{RUN}}}[$__rate_interval]))", "all selected"),
        target(f"sum by (platform) (rate(agent_runs_total{{{RUN}, {FAILED}}}[$__rate_interval])) / "
               f"sum by (platform) (rate(agent_runs_total{{{RUN}}}[$__rate_interval]))", "{{platform}}", "B")],
        unit="percentunit", desc="Failed or timed-out runs / runs ended."), 12, 8)
    lay.add(timeseries("Run duration p50 / p95 (exemplars link to traces)", [
        target(f"histogram_quantile(0.5, sum by (le) (rate(agent_run_duration_seconds_bucket{{{RUN}}}[$__rate_interval])))",
               "p50", exemplar=True),
        target(f"histogram_quantile(0.95, sum by (le) (rate(agent_run_duration_seconds_bucket{{{RUN}}}[$__rate_interval])))",
               "p95", "B", exemplar=True)],
        unit="s", desc="Duration of ended runs. The dots are exemplars: each one is a run, with its trace_id; "
                       "click one to open its trace."), 12, 8)
    lay.add(timeseries("Runs in progress", [
        target(f"sum by (source, agent) (agent_runs_in_progress{{{RUN}}})", "{{agent}} ({{source}})")],
        stack=True, decimals=0, desc="Runs seen started and not ended yet, per agent."), 12, 8)

    lay.row("Tool calls")
    lay.add(timeseries("Tool calls per minute by status", [
        target(f"sum by (status) (rate(agent_tool_calls_total{{{PLAT}}}[$__rate_interval])) * 60", "{{status}}")],
        stack=True, colors={"succeeded": "green", "failed": "red", "unknown": "gray"},
        desc="Tool calls of ended runs (source and platform filters apply; no agent label)."), 8, 8)
    lay.add(timeseries("Tool call failure ratio by tool", [
        target(f"sum by (tool) (rate(agent_tool_calls_total{{{PLAT}, status=\"failed\"}}[$__rate_interval])) / "
               f"sum by (tool) (rate(agent_tool_calls_total{{{PLAT}}}[$__rate_interval]))", "{{tool}}")],
        unit="percentunit"), 8, 8)
    lay.add(table("Tools", [
        target(f"sum by (source, tool) (increase(agent_tool_calls_total{{{PLAT}}}[$__range]))", ref="A",
               instant=True, fmt="table"),
        target(f"sum by (source, tool) (increase(agent_tool_calls_total{{{PLAT}, status=\"failed\"}}[$__range])) / "
               f"sum by (source, tool) (increase(agent_tool_calls_total{{{PLAT}}}[$__range]))", ref="B",
               instant=True, fmt="table"),
        target(f"histogram_quantile(0.95, sum by (source, tool, le) "
               f"(increase(agent_tool_call_duration_seconds_bucket{{{PLAT}}}[$__range])))", ref="C",
               instant=True, fmt="table")],
        columns={"Value #A": {"displayName": "calls", "decimals": 0},
                 "Value #B": {"displayName": "failed", "unit": "percentunit", "decimals": 1},
                 "Value #C": {"displayName": "p95", "unit": "s"}},
        links={"tool": [link("Traces with this tool", TRACE_SEARCH + TOOL_TAG),
                        link("Failed traces with this tool", TRACE_SEARCH + TOOL_ERR_TAG)]},
        sort_by="calls", desc="Per tool over the selected range. Click a tool for its traces."), 8, 8)

    lay.row("Tokens and cost")
    lay.add(timeseries("Tokens per minute by agent", [
        target(f"sum by (source, agent) (rate(agent_tokens_total{{{RUN}, type=\"total\"}}[$__rate_interval])) * 60",
               "{{agent}} ({{source}})")], stack=True), 12, 8)
    lay.add(timeseries("Cost per hour by agent", [
        target(f"sum by (source, agent) (rate(agent_cost_usd_total{{{RUN}}}[$__rate_interval])) * 3600",
               "{{agent}} ({{source}})")], unit="currencyUSD", stack=True,
        desc="US dollars per hour at the current rate (platforms that report cost)."), 12, 8)

    lay.row("Activity")
    lay.add(timeseries("Activity events per minute by severity", [
        target(f"sum by (severity) (rate(agent_activity_events_total{{{PLAT}}}[$__rate_interval])) * 60",
               "{{severity}}")], stack=True, colors=SEVERITY_COLORS,
        desc="Every activity item read from the platforms (feed events, timeline entries, actions)."), 12, 8)
    lay.add(table("Activity events by category", [
        target(f"sum by (platform, category, severity) (increase(agent_activity_events_total{{{PLAT}}}[$__range]))",
               ref="A", instant=True, fmt="table")],
        columns={"Value": {"displayName": "events", "decimals": 0}}, sort_by="events"), 12, 8)

    lay.row("Agents")
    lay.add(agents_table(), 24, 10)
    return dashboard("agent-activity-overview", "Agent activity / overview",
                     "Runs, failures, durations, tool calls, tokens and cost of AI agents on hosted platforms, "
                     "from agent-activity-exporter.", agent_vars(), lay, NAV_LINKS)


def agents_table() -> Json:
    by = "source, platform, agent"
    return table("Agents", [
        target(f"sum by ({by}) (increase(agent_runs_total{{{RUN}}}[$__range]))", ref="A", instant=True, fmt="table"),
        target(f"sum by ({by}) (increase(agent_runs_total{{{RUN}, {FAILED}}}[$__range])) / "
               f"sum by ({by}) (increase(agent_runs_total{{{RUN}}}[$__range]))", ref="B", instant=True, fmt="table"),
        target(f"histogram_quantile(0.95, sum by ({by}, le) (increase(agent_run_duration_seconds_bucket{{{RUN}}}[$__range])))",
               ref="C", instant=True, fmt="table"),
        target(f"sum by ({by}) (increase(agent_tokens_total{{{RUN}, type=\"total\"}}[$__range]))", ref="D",
               instant=True, fmt="table"),
        target(f"sum by ({by}) (increase(agent_cost_usd_total{{{RUN}}}[$__range]))", ref="E", instant=True,
               fmt="table"),
        target(f"time() - max by ({by}) (agent_last_run_timestamp_seconds{{{RUN}, status=\"succeeded\"}})", ref="F",
               instant=True, fmt="table")],
        columns={"Value #A": {"displayName": "runs", "decimals": 0},
                 "Value #B": {"displayName": "failed", "unit": "percentunit", "decimals": 1,
                              "custom.cellOptions": {"type": "color-text"},
                              "thresholds": {"mode": "absolute", "steps": [{"value": None, "color": "green"},
                                                                           {"value": 0.1, "color": "orange"},
                                                                           {"value": 0.25, "color": "red"}]}},
                 "Value #C": {"displayName": "p95 duration", "unit": "s"},
                 "Value #D": {"displayName": "tokens", "decimals": 0},
                 "Value #E": {"displayName": "cost", "unit": "currencyUSD", "decimals": 2},
                 "Value #F": {"displayName": "last success", "unit": "s", "decimals": 0}},
        links={"agent": [link("Agent dashboard", per_agent_url(), blank=False),
                         link("Traces of this agent", TRACE_SEARCH + AGENT_TAG),
                         link("Failed traces of this agent", TRACE_SEARCH + AGENT_ERR_TAG)]},
        sort_by="runs",
        desc="Per agent over the selected range; 'last success' is how long ago its newest successful run "
             "ended. Click an agent for its dashboard or its traces in the trace viewer.")


# -- per agent -----------------------------------------------------------------

def per_agent() -> Json:
    lay = Layout()
    lay.add(stat("Runs ended", f"sum(increase(agent_runs_total{{{RUN}}}[$__range]))", decimals=0), 4, 4)
    lay.add(stat("Failure ratio", f"sum(increase(agent_runs_total{{{RUN}, {FAILED}}}[$__range])) / "
                                  f"sum(increase(agent_runs_total{{{RUN}}}[$__range]))",
                 unit="percentunit", decimals=1, thresholds=[(None, "green"), (0.1, "orange"), (0.25, "red")]), 4, 4)
    lay.add(stat("p95 duration", f"histogram_quantile(0.95, sum by (le) "
                                 f"(increase(agent_run_duration_seconds_bucket{{{RUN}}}[$__range])))", unit="s"), 4, 4)
    lay.add(stat("In progress", f"sum(agent_runs_in_progress{{{RUN}}}) or vector(0)", decimals=0), 4, 4)
    lay.add(stat("Last successful run", f"time() - max(agent_last_run_timestamp_seconds{{{RUN}, status=\"succeeded\"}})",
                 unit="s", decimals=0, desc="How long ago the newest successful run ended.",
                 thresholds=[(None, "green"), (3600, "orange"), (21600, "red")]), 4, 4)
    lay.add(stat("Cost", f"sum(increase(agent_cost_usd_total{{{RUN}}}[$__range]))", unit="currencyUSD", decimals=2),
            4, 4)
    lay.add(timeseries("Runs per minute by status", [
        target(f"sum by (status) (rate(agent_runs_total{{{RUN}}}[$__rate_interval])) * 60", "{{status}}")],
        stack=True, colors=STATUS_COLORS), 12, 8)
    lay.add(timeseries("Run duration p50 / p95 / p99 (exemplars link to traces)", [
        target(f"histogram_quantile({q}, sum by (le) (rate(agent_run_duration_seconds_bucket{{{RUN}}}[$__rate_interval])))",
               f"p{round(q * 100)}", ref, exemplar=True)
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))],
        unit="s", desc="Each exemplar dot is one run with its trace_id: click it to open the trace."), 12, 8)
    lay.add(heatmap("Run duration distribution",
                    f"sum by (le) (increase(agent_run_duration_seconds_bucket{{{RUN}}}[$__rate_interval]))",
                    desc="Runs per duration bucket; exemplars link to traces."), 12, 8)
    lay.add(timeseries("Runs in progress", [
        target(f"sum by (agent) (agent_runs_in_progress{{{RUN}}})", "{{agent}}")], decimals=0), 12, 8)
    lay.add(timeseries("Tokens per minute by type", [
        target(f"sum by (type) (rate(agent_tokens_total{{{RUN}}}[$__rate_interval])) * 60", "{{type}}")]), 12, 8)
    lay.add(timeseries("Cost per hour", [
        target(f"sum by (agent) (rate(agent_cost_usd_total{{{RUN}}}[$__rate_interval])) * 3600", "{{agent}}")],
        unit="currencyUSD"), 12, 8)
    lay.add(table("Runs by status", [
        target(f"sum by (source, agent, status) (increase(agent_runs_total{{{RUN}}}[$__range]))", ref="A",
               instant=True, fmt="table"),
        target(f"time() - max by (source, agent, status) (agent_last_run_timestamp_seconds{{{RUN}}})", ref="B",
               instant=True, fmt="table")],
        columns={"Value #A": {"displayName": "runs", "decimals": 0},
                 "Value #B": {"displayName": "last ended", "unit": "s", "decimals": 0}},
        links={"agent": [link("Traces of this agent", TRACE_SEARCH + AGENT_TAG),
                         link("Failed traces of this agent", TRACE_SEARCH + AGENT_ERR_TAG)]},
        desc="'last ended' is how long ago the newest run with that status ended. Click the agent for its traces."),
        12, 8)
    lay.add(table("Tools on this agent's source and platform", [
        target(f"sum by (tool, status) (increase(agent_tool_calls_total{{{PLAT}}}[$__range]))", ref="A",
               instant=True, fmt="table")],
        columns={"Value": {"displayName": "calls", "decimals": 0}},
        links={"tool": [link("Traces with this tool", TRACE_SEARCH + TOOL_TAG),
                        link("Failed traces with this tool", TRACE_SEARCH + TOOL_ERR_TAG)]},
        sort_by="calls",
        desc="Tool-call metrics have no agent label: this is every agent of the selected source and platform."),
        12, 8)
    links = NAV_LINKS + [
        link("Traces of $agent", TRACE_SEARCH + "%7B%22gen_ai.agent.id%22%3A%22${agent}%22%7D"),
        link("Failed traces of $agent", TRACE_SEARCH + "%7B%22gen_ai.agent.id%22%3A%22${agent}%22%2C%22error%22%3A%22true%22%7D"),
    ]
    for entry in links[1:]:
        entry.update({"type": "link", "icon": "external link", "tooltip": "", "asDropdown": False,
                      "includeVars": False, "keepTime": False, "tags": []})
    return dashboard("agent-activity-agent", "Agent activity / per agent",
                     "One agent: runs, failures, durations with links to traces, tokens, cost.",
                     agent_vars(multi_agent=False), lay, links, time_from="now-3h")


# -- exporter health --------------------------------------------------------------

def exporter_health() -> Json:
    lay = Layout()
    lay.add(stat("Sources up", f"sum(min by (source) (agent_exporter_source_up{{{SRC}}}))", decimals=0,
                 desc="Sources whose last poll succeeded (of a source in shards: every shard's)."), 4, 4)
    lay.add(stat("Sources down", f"count(min by (source) (agent_exporter_source_up{{{SRC}}}) == 0) or vector(0)",
                 decimals=0, thresholds=[(None, "green"), (1, "red")],
                 desc="Sources whose last poll failed (of a source in shards: any shard's)."), 4, 4)
    lay.add(stat("Max data lag", f"max(agent_exporter_data_lag_seconds{{{SRC}}})", unit="s",
                 thresholds=[(None, "green"), (300, "orange"), (900, "red")],
                 desc="Now minus the time up to which a source is fully read (worst source)."), 4, 4)
    lay.add(stat("Spans waiting", "max(agent_exporter_outbox_spans{instance=~\"$instance\"})", decimals=0,
                 desc="Spans in the outbox, not yet accepted by the trace backend (replicas share one outbox: "
                      "the largest count any of them shows)."), 4, 4)
    lay.add(stat("Spans dropped or rejected",
                 "sum(increase(agent_exporter_spans_exported_total{instance=~\"$instance\", "
                 "outcome=~\"dropped|rejected\"}[$__range]))", decimals=0,
                 thresholds=[(None, "green"), (1, "red")]), 4, 4)
    lay.add(stat("Version", "agent_exporter_build_info{instance=~\"$instance\"}", legend="{{version}}",
                 text_mode="name"), 4, 4)
    lay.add(state_timeline("Source up", f"min by (source) (agent_exporter_source_up{{{SRC}}})", "{{source}}",
                           desc="Green: the last poll succeeded. Red: it failed (see the status page for why)."),
            24, 5)
    lay.row("Polls")
    lay.add(timeseries("Polls per minute by outcome", [
        target(f"sum by (source, outcome) (rate(agent_exporter_polls_total{{{SRC}}}[$__rate_interval])) * 60",
               "{{source}} {{outcome}}")]), 8, 8)
    lay.add(timeseries("Poll duration p95", [
        target(f"histogram_quantile(0.95, sum by (source, le) "
               f"(rate(agent_exporter_poll_duration_seconds_bucket{{{SRC}}}[$__rate_interval])))", "{{source}}")],
        unit="s"), 8, 8)
    lay.add(timeseries("Time since last successful poll", [
        target(f"time() - min by (source) (agent_exporter_last_successful_poll_timestamp_seconds{{{SRC}}})",
               "{{source}}")],
        unit="s", desc="Of a source in shards: its least recently polled shard."), 8, 8)
    lay.row("Platform APIs")
    lay.add(timeseries("API requests per minute by code", [
        target(f"sum by (source, code) (rate(agent_exporter_api_requests_total{{{SRC}}}[$__rate_interval])) * 60",
               "{{source}} {{code}}")]), 8, 8)
    lay.add(timeseries("API errors per minute", [
        target(f"sum by (source, code) (rate(agent_exporter_api_requests_total{{{SRC}, code!~\"2..\"}}[$__rate_interval])) * 60",
               "{{source}} {{code}}")],
        desc="Answers other than 2xx, and requests with no answer (timeout, error)."), 8, 8)
    lay.add(timeseries("Rate limited (429) per minute", [
        target(f"sum by (source) (rate(agent_exporter_rate_limited_total{{{SRC}}}[$__rate_interval])) * 60",
               "{{source}}")]), 8, 8)
    lay.add(timeseries("Requests in flight", [
        target(f"sum by (source) (agent_exporter_requests_in_flight{{{SRC}}})", "{{source}} in flight"),
        target(f"sum by (source) (agent_exporter_request_concurrency_limit{{{SRC}}})", "{{source}} limit")],
        decimals=0,
        desc="Requests of each source sent and not yet answered, beside its limit: the configured "
             "concurrency, halved on a 429 and grown back while answers are clean. Of a source in shards: "
             "summed over the replicas holding them."), 24, 8)
    lay.row("Data")
    lay.add(timeseries("Data lag", [
        target(f"max by (source) (agent_exporter_data_lag_seconds{{{SRC}}})", "{{source}}")], unit="s",
        desc="Now minus the time up to which the source is fully read: how late new runs show up "
             "(of a source in shards: its worst shard)."), 6, 8)
    lay.add(timeseries("History still to read", [
        target(f"max by (source) (agent_exporter_backfill_remaining_seconds{{{SRC}}})", "{{source}}")], unit="s",
        desc="While a source reads its history (a first backfill, or after an outage): how much of it is "
             "left, in seconds of history; 0 once caught up (of a source in shards: its worst shard)."), 6, 8)
    lay.add(timeseries("Records read per minute", [
        target(f"sum by (source, kind) (rate(agent_exporter_records_total{{{SRC}}}[$__rate_interval])) * 60",
               "{{source}} {{kind}}")]), 6, 8)
    lay.add(timeseries("Records rejected", [
        target(f"sum by (source, reason) (increase(agent_exporter_records_rejected_total{{{SRC}}}[$__rate_interval]))",
               "{{source}} {{reason}}")],
        desc="Records that did not parse and were skipped (the log names each one)."), 6, 8)
    lay.row("Traces")
    lay.add(timeseries("Spans per minute by outcome", [
        target("sum by (outcome) (rate(agent_exporter_spans_exported_total{instance=~\"$instance\"}[$__rate_interval])) * 60",
               "{{outcome}}")],
        colors={"success": "green", "failure": "orange", "rejected": "red", "dropped": "dark-red"}), 8, 8)
    lay.add(timeseries("Log records per minute by outcome", [
        target("sum by (outcome) (rate(agent_exporter_log_records_exported_total{instance=~\"$instance\"}"
               "[$__rate_interval])) * 60", "{{outcome}}")],
        colors={"success": "green", "failure": "orange", "rejected": "red", "dropped": "dark-red"},
        desc="Activity items sent as OTLP log records (only with logs.enabled: true)."), 8, 8)
    lay.add(timeseries("Outbox", [
        target("sum by (instance) (agent_exporter_outbox_spans{instance=~\"$instance\"})", "{{instance}}")],
        decimals=0, desc="Spans (and log records) waiting for their backend."), 8, 8)
    lay.row("Replicas")
    lay.add(timeseries("Leases held", [
        target("sum by (instance) (agent_exporter_leases_held{instance=~\"$instance\"})", "{{instance}}")],
        decimals=0, desc="Sources (or shards) each replica reads. One exporter on a state file holds all of its "
                         "sources; replicas on PostgreSQL share them, evenly."), 12, 8)
    lay.add(timeseries("Lease changes", [
        target("sum by (change) (increase(agent_exporter_lease_changes_total{instance=~\"$instance\"}"
               "[$__rate_interval]))", "{{change}}")],
        decimals=0, colors={"acquired": "green", "released": "blue", "lost": "red"},
        desc="Leases taken, handed back (to even out the work, or at exit) or lost (taken over after a "
             "missed renewal: a replica died or was cut off from the database)."), 12, 8)
    variables = [
        datasource_var(),
        query_var("instance", "Exporter", "label_values(agent_exporter_build_info, instance)"),
        query_var("source", "Source", 'label_values(agent_exporter_source_up{instance=~"$instance"}, source)'),
    ]
    return dashboard("agent-activity-exporter", "Agent activity / exporter",
                     "Health of agent-activity-exporter itself: polls, platform API errors and rate limits, "
                     "data lag, rejected records, span delivery.", variables, lay, NAV_LINKS)


DASHBOARDS = {
    "agent-activity-overview.json": overview,
    "agent-activity-agent.json": per_agent,
    "agent-activity-exporter.json": exporter_health,
}


def render() -> dict[str, str]:
    """File name -> the JSON text to write."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> None:
    for name, text in render().items():
        (HERE / name).write_text(text)


if __name__ == "__main__":
    main()
