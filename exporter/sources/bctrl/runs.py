"""bctrl runs built from what an open run holds: its listing info (the
"run" of its OpenRun.data) and its compact activity items ("items").

A run is terminal when the listing says so, else when its last system item
with a terminal status does. It starts at the listing's startedAt, else
its first system item, else the listing's createdAt, else its first item;
it ends at the listing's endedAt, else its last system item, else its last
item. A tool call is a commandId group of items; the items without one are
the run's own events.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from exporter.model import (
    ActivityEvent,
    Attributes,
    AttrValue,
    Run,
    RunStatus,
    Severity,
    ToolCall,
    ToolStatus,
    parse_enum,
    parse_time,
)
from exporter.sources.bctrl.api import (
    ERROR_OUTCOMES,
    I_ARTIFACT,
    I_CATEGORY,
    I_COMMAND,
    I_CONTEXT,
    I_CORRELATION,
    I_ID,
    I_LEVEL,
    I_MESSAGE,
    I_PAGE,
    I_SEVERITY,
    I_STATUS,
    I_TIME,
    I_TITLE,
    I_TYPE,
    PLATFORM,
    RUN_OUTCOMES,
    SYSTEM_CATEGORY,
    TOOL_NAME_INDEXES,
    TOOL_OUTCOMES,
    UNKNOWN_AGENT,
    Item,
)
from exporter.sources.windows import time_or

Outcome = tuple[RunStatus, str]  # (normalised, as the platform said it)


def listing(data: dict[str, object]) -> dict[str, object]:
    """The listing info an open run holds ({} for a fixed run id)."""
    return cast(dict[str, object] | None, data.get("run")) or {}


def held_items(data: dict[str, object]) -> list[Item]:
    """The compact activity items an open run holds, in the order read."""
    return cast(list[Item], data.get("items") or [])


def item_event(item: Item, run_id: str | None = None) -> ActivityEvent:
    """The item as an ActivityEvent: one count in agent_activity_events_total
    (category, severity, status), a span event (type as its name) and a log
    record of run `run_id`."""
    attrs: list[tuple[str, AttrValue]] = [
        ("agent_activity.event.id", cast(str, item[I_ID])),
        ("agent_activity.event.title", cast(str, item[I_TITLE])),
        ("agent_activity.event.category", cast(str, item[I_CATEGORY])),
        ("agent_activity.event.level", cast(str, item[I_LEVEL])),
        ("agent_activity.event.severity", cast(str, item[I_SEVERITY])),
        ("agent_activity.event.status", cast(str, item[I_STATUS])),
    ]
    for key, i in (
        ("agent_activity.event.command_id", I_COMMAND),
        ("agent_activity.event.correlation_id", I_CORRELATION),
        ("agent_activity.event.context_id", I_CONTEXT),
        ("agent_activity.event.page_id", I_PAGE),
        ("agent_activity.event.artifact_id", I_ARTIFACT),
    ):
        if item[i] is not None:
            attrs.append((key, cast(str, item[i])))
    return ActivityEvent(
        id=cast(str, item[I_ID]),
        name=cast(str, item[I_TYPE]),
        time=parse_time(item[I_TIME]),
        category=cast(str, item[I_CATEGORY]),
        severity=parse_enum(Severity, item[I_SEVERITY], Severity.UNKNOWN),
        status=cast(str, item[I_STATUS]),
        attributes=tuple(attrs),
        run_id=run_id,
        message=cast(str | None, item[I_MESSAGE]) or cast(str, item[I_TITLE]),
    )


def listing_outcome(data: dict[str, object]) -> Outcome | None:
    raw = listing(data).get("status")
    if isinstance(raw, str) and raw in RUN_OUTCOMES:
        return RUN_OUTCOMES[raw], raw
    return None


def outcome(data: dict[str, object]) -> Outcome | None:
    """Terminal status of a run: the listing's, else the last system item
    with a terminal status; None while the run goes on."""
    listed = listing_outcome(data)
    if listed is not None:
        return listed
    for item in reversed(held_items(data)):
        raw = item[I_STATUS]
        if item[I_CATEGORY] == SYSTEM_CATEGORY and isinstance(raw, str) and raw in RUN_OUTCOMES:
            return RUN_OUTCOMES[raw], raw
    return None


def agent_of(current: str, data: dict[str, object]) -> str:
    """The run's agent: kept once known, else its runtimeId (listing's, else
    its items')."""
    if current != UNKNOWN_AGENT:
        return current
    return cast(str | None, listing(data).get("runtime") or data.get("runtime")) or UNKNOWN_AGENT


