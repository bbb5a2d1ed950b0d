"""runtools' wire format: GET /v1/activity, its envelope and its values.

`GET /v1/activity` answers {"data": {"events": [event...]}, "meta":
{"hasMore", "nextCursor"}}; the order of events in a page is undocumented.
Events are parsed here into the compact event kept in an open run's working
state (a JSON list, laid out by the E_* indexes), and counted as
ActivityEvents with the documented enums.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, NamedTuple, cast

from exporter.model import ActivityEvent, RunStatus, Severity, ToolStatus, parse_enum
from exporter.sources.base import Fields, envelope

PLATFORM: Final = "runtools"
PATH: Final = "/v1/activity"

# The documented query filters of GET /v1/activity, minus the ones the
# reader drives itself (since, until, limit, cursor).
FILTERS: Final = frozenset(
    {
        "resource_type",
        "resource_id",
        "event_type",
        "severity",
        "status",
        "actor_user_id",
        "thread_id",
        "agent_run_id",
        "sandbox_id",
        "workspace_id",
        "tool_slug",
        "installable_agent_install_id",
        "code_execution_id",
        "runmesh_node_id",
    }
)

# How events make runs, where the vendor's page is silent (docs/platforms.md): in one place.
RUN_STARTED: Final = "agent.run.started"
RUN_PREFIX: Final = "agent.run."
RUN_OUTCOMES: Final = {
    "completed": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
    "cancelled": RunStatus.CANCELLED,
    "timed_out": RunStatus.TIMED_OUT,
}
TOOL_PREFIX: Final = "tool.call."
TOOL_OUTCOMES: Final = {"completed": ToolStatus.SUCCEEDED, "failed": ToolStatus.FAILED, "started": ToolStatus.RUNNING}
EVENT_STATUSES: Final = frozenset(
    {
        "started",
        "completed",
        "failed",
        "cancelled",
        "timed_out",
        "added",
        "created",
        "updated",
        "deleted",
        "removed",
        "running",
        "succeeded",
        "stopped",
        "pending",
    }
)
RESOURCE_TYPES: Final = frozenset(
    {"sandbox", "agent", "workspace", "thread", "tool", "installable_agent_install", "runmesh_device", "code_execution"}
)

# Compact event as kept in an open run's working state (JSON list).
E_ID, E_TYPE, E_AT, E_SEV, E_STATUS, E_RTYPE, E_RID, E_TOOL, E_TITLE, E_SUMMARY, E_THREAD, E_RUN = range(12)

OPTIONAL_FIELDS: Final = (
    "severity",
    "status",
    "resourceType",
    "resourceId",
    "toolSlug",
    "title",
    "summary",
    "threadId",
    "agentRunId",
)  # in E_SEV .. E_RUN order


# An event's fields as attributes: of its span event, and (all of them) of its log record.
SPAN_EVENT_FIELDS: Final = (
    ("agent_activity.event.id", E_ID),
    ("agent_activity.event.severity", E_SEV),
    ("agent_activity.event.status", E_STATUS),
    ("agent_activity.event.resource_type", E_RTYPE),
    ("agent_activity.event.resource_id", E_RID),
    ("agent_activity.event.title", E_TITLE),
)
EVENT_FIELDS: Final = (
    *SPAN_EVENT_FIELDS,
    ("agent_activity.event.tool_slug", E_TOOL),
    ("agent_activity.event.summary", E_SUMMARY),
    ("agent_activity.event.thread_id", E_THREAD),
)


def event_attributes(ev: list[object], fields: tuple[tuple[str, int], ...]) -> tuple[tuple[str, str], ...]:
    return tuple([(name, cast(str, ev[i])) for name, i in fields if ev[i] is not None])


class Page(NamedTuple):
    events: object  # the page's items, parsed one by one (parse_each)
    next_cursor: str | None  # None: the window is read to its end


def page(source: str, body: object) -> Page:
    """One response of GET /v1/activity; raises BadResponseError."""
    events = envelope(source, body, "data", "events")
    meta = envelope(source, body, "meta")
    has_more = isinstance(meta, dict) and bool(meta.get("hasMore"))
    next_cursor = meta.get("nextCursor") if isinstance(meta, dict) else None
    # hasMore without a cursor: nothing more can be asked for.
    return Page(events, next_cursor if has_more and isinstance(next_cursor, str) and next_cursor else None)


def parse_event(source: str, item: object) -> tuple[list[object], datetime]:
    """One feed event -> (compact list, its time); raises BadRecordError."""
    f = Fields(source, item)
    event_id = f.str("id")
    occurred = f.time("occurredAt")
    return [event_id, f.opt_str("eventType") or "unknown", occurred.isoformat(), *f.opt_strs(OPTIONAL_FIELDS)], occurred


def counted_event(ev: list[object], at: datetime) -> ActivityEvent:
    rtype = cast(str | None, ev[E_RTYPE])
    status = cast(str | None, ev[E_STATUS])
    return ActivityEvent(
        id=cast(str, ev[E_ID]),
        name=cast(str, ev[E_TYPE]),
        time=at,
        category=rtype if rtype in RESOURCE_TYPES else "unknown",
        severity=parse_enum(Severity, ev[E_SEV], Severity.UNKNOWN),
        status=status if status in EVENT_STATUSES else "unknown",
        attributes=event_attributes(ev, EVENT_FIELDS),
        run_id=cast(str | None, ev[E_RUN]),
        message=cast(str | None, ev[E_SUMMARY] or ev[E_TITLE]),
    )


def outcome(event_type: str) -> RunStatus | None:
    """The run status an event type ends its run with; None if it does not."""
    if event_type.startswith(RUN_PREFIX):
        return RUN_OUTCOMES.get(event_type[len(RUN_PREFIX) :])
    return None
