"""Records -> metric updates, and the one table that declares
every metric: read by the Prometheus collector, the README and the tests.

Pure: the updates say what changes; the registry applies them to the
committed totals.

    # HELP agent_runs_total Agent runs that ended, by normalised status.
    # TYPE agent_runs_total counter
    agent_runs_total{source="prod-feed",platform="runtools",agent="triage",status="failed"} 3.0
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from exporter.model import ActivityEvent, Run, ToolStatus


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str  # as exposed; counters end in _total
    kind: Kind
    help: str
    labels: tuple[str, ...]
    persisted: bool = True  # live gauges are computed, not stored
    buckets: tuple[float, ...] = ()


RUN_LABELS = ("source", "platform", "agent", "status")
AGENT_LABELS = ("source", "platform", "agent")
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
TOOL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

POLL_OUTCOMES = ("success", "error", "auth_error", "bad_response")
SPAN_OUTCOMES = ("success", "failure", "rejected", "dropped")
REJECT_REASONS = ("missing_field", "bad_type", "bad_value", "bad_timestamp")  # BadRecordError reasons

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("agent_runs_total", Kind.COUNTER, "Agent runs that ended, by normalised status.", RUN_LABELS),
    MetricSpec(
        "agent_run_duration_seconds",
        Kind.HISTOGRAM,
        "Duration of ended agent runs; exemplars carry trace_id.",
        RUN_LABELS,
        buckets=DURATION_BUCKETS,
    ),
    MetricSpec(
        "agent_runs_in_progress", Kind.GAUGE, "Runs seen started and not yet ended.", AGENT_LABELS, persisted=False
    ),
    MetricSpec("agent_last_run_timestamp_seconds", Kind.GAUGE, "End time of the newest ended run.", RUN_LABELS),
    MetricSpec(
        "agent_tool_calls_total", Kind.COUNTER, "Tool calls of ended runs.", ("source", "platform", "tool", "status")
    ),
    MetricSpec(
        "agent_tool_call_duration_seconds",
        Kind.HISTOGRAM,
        "Duration of tool calls with both times.",
        ("source", "platform", "tool"),
        buckets=TOOL_BUCKETS,
    ),
    MetricSpec(
        "agent_tokens_total", Kind.COUNTER, "Tokens used by ended runs.", ("source", "platform", "agent", "type")
    ),
    MetricSpec("agent_cost_usd_total", Kind.COUNTER, "Cost of ended runs in US dollars.", AGENT_LABELS),
    MetricSpec(
        "agent_activity_events_total",
        Kind.COUNTER,
        "Activity events read, each counted once.",
        ("source", "platform", "category", "severity", "status"),
    ),
    MetricSpec("agent_exporter_polls_total", Kind.COUNTER, "Polls of a source by outcome.", ("source", "outcome")),
    MetricSpec(
        "agent_exporter_poll_duration_seconds",
        Kind.HISTOGRAM,
        "Wall time of one poll.",
        ("source",),
        buckets=POLL_BUCKETS,
    ),
    MetricSpec(
        "agent_exporter_last_successful_poll_timestamp_seconds",
        Kind.GAUGE,
        "When the source was last polled successfully.",
        ("source",),
    ),
    MetricSpec(
        "agent_exporter_api_requests_total",
        Kind.COUNTER,
        "Requests to platform APIs by HTTP status code (timeout, error for no response).",
        ("source", "code"),
    ),
    MetricSpec("agent_exporter_rate_limited_total", Kind.COUNTER, "HTTP 429 answers from the platform.", ("source",)),
    MetricSpec(
        "agent_exporter_requests_in_flight",
        Kind.GAUGE,
        "Requests of the source sent and not yet answered.",
        ("source",),
        persisted=False,
    ),
    MetricSpec(
        "agent_exporter_request_concurrency_limit",
        Kind.GAUGE,
        "Requests the source may have in flight now: its concurrency, cut on 429 and regrown (AIMD).",
        ("source",),
        persisted=False,
    ),
    MetricSpec(
        "agent_exporter_source_up",
        Kind.GAUGE,
        "1 when the last poll of the source succeeded.",
        ("source",),
        persisted=False,
    ),
    MetricSpec(
        "agent_exporter_data_lag_seconds",
        Kind.GAUGE,
        "Now minus the time up to which the source is fully read.",
        ("source",),
        persisted=False,
    ),
    MetricSpec(
        "agent_exporter_backfill_remaining_seconds",
        Kind.GAUGE,
        "History the source still has to read: its read position to the time its poll reads up to; 0 caught up.",
        ("source",),
        persisted=False,
    ),
    MetricSpec("agent_exporter_records_total", Kind.COUNTER, "Records read from platforms.", ("source", "kind")),
    MetricSpec(
        "agent_exporter_records_rejected_total",
        Kind.COUNTER,
        "Records that did not parse and were skipped.",
        ("source", "reason"),
    ),
    MetricSpec("agent_exporter_spans_exported_total", Kind.COUNTER, "Spans by delivery outcome.", ("outcome",)),
    MetricSpec(
        "agent_exporter_log_records_exported_total",
        Kind.COUNTER,
        "Log records (activity items, logs.enabled) by delivery outcome.",
        ("outcome",),
    ),
    MetricSpec(
        "agent_exporter_outbox_spans",
        Kind.GAUGE,
        "Spans (and log records) waiting in the outbox.",
        (),
        persisted=False,
    ),
    MetricSpec(
        "agent_exporter_build_info", Kind.GAUGE, "Always 1; the version as a label.", ("version",), persisted=False
    ),
    # Replicas on a shared PostgreSQL state: this process's own, counted from its start.
    # A single exporter on a state file holds every source's lease: its count, and no changes.
    MetricSpec(
        "agent_exporter_leases_held", Kind.GAUGE, "Source leases this replica holds (reads).", (), persisted=False
    ),
    MetricSpec(
        "agent_exporter_lease_changes_total",
        Kind.COUNTER,
        "Leases this replica acquired, released (to even out the work, or at exit) or lost.",
        ("change",),
        persisted=False,
    ),
)
SPECS = {spec.name: spec for spec in METRICS}


class Op(StrEnum):
    INC = "inc"
    OBSERVE = "observe"
    MAX = "max"  # gauge that only moves forward (timestamps)
    SET = "set"


@dataclass(frozen=True, slots=True)
class Update:
    op: Op
    name: str
    labels: tuple[str, ...]
    value: float
    exemplar: str | None = None  # trace_id, on histogram observations


def run_updates(run: Run, trace_id: str) -> list[Update]:
    """What one ended (or given-up) run adds. Counted once, at its end."""
    status = run.status.value
    labels = (run.source, run.platform, run.agent_id, status)
    updates = [Update(Op.INC, "agent_runs_total", labels, 1)]
    if run.ended_at is not None:
        duration = max(0.0, (run.ended_at - run.started_at).total_seconds())
        updates.append(Update(Op.OBSERVE, "agent_run_duration_seconds", labels, duration, trace_id))
        updates.append(Update(Op.MAX, "agent_last_run_timestamp_seconds", labels, run.ended_at.timestamp()))
    agent = (run.source, run.platform, run.agent_id)
    for kind, tokens in (("input", run.input_tokens), ("output", run.output_tokens), ("total", _total(run))):
        if tokens:
            updates.append(Update(Op.INC, "agent_tokens_total", (*agent, kind), tokens))
    if run.cost_usd:
        updates.append(Update(Op.INC, "agent_cost_usd_total", agent, float(run.cost_usd)))
    for call in run.tool_calls:
        call_status = call.status if call.status is not ToolStatus.RUNNING else ToolStatus.UNKNOWN
        updates.append(
            Update(Op.INC, "agent_tool_calls_total", (run.source, run.platform, call.name, call_status.value), 1)
        )
        if call.ended_at is not None:
            seconds = max(0.0, (call.ended_at - call.started_at).total_seconds())
            updates.append(
                Update(Op.OBSERVE, "agent_tool_call_duration_seconds", (run.source, run.platform, call.name), seconds)
            )
    return updates


def _total(run: Run) -> int | None:
    if run.total_tokens is not None:
        return run.total_tokens
    if run.input_tokens is None and run.output_tokens is None:
        return None
    return (run.input_tokens or 0) + (run.output_tokens or 0)


def event_updates(source: str, platform: str, events: Iterable[ActivityEvent]) -> list[Update]:
    counts: dict[tuple[str, ...], int] = {}
    for e in events:
        key = (source, platform, e.category, e.severity.value, e.status)
        counts[key] = counts.get(key, 0) + 1
    return [Update(Op.INC, "agent_activity_events_total", k, n) for k, n in counts.items()]