def build_run(
    source: str,
    base_url: str,
    run_id: str,
    agent: str,
    data: dict[str, object],
    result: Outcome,
    fallback_start: datetime | None = None,
) -> Run:
    status, raw_status = result
    listed = listing(data)
    items = sorted(held_items(data), key=lambda i: parse_time(i[I_TIME]))
    system = [i for i in items if i[I_CATEGORY] == SYSTEM_CATEGORY]
    first_time = parse_time(items[0][I_TIME]) if items else None
    started = (
        time_or(listed.get("started"), None)
        or (parse_time(system[0][I_TIME]) if system else None)
        or time_or(listed.get("created"), None)
        or first_time
        or fallback_start
    )
    assert started is not None, "an open run has listing info, items, or an opened_at"
    ended: datetime | None = None
    error_message = None
    if status is not RunStatus.INCOMPLETE:
        ended = (
            time_or(listed.get("ended"), None)
            or (parse_time(system[-1][I_TIME]) if system else None)
            or (parse_time(items[-1][I_TIME]) if items else None)
            or started
        )
    if status in ERROR_OUTCOMES:
        errors = [i for i in items if i[I_SEVERITY] == Severity.ERROR.value]
        if errors:
            error_message = cast(str | None, errors[-1][I_MESSAGE] or errors[-1][I_TITLE])
    groups: dict[str, list[Item]] = {}
    run_events: list[ActivityEvent] = []
    for item in items:
        command = cast(str | None, item[I_COMMAND])
        if command:
            groups.setdefault(command, []).append(item)
        else:
            run_events.append(item_event(item))
    attrs: list[tuple[str, AttrValue]] = [
        ("agent_activity.runtime.kind", cast(str | None, data.get("kind")) or "unknown"),
        ("agent_activity.runtime.id", cast(str | None, listed.get("runtime") or data.get("runtime")) or agent),
    ]
    if listed.get("space"):
        attrs.append(("agent_activity.space_id", cast(str, listed["space"])))
    return Run(
        source=source,
        platform=PLATFORM,
        base_url=base_url,
        run_id=run_id,
        agent_id=agent,
        agent_name=agent,
        status=status,
        raw_status=raw_status,
        started_at=started,
        ended_at=ended,
        error_type=status.value if status in ERROR_OUTCOMES else None,
        error_message=error_message,
        tool_calls=tuple(_tool_call(command, group) for command, group in groups.items()),
        events=tuple(run_events),
        attributes=tuple(attrs),
    )


def _tool_call(command_id: str, group: list[Item]) -> ToolCall:
    """A commandId group: its first item starts the call, its last item with
    a terminal status ends it, the items between are the call's events."""
    first = group[0]
    ends = [j for j in range(1, len(group)) if group[j][I_STATUS] in TOOL_OUTCOMES]
    if not ends and group[0][I_STATUS] in TOOL_OUTCOMES:
        ends = [0]  # a one-item group that is already over
    end = group[ends[-1]] if ends else None
    if end is not None:
        raw_status = cast(str, end[I_STATUS])
        status = TOOL_OUTCOMES[raw_status]
        middle = [g for j, g in enumerate(group) if j not in (0, ends[-1])]
    else:
        raw_status = cast(str, group[-1][I_STATUS])
        status = ToolStatus.RUNNING if raw_status in ("running", "pending") else ToolStatus.UNKNOWN
        middle = group[1:]
    name = next((cast(str, first[i]) for i in TOOL_NAME_INDEXES if first[i]), "unknown")
    error = None
    if status is ToolStatus.FAILED and end is not None:
        error = cast(str | None, end[I_MESSAGE] or end[I_TITLE])
    attrs: Attributes = (("agent_activity.command.type", cast(str, first[I_TYPE])),)
    return ToolCall(
        id=command_id,
        name=name,
        started_at=parse_time(first[I_TIME]),
        ended_at=parse_time(end[I_TIME]) if end is not None else None,
        status=status,
        raw_status=raw_status,
        error_message=error,
        attributes=attrs,
        events=tuple(item_event(i) for i in middle),
    )
